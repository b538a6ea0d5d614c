"""flightdelay.core.files: atomic files and directories, stable JSON."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from flightdelay.core.errors import DataError
from flightdelay.core.files import (
    atomic_dir,
    atomic_path,
    partition_files,
    read_json,
    to_json,
    window_partitions,
    write_json,
)


class Boom(Exception):
    pass


def test_atomic_path_moves_the_file_into_place(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent
        assert tmp != target
        tmp.write_text("hello")
        assert not target.exists()  # nothing visible until the block ends
    assert target.read_text() == "hello"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]
    assert target.stat().st_mode & 0o777 == 0o644


def test_atomic_path_leaves_no_file_when_the_block_raises(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(Boom), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise Boom
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_keeps_the_old_file_when_the_block_raises(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(Boom), atomic_path(target) as tmp:
        tmp.write_text("new")
        raise Boom
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_dir_replaces_the_directory_whole(tmp_path):
    target = tmp_path / "out"
    (target / "nested").mkdir(parents=True)
    (target / "stale.txt").write_text("stale")
    (target / "nested" / "keep.txt").write_text("old")
    with atomic_dir(target) as tmp:
        assert list(tmp.iterdir()) == []
        (tmp / "fresh.txt").write_text("new")
        assert (target / "stale.txt").exists()  # the old directory stays until the block ends
    assert sorted(p.name for p in target.iterdir()) == ["fresh.txt"]
    assert (target / "fresh.txt").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary or old directory left


def test_atomic_dir_creates_a_new_directory(tmp_path):
    target = tmp_path / "a" / "b"
    with atomic_dir(target) as tmp:
        (tmp / "x").write_text("1")
    assert (target / "x").read_text() == "1"
    assert target.stat().st_mode & 0o777 == 0o755


def test_atomic_dir_leaves_the_old_directory_intact_on_error(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(Boom), atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
        raise Boom
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    assert (target / "old.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_dir_on_error_without_an_old_directory_leaves_nothing(tmp_path):
    with pytest.raises(Boom), atomic_dir(tmp_path / "out"):
        raise Boom
    assert list(tmp_path.iterdir()) == []


def test_to_json_rounds_floats_and_writes_nan_as_null():
    text = to_json(
        {
            "a": 1 / 3,
            "b": float("nan"),
            "c": np.float64(2 / 3),
            "d": [np.float32(0.5), float("inf"), -float("inf")],
            "e": np.int64(7),
            "f": (1.23456789, "x"),
            "g": np.nan,
        },
        digits=3,
    )
    assert json.loads(text) == {
        "a": 0.333,
        "b": None,
        "c": 0.667,
        "d": [0.5, None, None],
        "e": 7,
        "f": [1.235, "x"],
        "g": None,
    }
    assert "NaN" not in text
    assert "Infinity" not in text
    assert text.endswith("}\n")


def test_to_json_keeps_key_order_and_converts_other_values():
    text = to_json({"z": 1, "a": {2: True, "t": pd.Timestamp("2013-01-01 05:00", tz="UTC")}, "n": None})
    value = json.loads(text)
    assert list(value) == ["z", "a", "n"]
    assert value["a"] == {"2": True, "t": "2013-01-01T05:00:00+00:00"}
    assert value["n"] is None


def test_to_json_is_stable():
    value = {"x": [0.1 + 0.2, 1e-9], "y": "é"}
    assert to_json(value) == to_json(value)
    assert json.loads(to_json(value)) == {"x": [0.3, 0.0], "y": "é"}
    assert "é" in to_json(value)


def test_write_json_read_json_round_trip(tmp_path):
    path = tmp_path / "r" / "m.json"
    write_json(path, {"auc": 0.7071067811865476, "nan": float("nan")})
    assert read_json(path) == {"auc": 0.707107, "nan": None}


def test_partition_files_in_month_order(tmp_path):
    for name in ("2013-10.parquet", "2013-02.parquet", "counts.json", "2013-3.parquet", "2012-12.parquet"):
        (tmp_path / name).write_text("")
    assert [p.name for p in partition_files(tmp_path)] == ["2012-12.parquet", "2013-02.parquet", "2013-10.parquet"]


def test_the_stages_that_write_only_json_and_text_start_without_numpy_or_pandas():
    """core.files imports numpy and pandas only in its Parquet functions, so `gate` and `report` (and the CLI
    itself) start without them: about half a CPU second per process (docs/benchmarks.md). Loading the params does
    not import scikit-learn either (train checks the models' keyword arguments against it, modeling.model). A fresh
    interpreter, since this one has them all loaded."""
    import subprocess
    import sys

    from tests.default_params import DEFAULTS_FILE

    code = (
        "import sys, flightdelay.cli, flightdelay.stages.gate, flightdelay.stages.report; "
        f"flightdelay.core.config.load_params({str(DEFAULTS_FILE)!r}); "
        "print(sorted({'numpy', 'pandas', 'pyarrow', 'sklearn'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_window_partitions_by_month(tmp_path):
    for month in ("2013-01", "2013-02", "2013-03"):
        (tmp_path / f"{month}.parquet").write_bytes(b"")
    assert window_partitions(tmp_path, ["2013-01", "2013-03"]) == {
        m: tmp_path / f"{m}.parquet" for m in ("2013-01", "2013-02", "2013-03")
    }


def test_a_month_without_a_partition_names_both_causes_and_the_fixes(tmp_path):
    (tmp_path / "2013-01.parquet").write_bytes(b"")
    with pytest.raises(DataError) as err:
        window_partitions(tmp_path, ["2013-01", "2013-05"])
    message = str(err.value)
    assert message.startswith(f"features: months 2013-05 of features.split are not in {tmp_path} (it has 1 months,")
    assert "the raw data has no file for them" in message and "add the files, widen ingest.window" in message
