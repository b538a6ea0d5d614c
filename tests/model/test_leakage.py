"""No feature may carry the answer: no post-departure column, and no statistic computed from test rows."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flightdelay.core.config import load_schema, parse_params
from flightdelay.core.contracts import FeatureSpec
from flightdelay.core.files import partition_files, read_parquet, write_parquet
from flightdelay.stages import features
from flightdelay.stages.ingest import coerce_frame, with_lineage
from flightdelay.stages.raw import split_by_month, to_csv_text
from flightdelay.stages.train import select_features
from tests.bundled import bundled
from tests.default_params import default_params
from tests.model.conftest import MONTHS

REPO = Path(__file__).resolve().parents[2]


def as_read(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows as ingest reads them back from the CSV the raw stage writes ("NA" becomes missing)."""
    return pd.read_csv(io.StringIO(to_csv_text(frame)), dtype=str)


FORBIDDEN = {"dep_delay", "dep_time", "arr_time", "air_time"}


def test_feature_groups_hold_no_post_departure_column():
    every = {c for cols in features.FEATURE_GROUPS.values() for c in cols}
    assert FORBIDDEN <= features.LEAKY
    assert not every & features.LEAKY


def test_configured_feature_set_holds_no_post_departure_column():
    params = parse_params(default_params())
    spec = features.feature_spec(features.FEATURE_GROUPS, features.TARGETS)
    numeric, categorical = select_features(spec, params.train.feature_groups)
    assert not set(numeric + categorical) & (FORBIDDEN | {"arr_delay", "late"})


@pytest.fixture(scope="module")
def validated(tmp_path_factory) -> Path:
    """Three months of the real bundled data (first three days of each), typed as the validate stage leaves it."""
    root = tmp_path_factory.mktemp("validated")
    schema = load_schema(REPO / "config" / "schema.yaml")
    for table in ("flights", "weather"):
        spec = schema.table(table)
        raw = bundled(table)
        raw = raw[raw["month"].isin(["1", "2", "3"]) & raw["day"].isin(["1", "2", "3"])]
        for period, rows in split_by_month(raw, spec):
            typed, _ = coerce_frame(with_lineage(as_read(rows), period), spec, period)
            write_parquet(typed, root / table / f"{period}.parquet")
    planes, _ = coerce_frame(with_lineage(as_read(bundled("planes")), "planes"), schema.table("planes"), "p")
    write_parquet(planes, root / "planes.parquet")
    return root


def build(validated: Path, out: Path):
    params = parse_params(default_params(MONTHS))
    features.run(params.features, params.train, params.dataset, params.compute, in_dir=validated, out_dir=out)
    split = {
        s: pd.concat([read_parquet(f) for f in partition_files(out / s)], ignore_index=True) for s in ("train", "test")
    }
    return split, FeatureSpec.load(out / "feature_spec.json")


def feature_columns(spec: FeatureSpec) -> list[str]:
    return [c for cols in spec.groups.values() for c in cols]


def test_test_outcomes_do_not_change_any_feature(validated, tmp_path):
    before, spec = build(validated, tmp_path / "before")

    # Scramble every outcome of the test month; features must not move.
    march = validated / "flights" / "2013-03.parquet"
    original = read_parquet(march)
    try:
        scrambled = original.copy()
        rng = np.random.default_rng(0)
        known = scrambled["arr_delay"].notna()  # keep cancellations where they are; shuffle the outcomes
        scrambled.loc[known, "arr_delay"] = rng.permutation(scrambled.loc[known, "arr_delay"].to_numpy()) * -1.0
        write_parquet(scrambled, march)
        after, _ = build(validated, tmp_path / "after")
    finally:
        write_parquet(original, march)

    columns = feature_columns(spec)
    pd.testing.assert_frame_equal(before["train"][columns], after["train"][columns])
    pd.testing.assert_frame_equal(before["test"][columns], after["test"][columns])
    assert not before["test"]["late"].equals(after["test"]["late"]), "the scramble did not change the labels"


def test_training_row_history_excludes_its_own_month(validated, tmp_path):
    before, _ = build(validated, tmp_path / "before")
    january = validated / "flights" / "2013-01.parquet"
    original = read_parquet(january)
    try:
        changed = original.copy()
        changed.loc[changed["arr_delay"].notna(), "arr_delay"] = 600.0  # every January arrival late
        write_parquet(changed, january)
        after, _ = build(validated, tmp_path / "after")
    finally:
        write_parquet(original, january)

    history = features.FEATURE_GROUPS["history"]
    jan_before = before["train"][before["train"]["month"] == 1][history].reset_index(drop=True)
    jan_after = after["train"][after["train"]["month"] == 1][history].reset_index(drop=True)
    pd.testing.assert_frame_equal(jan_before, jan_after)  # January rows never see January outcomes
    feb_before = before["train"][before["train"]["month"] == 2]["hist_route"].mean()
    feb_after = after["train"][after["train"]["month"] == 2]["hist_route"].mean()
    assert feb_after > feb_before  # ...while February rows do learn from January
