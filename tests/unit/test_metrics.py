"""flightdelay.modeling.metrics: metric values on cases small enough to check by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from flightdelay.modeling import metrics

Y = np.array([0, 0, 1, 1])
P = np.array([0.1, 0.6, 0.4, 0.9])


# ------------------------------------------------------------------------------------------------ calibration


def test_ece_of_perfect_calibration_is_zero():
    y = np.array([0, 1] * 5 + [0, 0, 0, 1])  # half late at 0.5, a quarter late at 0.25
    p = np.array([0.5] * 10 + [0.25] * 4)
    assert metrics.expected_calibration_error(y, p, 10) == pytest.approx(0.0)
    assert metrics.expected_calibration_error(np.array([0, 1]), np.array([0.0, 1.0]), 10) == 0.0


def test_ece_known_case():
    # bin (0.4, 0.5]: rate 0.5 vs 0.5; bin (0.1, 0.2]: rate 2/6 vs 0.2 -> 6/10 * 2/15
    y = np.array([0, 1, 0, 1, 1, 1, 0, 0, 0, 0])
    p = np.array([0.5] * 4 + [0.2] * 6)
    assert metrics.expected_calibration_error(y, p, 10) == pytest.approx(0.08)


def test_ece_single_bin_is_gap_of_the_means():
    y = np.array([1, 1, 1, 0])
    p = np.array([0.1, 0.2, 0.3, 0.4])
    assert metrics.expected_calibration_error(y, p, 1) == pytest.approx(0.75 - 0.25)


def test_ece_of_nothing_is_nan():
    assert math.isnan(metrics.expected_calibration_error(np.array([]), np.array([]), 10))


def test_calibration_points():
    points = metrics.calibration_points(Y, P, 2)
    assert points == [
        {"mean_predicted": pytest.approx(0.25), "fraction_positive": 0.5, "rows": 2},
        {"mean_predicted": pytest.approx(0.75), "fraction_positive": 0.5, "rows": 2},
    ]


# ------------------------------------------------------------------------------------------------ classification


def test_classification_metrics_tiny_case():
    result = metrics.classification(Y, P, threshold=0.5, bins=2)
    assert set(result) == {
        "roc_auc",
        "pr_auc",
        "log_loss",
        "brier",
        "ece",
        "accuracy",
        "precision",
        "recall",
        "f1",
        "positive_rate",
        "mean_prediction",
        "rows",
    }
    assert result["roc_auc"] == pytest.approx(0.75)  # 3 of 4 (late, on-time) pairs ordered right
    assert result["pr_auc"] == pytest.approx(0.5 * 1.0 + 0.5 * 2 / 3)
    assert result["brier"] == pytest.approx((0.01 + 0.36 + 0.36 + 0.01) / 4)
    assert result["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.4, 0.4, 0.9])))
    assert result["ece"] == pytest.approx(0.25)
    # called late: 0.6 (wrong) and 0.9 (right)
    assert result["accuracy"] == 0.5
    assert result["precision"] == 0.5
    assert result["recall"] == 0.5
    assert result["f1"] == 0.5
    assert result["positive_rate"] == 0.5
    assert result["mean_prediction"] == pytest.approx(0.5)
    assert result["rows"] == 4


def test_classification_threshold_moves_the_calls():
    result = metrics.classification(Y, P, threshold=0.3, bins=2)
    assert result["recall"] == 1.0
    assert result["precision"] == pytest.approx(2 / 3)
    assert result["accuracy"] == 0.75


def test_classification_with_one_class_has_no_auc():
    result = metrics.classification(np.array([0, 0]), np.array([0.1, 0.2]), 0.5, 2)
    assert math.isnan(result["roc_auc"])
    assert math.isnan(result["pr_auc"])
    assert result["accuracy"] == 1.0
    assert result["f1"] == 0.0
    assert math.isfinite(result["log_loss"])


@pytest.mark.parametrize(
    "y, p",
    [
        (Y, P),
        (np.array([0, 0, 0]), np.array([0.1, 0.7, 0.2])),  # no positive: recall and f1 divide by zero
        (np.array([1, 1]), np.array([0.1, 0.2])),  # nothing called positive: precision divides by zero
        (np.array([1]), np.array([0.9])),
        *[(rng.integers(0, 2, 500), rng.random(500)) for rng in [np.random.default_rng(seed) for seed in range(5)]],
    ],
)
def test_classification_precision_recall_and_f1_are_scikit_learns_own(y, p):
    """One precision_recall_fscore_support call gives exactly what the three separate scorers give."""
    from sklearn import metrics as skm

    result = metrics.classification(y, p, 0.5, 2)
    call = (np.clip(p, 1e-7, 1 - 1e-7) >= 0.5).astype(int)
    assert result["precision"] == skm.precision_score(y, call, zero_division=0)
    assert result["recall"] == skm.recall_score(y, call, zero_division=0)
    assert result["f1"] == skm.f1_score(y, call, zero_division=0)


def test_classification_clips_probabilities_for_log_loss():
    result = metrics.classification(np.array([0, 1]), np.array([1.0, 0.0]), 0.5, 2)
    assert math.isfinite(result["log_loss"])
    assert result["log_loss"] > 10


# ------------------------------------------------------------------------------------------------ curves


def test_roc_points():
    points = metrics.roc_points(Y, P, 7)
    assert len(points) == 7
    fpr = [pt["fpr"] for pt in points]
    tpr = [pt["tpr"] for pt in points]
    assert fpr == pytest.approx(np.linspace(0, 1, 7))
    assert all(b > a for a, b in itertools.pairwise(fpr))
    assert all(b >= a for a, b in itertools.pairwise(tpr))
    assert points[-1] == {"fpr": 1.0, "tpr": 1.0}
    assert tpr[3] == 1.0  # at fpr 0.5 every late flight is found


def test_pr_points():
    points = metrics.pr_points(Y, P, 5)
    assert len(points) == 5
    assert [pt["recall"] for pt in points] == [0.0, 0.25, 0.5, 0.75, 1.0]
    # best precision at recall >= r: 1.0 up to recall 0.5 (threshold 0.9), then 2/3 (threshold 0.4)
    assert [pt["precision"] for pt in points] == pytest.approx([1.0, 1.0, 1.0, 2 / 3, 2 / 3])
    precision = [pt["precision"] for pt in points]
    assert all(b <= a for a, b in itertools.pairwise(precision))


LABELS = {0: "on time", 1: "late"}


def test_confusion_counts_sum_to_n():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 50)
    p = rng.random(50)
    cells = metrics.confusion_counts(y, p, 0.35, LABELS)
    assert len(cells) == 4
    assert sum(c["count"] for c in cells) == 50
    late_called = sum(c["count"] for c in cells if c["predicted"] == "late")
    assert late_called == int((p >= 0.35).sum())


def test_confusion_counts_cells():
    cells = {(c["actual"], c["predicted"]): c["count"] for c in metrics.confusion_counts(Y, P, 0.5, LABELS)}
    assert cells == {
        ("on time", "on time"): 1,
        ("on time", "late"): 1,
        ("late", "on time"): 1,
        ("late", "late"): 1,
    }


def test_confusion_counts_name_the_classes_as_the_params_do():
    cells = metrics.confusion_counts(Y, P, 0.5, {0: "dry", 1: "rain"})
    assert {c["actual"] for c in cells} == {c["predicted"] for c in cells} == {"dry", "rain"}


# ------------------------------------------------------------------------------------------------ slices


def test_slice_table_leaves_out_small_slices():
    frame = pd.DataFrame(
        {
            "carrier": ["UA"] * 4 + ["AA"] * 3 + ["DL"],
            "late": [0, 0, 1, 1, 0, 1, 1, 1],
            "prediction": [0.1, 0.6, 0.4, 0.9, 0.2, 0.8, 0.7, 0.5],
        }
    )
    out = metrics.slice_table(frame, "carrier", "late", "classification", 0.5, 2, min_rows=3)
    assert list(out) == ["AA", "UA"]
    assert set(out["UA"]) == {"rows", "positive_rate", "mean_prediction", "roc_auc", "pr_auc", "brier", "f1"}
    assert out["UA"]["rows"] == 4
    assert out["UA"]["roc_auc"] == pytest.approx(0.75)
    assert out["AA"]["rows"] == 3
    assert out["AA"]["positive_rate"] == pytest.approx(2 / 3)
    assert out["AA"]["roc_auc"] == 1.0
    assert metrics.slice_table(frame, "carrier", "late", "classification", 0.5, 2, min_rows=5) == {}


def test_slice_table_regression():
    frame = pd.DataFrame({"origin": ["EWR", "EWR", "JFK"], "arr_delay": [1.0, 3.0, 5.0], "prediction": [2.0] * 3})
    out = metrics.slice_table(frame, "origin", "arr_delay", "regression", 0.5, 10, min_rows=1)
    assert out["EWR"]["mae"] == 1.0
    assert out["JFK"]["mae"] == 3.0
    assert out["JFK"]["rows"] == 1


# ------------------------------------------------------------------------------------------------ regression


def test_regression_known_values():
    result = metrics.regression(np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 2.0]))
    assert result["mae"] == pytest.approx(2 / 3)
    assert result["rmse"] == pytest.approx(np.sqrt(2 / 3))
    assert result["r2"] == pytest.approx(0.0)
    assert result["mean_target"] == 2.0
    assert result["mean_prediction"] == 2.0
    assert result["rows"] == 3
    perfect = metrics.regression(np.array([1.0, 5.0]), np.array([1.0, 5.0]))
    assert perfect["mae"] == 0.0
    assert perfect["r2"] == 1.0


def test_regression_of_one_row_has_no_r2():
    result = metrics.regression(np.array([4.0]), np.array([1.0]))
    assert math.isnan(result["r2"])
    assert result["mae"] == 3.0


def test_residual_points_deterministic_with_a_seed():
    y = np.arange(100.0)
    pred = y / 2
    first = metrics.residual_points(y, pred, 10, seed=7)
    assert first == metrics.residual_points(y, pred, 10, seed=7)
    assert first != metrics.residual_points(y, pred, 10, seed=8)
    assert len(first) == 10
    actual = [pt["actual"] for pt in first]
    assert actual == sorted(actual)  # kept in row order
    assert len(set(actual)) == 10  # no row twice
    for pt in first:
        assert pt["predicted"] == pt["actual"] / 2
        assert pt["residual"] == pt["actual"] - pt["predicted"]


def test_residual_points_fewer_rows_than_points_keeps_every_row():
    points = metrics.residual_points(np.array([3.0, 1.0, 2.0]), np.zeros(3), 10, seed=0)
    assert [pt["actual"] for pt in points] == [3.0, 1.0, 2.0]
