"""flightdelay.stages.evaluate: the headline metrics and where every row went."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flightdelay.core.config import EvaluateParams, parse_params
from flightdelay.core.contracts import TrainSummary
from flightdelay.core.errors import PipelineError
from flightdelay.modeling import metrics
from flightdelay.stages.evaluate import check_names, check_slices, headline, row_counts, score
from tests.default_params import default_params

SUMMARY = TrainSummary(
    task="classification",
    model="hist_gradient_boosting",
    seed=0,
    fallback_used=False,
    target="late",
    numeric=["distance"],
    categorical=[],
    rows=10,
    target_mean=0.3,
    iterations=1,
    training_loss=0.5,
)


def test_headline_classification():
    y, p = np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9])
    result = {**metrics.classification(y, p, 0.5, 2), "baseline": metrics.classification(y, np.full(4, 0.5), 0.5, 2)}
    out = headline(result, "classification")
    assert list(out) == ["roc_auc", "pr_auc", "log_loss", "brier", "ece", "f1", "accuracy", "baseline"]
    assert list(out["baseline"]) == ["roc_auc", "pr_auc", "log_loss", "brier"]
    assert out["roc_auc"] == result["roc_auc"]
    assert out["baseline"]["brier"] == pytest.approx(0.25)


def test_headline_regression():
    y = np.array([1.0, 2.0, 3.0])
    result = {**metrics.regression(y, y + 1), "baseline": metrics.regression(y, np.full(3, 2.0))}
    out = headline(result, "regression")
    assert out == {
        "mae": 1.0,
        "rmse": 1.0,
        "r2": pytest.approx(-0.5),
        "baseline": {"mae": pytest.approx(2 / 3), "rmse": pytest.approx(np.sqrt(2 / 3)), "r2": 0.0},
    }


def test_score_adds_a_constant_baseline():
    scored = pd.DataFrame({"late": [0, 0, 1, 1], "prediction": [0.1, 0.6, 0.4, 0.9]})
    result = score(scored, SUMMARY, EvaluateParams(threshold=0.5, calibration_bins=2))
    assert result["roc_auc"] == pytest.approx(0.75)
    assert result["baseline"]["roc_auc"] == 0.5  # a constant ranks nothing
    assert result["baseline"]["mean_prediction"] == pytest.approx(0.3)
    assert result["baseline"]["recall"] == 0.0  # 0.3 is below the threshold


def counts(table: str = "flights"):
    ingest = {table: {"rows_in": 1000, "rows_passed": 993, "rows_quarantined": 7}, "other": {}}
    validate = {table: {"rows_in": 993, "rows_passed": 980, "rows_quarantined": 13}}
    features = {"rows_in": 980, "rows_dropped_no_arrival": 30, "rows_unused_months": 100, "train": 700, "test": 150}
    return ingest, validate, features


def test_row_counts_account_for_every_row():
    out = row_counts(*counts(), table="flights")
    assert out["ingest"] == {"in": 1000, "passed": 993, "quarantined": 7}
    assert out["validate"] == {"in": 993, "passed": 980, "quarantined": 13}
    assert out["features"] == {"in": 980, "no_arrival": 30, "unused_months": 100, "train": 700, "test": 150}
    for stage in ("ingest", "validate"):
        assert out[stage]["in"] == out[stage]["passed"] + out[stage]["quarantined"]
    assert out["features"]["in"] == sum(v for k, v in out["features"].items() if k != "in")


def test_row_counts_of_another_table():
    out = row_counts(*counts("planes"), table="planes")
    assert out["ingest"]["in"] == 1000
    assert out["validate"]["quarantined"] == 13


def test_row_counts_of_a_table_not_counted_names_the_param_and_the_tables():
    with pytest.raises(
        PipelineError, match=r"has no table 'days' \(params.yaml dataset.table\); it counts flights, other"
    ):
        row_counts(*counts(), table="days")


def test_check_names_refuses_a_target_the_features_stage_did_not_build():
    dataset = parse_params(default_params()).dataset
    scored = pd.DataFrame({"carrier": ["AA"], "flight": [1], "late": [1], "prediction": [0.4]})
    summary = SUMMARY
    check_names(dataset, summary, scored, "test.parquet")  # agrees: nothing to say
    with pytest.raises(PipelineError, match=r"dataset.target.classification.column is 'late' but the features stage"):
        check_names(dataset, summary.model_copy(update={"target": "rain"}), scored, "test.parquet")
    with pytest.raises(PipelineError, match=r"^test.parquet: no column 'flight' of dataset.entity_keys"):
        check_names(dataset, summary, scored.drop(columns="flight"), "test.parquet")


def test_check_slices_names_the_unknown_columns_and_the_usable_ones():
    """A slice column the scored rows lack was left out of reports/slices.json without a word."""
    scored = pd.DataFrame({"carrier": ["AA"], "origin": ["JFK"], "late": [1], "prediction": [0.4]})
    check_slices(EvaluateParams(slices=("carrier", "origin")), scored, SUMMARY, "test.parquet")  # all there
    with pytest.raises(PipelineError) as caught:
        check_slices(EvaluateParams(slices=("carrier", "nosuchcol", "late")), scored, SUMMARY, "test.parquet")
    assert str(caught.value) == (
        "params.yaml: evaluate.slices: no column 'nosuchcol', 'late' among the scored rows (test.parquet); use any "
        "of carrier, origin (the id columns the features stage keeps, id_columns in its feature_spec.json), or "
        "remove it"
    )


def test_evaluate_refuses_an_unknown_slice_column_before_it_writes_anything(tmp_path):
    from flightdelay.core.files import write_parquet
    from flightdelay.stages.evaluate import run

    params = parse_params(default_params({"evaluate.slices": ["carrier", "nosuchcol"]}))
    (tmp_path / "predictions").mkdir()
    write_parquet(
        pd.DataFrame({"carrier": ["AA"], "flight": [1], "month": [11], "late": [1], "prediction": [0.4]}),
        tmp_path / "predictions" / "test.parquet",
    )
    SUMMARY.save(tmp_path / "summary.json")
    outputs = {
        "metrics_file": tmp_path / "out" / "metrics.json",
        "detail_file": tmp_path / "out" / "evaluation.json",
        "slices_file": tmp_path / "out" / "slices.json",
        "rows_file": tmp_path / "out" / "rows.json",
        "plots_dir": tmp_path / "out" / "plots",
    }
    with pytest.raises(
        PipelineError, match=r"evaluate.slices: no column 'nosuchcol' .* use any of carrier, flight, month "
    ):
        run(
            params.dataset,
            params.evaluate,
            params.train,
            predictions_dir=tmp_path / "predictions",
            summary_file=tmp_path / "summary.json",
            ingested_dir=tmp_path / "ingested",
            validated_dir=tmp_path / "validated",
            processed_dir=tmp_path / "processed",
            **outputs,
        )
    assert not (tmp_path / "out").exists()
