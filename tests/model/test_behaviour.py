"""Behavioural tests of the trained model (tests/model/conftest.py): direction, invariance, slice floors, baseline.

Each perturbation is applied to March's held-out rows and compared with the model's own predictions on the rows as
they are, so what is tested is the model's response, not its accuracy. A direction is asserted on the mean change
of P(late): single flights may move the other way (boosted trees are not monotonic), the average may not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from tests.model.conftest import Trained


def mean_change(trained: Trained, changed: pd.DataFrame) -> float:
    return float((trained.p_late(changed) - trained.p_late(trained.test)).mean())


def added(frame: pd.DataFrame, amounts: dict[str, float], floor: float | None = None) -> pd.DataFrame:
    out = frame.copy()
    for column, amount in amounts.items():
        out[column] = out[column] + amount if floor is None else (out[column] + amount).clip(lower=floor)
    return out


# --------------------------------------------------------------------------------------------------- direction
# Each perturbation moves the columns one physical change moves together: a wetter hour adds to the day's and the
# trend window's totals; a lower visibility lowers the minimum over the trend window; more departures in the hour
# are more departures in the day, for the airport and for the carrier there.
# (Alone, the hour's `precip` column lowers P(late) slightly on this January-February model, and so does
# `origin_hour_departures`; the totals they feed carry the effect. See the report of issue 9.)
WETTER = {"precip": 0.1, "precip_trend_sum": 0.1, "precip_day_so_far": 0.1}
MURKIER = {"visib": -5.0, "visib_trend_min": -5.0}
BUSIER = {"origin_hour_departures": 10, "origin_day_departures": 10, "carrier_origin_day_departures": 10}


def test_more_precipitation_never_lowers_p_late_on_average(trained):
    assert mean_change(trained, added(trained.test, WETTER)) > 0


def test_lower_visibility_never_lowers_p_late_on_average(trained):
    assert mean_change(trained, added(trained.test, MURKIER, floor=0.0)) > 0


def test_more_congestion_never_lowers_p_late_on_average(trained):
    assert mean_change(trained, added(trained.test, BUSIER)) > 0


# -------------------------------------------------------------------------------------------------- invariance


def test_predictions_do_not_depend_on_row_order(trained):
    order = np.random.default_rng(0).permutation(len(trained.test))
    shuffled = trained.test.iloc[order]
    pd.testing.assert_series_equal(trained.p_late(shuffled).sort_index(), trained.p_late(trained.test))


def test_columns_the_model_does_not_use_change_nothing(trained):
    """IDs carried for slicing and the outcome itself: rewriting them must not move a single prediction."""
    unused = [c for c in trained.test.columns if c not in trained.columns]
    assert {"flight", "tailnum", "late"} <= set(unused)
    changed = trained.test.copy()
    changed["flight"] = 0
    changed["tailnum"] = "N00000"
    changed["late"] = 1 - changed["late"]
    if "arr_delay" in changed:
        changed["arr_delay"] = 999.0
    pd.testing.assert_series_equal(trained.p_late(changed), trained.p_late(trained.test))


# ---------------------------------------------------------------------------------------- slices and baseline
# Measured on this model: carriers 0.645 (9E) to 0.766 (WN), airports 0.708 to 0.718, all March 2013. The floors
# sit below the weakest slice by a margin for retraining noise, and above what a model that learnt a slice's
# base rate only would score (0.5): a slice under its floor is a model that stopped ranking flights there.
CARRIER_FLOOR = 0.60
ORIGIN_FLOOR = 0.65
# Slices with fewer held-out rows, or fewer late ones, are too noisy for a floor (the same rule as evaluate's
# min_slice_rows, with a count of late flights so the AUC is not decided by a handful of them).
MIN_ROWS, MIN_LATE = 500, 100


@pytest.mark.parametrize(("column", "floor"), [("carrier", CARRIER_FLOOR), ("origin", ORIGIN_FLOOR)])
def test_every_slice_ranks_above_its_floor(trained, column, floor):
    p = trained.p_late(trained.test)
    scores = {
        value: roc_auc_score(rows["late"], p[rows.index])
        for value, rows in trained.test.groupby(column)
        if len(rows) >= MIN_ROWS and MIN_LATE <= rows["late"].sum() <= len(rows) - MIN_LATE
    }
    assert len(scores) >= 3, f"too few {column} slices to judge: {scores}"
    below = {value: round(score, 3) for value, score in scores.items() if score < floor}
    assert below == {}, f"{column} slices under the floor {floor}: {below}"


def test_beats_the_constant_baseline(trained):
    """The constant model (the training late rate) scores ROC AUC 0.5; the gate asks for 0.65."""
    y = trained.test["late"].to_numpy()
    p = trained.p_late(trained.test).to_numpy()
    constant = np.full(len(y), trained.train["late"].mean())
    assert roc_auc_score(y, p) > 0.65
    assert log_loss(y, p) < log_loss(y, constant) - 0.02  # measured 0.480 against 0.537
