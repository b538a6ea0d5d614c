"""A tiny daily data set for the generic feature builder: two stations, January and February 2020, as the validate
stage writes it (data/validated/days/<YYYY-MM>.parquet and stations.parquet), and params that describe it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flightdelay.core.files import write_parquet
from tests.default_params import RAIN_DATASET, default_params

GENERIC = {
    "time_column": "date",
    "numeric": ["temp", "rain"],
    "categorical": ["sky"],
    "lags": {"rain": [1, 2]},
    "rolling": {"rain": {"windows": [3, 7], "stats": ["mean", "max"]}},
    "calendar": ["month", "day_of_week"],
    "joins": [{"table": "stations", "on": ["station"], "columns": ["height"]}],
    "history": {"hist_sky": ["sky"], "hist_station": ["station"]},
}
DATASET: dict[str, Any] = {
    **RAIN_DATASET,
    "target": {
        "classification": {**RAIN_DATASET["target"]["classification"], "source": "rain", "shift": -1, "rule": "> 0"},
        "regression": {**RAIN_DATASET["target"]["regression"], "source": "rain", "shift": -1},
    },
}


def generic_params(changes: dict[str, Any] | None = None) -> dict[str, Any]:
    base = default_params(
        {
            "dataset": copy.deepcopy(DATASET),
            "features.builder": "generic",
            "features.generic": copy.deepcopy(GENERIC),
            "features.split": {
                "train": {"start": "2020-01", "end": "2020-01"},
                "test": {"start": "2020-02", "end": "2020-02"},
            },
            "train.feature_groups": ["current", "lags", "rolling", "calendar", "joined", "history"],
        }
    )
    return default_params_of(base, changes or {})


def default_params_of(params: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`params` with `changes` ({"section.key": value}) applied, as tests.default_params does."""
    for dotted, value in changes.items():
        node = params
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
    return params


def write_validated(root: Path, seed: int = 0) -> Path:
    """60 days (2020-01-01 to 2020-02-29) for two stations, partitioned by month, and the stations table."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2020-01-01", "2020-02-29", freq="D")
    rows = []
    for station in ("north", "south"):
        rain = np.where(rng.random(len(dates)) < 0.4, rng.gamma(1.0, 3.0, len(dates)).round(1), 0.0)
        rows.append(
            pd.DataFrame(
                {
                    "date": dates,
                    "station": station,
                    "rain": rain,
                    "temp": rng.normal(8, 4, len(dates)).round(1),
                    "sky": np.where(rain > 0, "rain", rng.choice(["sun", "fog"], len(dates))),
                }
            )
        )
    days = pd.concat(rows, ignore_index=True)
    for period, part in days.groupby(days["date"].dt.strftime("%Y-%m")):
        write_parquet(part.reset_index(drop=True), root / "days" / f"{period}.parquet")
    write_parquet(pd.DataFrame({"station": ["north", "south"], "height": [12.0, 140.0]}), root / "stations.parquet")
    return root
