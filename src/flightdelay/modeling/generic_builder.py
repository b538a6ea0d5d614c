"""The generic feature builder's files (`features.builder: generic`): read the validate stage's folder, write the
processed folder that flightdelay.core.processed describes. The features come from
flightdelay.modeling.generic_features.build (pure).

Reads every monthly partition of the main table (dataset.table) in the ingest window at once (lags and rolling
windows read across month boundaries; the generic builder is for tables that fit in memory) and each joined
reference table (`<table>.parquet`). Rows are written by month into train/ or test/ (features.split); months in
neither range are unused, but their rows still serve as the earlier rows of lags and rolling windows.
It runs in the stage's process: params with `compute.engine: dask` (or a `features.missing_target` other than
`drop`, a rule of the default builder) are refused when loaded (core/config.py), never ignored silently.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from flightdelay.core.config import ComputeParams, DatasetParams, FeatureParams, TrainParams
from flightdelay.core.errors import DataError
from flightdelay.core.files import (
    atomic_dir,
    read_parquet,
    window_partitions,
    write_json,
    write_parquet,
)
from flightdelay.core.processed import COUNTS_FILE, SPEC_FILE, STATE_FILE, FeatureCounts
from flightdelay.modeling.generic_features import PERIOD, build

log = logging.getLogger(__name__)


def run(
    features: FeatureParams,
    train: TrainParams,
    dataset: DatasetParams,
    compute: ComputeParams,
    *,
    in_dir: str | Path,
    out_dir: str | Path,
) -> dict[str, int]:
    del compute  # one process: the generic builder holds the main table in memory
    gp = features.generic
    if gp is None:
        raise DataError("features.builder: generic needs a features.generic section (docs/own-data.md)")
    source = Path(in_dir) / dataset.table
    train_periods, test_periods = features.split.train_months(), features.split.test_months()
    by_period = window_partitions(source, [*train_periods, *test_periods])
    frame = pd.concat(
        [read_parquet(path).assign(**{PERIOD: period}) for period, path in sorted(by_period.items())],
        ignore_index=True,
    )
    tables = {join.table: read_parquet(Path(in_dir) / f"{join.table}.parquet") for join in gp.joins}
    target = dataset.target.classification if train.task == "classification" else dataset.target.regression
    built = build(
        frame, tables, gp, list(dataset.entity_keys), target, train.task, train_periods, features.history_smoothing
    )
    split = built.frame[PERIOD].map(lambda p: "train" if p in train_periods else "test" if p in test_periods else "")
    unused = int((split == "").sum()) + int((~built.dropped.isin([*train_periods, *test_periods])).sum())
    counts = FeatureCounts(
        rows_in=len(frame),
        rows_no_target=int(built.dropped.isin([*train_periods, *test_periods]).sum()),
        rows_unused_months=unused,
        train=int((split == "train").sum()),
        test=int((split == "test").sum()),
    )
    with atomic_dir(out_dir) as tmp:
        for period, rows in built.frame[split != ""].groupby(PERIOD, sort=True):
            part = "train" if period in train_periods else "test"
            write_parquet(rows.drop(columns=[PERIOD]).reset_index(drop=True), tmp / part / f"{period}.parquet")
            log.info("features: %s -> %s, %d rows", period, part, len(rows))
        built.spec.save(tmp / SPEC_FILE)
        write_json(tmp / COUNTS_FILE, counts.to_dict())
        (tmp / STATE_FILE).write_text(built.state.to_json(), encoding="utf-8")
    log.info("features: %s", counts.to_dict())
    return {
        "rows_in": counts.rows_in,
        "rows_out": counts.train + counts.test,
        "rows_dropped": counts.rows_no_target + counts.rows_unused_months,
    }
