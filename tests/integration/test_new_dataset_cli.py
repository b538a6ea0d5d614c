"""`flightdelay new-dataset` through the CLI in a scratch folder (without `dvc add`): the files it writes load with
the pipeline's own checks, and a CSV it cannot use stops it with one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from flightdelay import cli
from flightdelay.core.config import load_params, load_schema
from tests.default_params import write_params

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def scratch(tmp_path, monkeypatch) -> Path:
    from tests.default_params import default_params

    write_params(tmp_path / "params.yaml", default_params())
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    (tmp_path / "config").mkdir()
    rng = np.random.default_rng(3)
    days = pd.date_range("2020-01-01", "2020-06-30", freq="D")
    pd.DataFrame(
        {
            "day": days.strftime("%Y/%m/%d"),
            "city": np.repeat(["oslo"], len(days)),
            "rain_mm": rng.gamma(0.6, 3, len(days)).round(1),
            "sky": rng.choice(["sun", "rain"], len(days)),
        }
    ).to_csv(tmp_path / "daily.csv", index=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def new_dataset(*extra: str) -> int:
    return cli.main(
        ["new-dataset", "--csv", "daily.csv", "--time-column", "day", "--target", "rain_mm shift -1 > 1", *extra]
    )


def test_it_writes_partitions_schema_params_and_moves_the_raw_stage(scratch, capsys):
    assert new_dataset("--no-dvc-add", "--test-months", "2", "--entity-keys", "city") == 0
    printed = capsys.readouterr().out
    assert "wrote 6 monthly partitions to data/raw/daily/daily/" in printed and "Check before `dvc repro`" in printed
    assert sorted(p.name for p in (scratch / "data/raw/daily/daily").iterdir())[0] == "2020-01.csv"
    schema = load_schema(scratch / "config/schema.yaml")
    assert schema.table("daily").key == ("city", "day")
    params = load_params(scratch / "params.yaml")
    assert params.features.builder == "generic"
    assert params.features.split.test_months() == ["2020-05", "2020-06"]
    assert params.dataset.entity_keys == ("city",)
    dvc = yaml.safe_load((scratch / "dvc.yaml").read_text())
    assert "raw" not in dvc["stages"] and list(dvc["artifacts"]) == [params.dataset.artifact]
    assert "python -m flightdelay raw" in (scratch / "config/raw-stage.yaml").read_text()


def test_a_time_column_that_is_not_there_is_one_line(scratch, capsys):
    code = cli.main(["new-dataset", "--csv", "daily.csv", "--time-column", "date", "--target", "rain_mm > 0"])
    assert code == 1
    assert "new-dataset failed: daily.csv: no column(s) ['date']; it has ['day'," in capsys.readouterr().err
    assert not (scratch / "data").exists()  # nothing written


def test_a_params_file_with_a_key_given_twice_is_one_line_and_left_as_it_is(scratch, capsys):
    text = (scratch / "params.yaml").read_text().replace("  seed: 42\n", "  seed: 42\n  seed: 43\n")
    (scratch / "params.yaml").write_text(text)
    assert new_dataset("--no-dvc-add") == 1
    err = capsys.readouterr().err
    assert "new-dataset failed: params.yaml: line " in err and ": train.seed is given twice (first on line" in err
    assert "Traceback" not in err
    assert (scratch / "params.yaml").read_text() == text and not (scratch / "data").exists()
