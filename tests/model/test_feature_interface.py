"""Every feature builder (`features.builder`) writes what flightdelay.core.processed describes, checked by
`check_processed` on each builder's real output; and the check itself fails on a folder that breaks the interface."""

from __future__ import annotations

import json
import shutil
import typing
from pathlib import Path

import pytest

from flightdelay.core.config import FeatureParams, parse_params
from flightdelay.core.contracts import ContractError
from flightdelay.core.files import partition_files, read_parquet, write_parquet
from flightdelay.core.processed import COUNTS_FILE, STATE_FILE, check_processed
from flightdelay.stages import features
from tests.generic_data import generic_params, write_validated

BUILDERS = ["flights", "generic"]


@pytest.fixture(scope="module")
def generic_processed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("generic")
    params = parse_params(generic_params())
    validated = write_validated(root / "validated")
    out = root / "processed"
    features.run(params.features, params.train, params.dataset, params.compute, in_dir=validated, out_dir=out)
    return out


@pytest.fixture
def processed(request, trained, generic_processed) -> Path:
    return {"flights": trained.processed, "generic": generic_processed}[request.param]


def test_every_builder_is_checked():
    names = typing.get_args(typing.get_type_hints(FeatureParams)["builder"])
    assert sorted(names) == sorted(BUILDERS)


@pytest.mark.parametrize("processed", BUILDERS, indirect=True)
def test_the_builder_writes_the_interface(processed):
    spec = check_processed(processed)
    assert spec.targets and spec.id_columns
    state = json.loads((processed / STATE_FILE).read_text())
    assert "format" in state


def test_the_generic_builder_accounts_for_every_row(generic_processed):
    counts = json.loads((generic_processed / COUNTS_FILE).read_text())
    # 60 days of two stations; each station's last day has no tomorrow
    assert counts == {"rows_in": 120, "rows_dropped_no_arrival": 2, "rows_unused_months": 0, "train": 62, "test": 56}


def broken_copy(src: Path, tmp_path: Path) -> Path:
    out = tmp_path / "processed"
    shutil.copytree(src, out)
    return out


def test_counts_that_do_not_add_up_are_refused(generic_processed, tmp_path):
    out = broken_copy(generic_processed, tmp_path)
    counts = json.loads((out / COUNTS_FILE).read_text())
    (out / COUNTS_FILE).write_text(json.dumps({**counts, "test": counts["test"] + 1}))
    with pytest.raises(ContractError, match=r"counts.json: rows_in 120 but the other keys add up to 121"):
        check_processed(out)


def test_a_split_whose_rows_differ_from_counts_is_refused(generic_processed, tmp_path):
    out = broken_copy(generic_processed, tmp_path)
    first = partition_files(out / "test")[0]
    write_parquet(read_parquet(first).iloc[1:], first)
    with pytest.raises(ContractError, match=r"counts.json: test is 56 but .*test holds 55"):
        check_processed(out)


def test_a_partition_without_a_feature_of_the_spec_is_refused(generic_processed, tmp_path):
    out = broken_copy(generic_processed, tmp_path)
    first = partition_files(out / "train")[0]
    write_parquet(read_parquet(first).drop(columns=["rain_lag2"]), first)
    with pytest.raises(ContractError, match=r"2020-01.parquet: no column\(s\) \['rain_lag2'\]"):
        check_processed(out)


def test_a_file_that_is_not_a_partition_is_refused(generic_processed, tmp_path):
    out = broken_copy(generic_processed, tmp_path)
    shutil.copy(partition_files(out / "train")[0], out / "train" / "january.parquet")
    with pytest.raises(ContractError, match=r"january.parquet: not a partition name"):
        check_processed(out)


def test_a_state_that_is_not_json_data_is_refused(generic_processed, tmp_path):
    out = broken_copy(generic_processed, tmp_path)
    (out / STATE_FILE).write_text("gASV...")
    with pytest.raises(ContractError, match=r"feature_state.json: not JSON"):
        check_processed(out)
