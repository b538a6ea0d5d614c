"""flightdelay.stages.report: the model card draft and its figures (PNG bytes that do not change run to run)."""

from __future__ import annotations

import copy

from flightdelay.core.config import DatasetParams, parse_params
from flightdelay.core.contracts import (
    Candidate,
    CategoricalCurrent,
    CategoricalReference,
    DriftResult,
    DriftRows,
    DriftSummary,
    DriftThresholds,
    FeatureDrift,
    GateDecision,
    GateRule,
    NumericCurrent,
    NumericReference,
    OverrideRecord,
    TrainSummary,
)
from flightdelay.stages.report import ReportInputs, figures, render
from tests.default_params import RAIN_DATASET, default_params

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FLIGHTS = parse_params(default_params()).dataset
RAIN = parse_params(default_params({"dataset": RAIN_DATASET})).dataset


def _feature(feature: str, kind: str, psi: float, p_value: float, over: bool, expected: bool) -> FeatureDrift:
    numeric = kind == "numeric"
    return FeatureDrift(
        feature=feature,
        kind="numeric" if numeric else "categorical",
        psi=psi,
        test="ks" if numeric else "chi2",
        statistic=0.5,
        p_value=p_value,
        over_threshold=over,
        expected=expected,
        reference=NumericReference(edges=[1.0], frequencies=[0.5, 0.5], missing=0.0)
        if numeric
        else CategoricalReference(categories=["AA"], frequencies=[0.6], other=0.4, missing=0.0),
        current=NumericCurrent(frequencies=[0.5, 0.5], missing=0.0)
        if numeric
        else CategoricalCurrent(frequencies=[0.6], other=0.4, missing=0.0),
    )


DRIFT = DriftResult(
    thresholds=DriftThresholds(psi=0.2, p_value=0.01, bins=10),
    rows=DriftRows(reference=100, current=40),
    summary=DriftSummary(
        features=3,
        over_threshold=["month", "temp"],
        counted=["temp"],
        expected=["month"],
        max_psi=1.5,
        prediction_psi=0.03,
        prediction_over_threshold=False,
    ),
    prediction=_feature("prediction", "numeric", 0.03, 0.2, False, False),
    features=[
        _feature("month", "numeric", 8.0, 0.0, True, True),
        _feature("temp", "numeric", 1.5, 1e-9, True, False),
        _feature("carrier", "categorical", 0.01, 0.4, False, False),
    ],
)
PLOTS = {
    "roc.json": [{"fpr": 0.0, "tpr": 0.0}, {"fpr": 0.5, "tpr": 0.8}, {"fpr": 1.0, "tpr": 1.0}],
    "precision_recall.json": [{"recall": 0.0, "precision": 1.0}, {"recall": 1.0, "precision": 0.3}],
    "calibration.json": [
        {"mean_predicted": 0.1, "fraction_positive": 0.12},
        {"mean_predicted": 0.6, "fraction_positive": 0.5},
    ],
    "confusion.json": [],
    "importance.json": [{"feature": "temp", "importance": 0.02}, {"feature": "carrier", "importance": 0.01}],
    "residuals.json": [],
}
PROMOTED = {
    "stage": "prod",
    "version": "v0.0.3",
    "commit": "abcdef1234567890" * 2 + "abcdefgh",
    "tag": "flight-delay#prod#5",
    "package": {"name": "model-1111111111111111", "task": "classification", "metrics": {"roc_auc": 0.69}},
}


def context(promoted=None, figure_names=("roc.png",), dataset: DatasetParams = FLIGHTS, target="late") -> ReportInputs:
    return ReportInputs(
        dataset=dataset,
        package={
            "name": "model-0123456789abcdef",
            "hash": "0123456789abcdef" * 4,
            "path": "models/package/model-0123456789abcdef",
            "model_sha256": "f" * 64,
            "data": {"data/processed": "aaa.dir", "data/raw/x": "bbb.dir"},
        },
        summary=TrainSummary(
            task="classification",
            model="hist_gradient_boosting",
            seed=42,
            fallback_used=False,
            target=target,
            numeric=["temp", "month"],
            categorical=["carrier"],
            rows=12345,
            target_mean=0.2,
            iterations=80,
            training_loss=0.4,
        ),
        gate=GateDecision(
            decision="overridden",
            candidate=Candidate(model_sha256="f" * 64, model="hist_gradient_boosting", task="classification"),
            baseline=None,
            failed=["max_drifted_features"],
            skipped=[],
            override=OverrideRecord(
                approved_by="Ada",
                reason="winter drift reviewed",
                rules=["max_drifted_features"],
                model_sha256="f" * 64,
                applied=True,
                note="accepts the failed rule(s) ['max_drifted_features']",
            ),
            rules=[
                GateRule(
                    rule="max_drifted_features",
                    value=1,
                    comparison="<=",
                    threshold=0,
                    outcome="fail",
                    note="over threshold: temp",
                )
            ],
        ),
        drift=DRIFT,
        metrics={"roc_auc": 0.7, "ece": 0.05, "baseline": {"roc_auc": 0.5}},
        rows={
            "ingest": {"in": 100, "passed": 99, "quarantined": 1},
            "validate": {"in": 99, "passed": 97, "quarantined": 2},
            "features": {"in": 97, "no_arrival": 2, "unused_months": 0, "train": 60, "test": 35},
        },
        slices={"origin": {"EWR": {"rows": 20, "positive_rate": 0.2, "roc_auc": 0.71, "pr_auc": 0.4, "brier": 0.1}}},
        promoted=promoted,
        window={"start": "2013-01", "end": "2013-03"},
        split={"train": ["2013-01", "2013-02"], "test": ["2013-03"]},
        params={
            "features": {
                "split": {
                    "train": {"start": "2013-01", "end": "2013-02"},
                    "test": {"start": "2013-03", "end": "2013-03"},
                }
            },
            "train": {"model": "hist_gradient_boosting", "seed": 42, "feature_groups": ["schedule", "route"]},
        },
        top=10,
        figures=list(figure_names),
    )


def test_report_has_every_section_with_its_numbers():
    text = render(context())
    for heading in (
        "# Model card (draft): flight delay, hist_gradient_boosting",
        "## Model",
        "## Intended use and limitations",
        "## Data",
        "## Params",
        "## Metrics",
        "## Slice metrics",
        "## Drift",
        "## Gate",
        "## Lineage",
        "## Figures",
    ):
        assert heading in text, heading
    assert "Window 2013-01 to 2013-03; training months 2013-01 to 2013-02, evaluation months 2013-03." in text
    assert "| quarantined by ingest (unreadable values) | 1 |" in text
    assert "| quarantined by validate (schema rules) | 2 |" in text
    assert "| passed validation | 97 |" in text
    assert "| ROC AUC | 0.7000 | 0.5000 | — |" in text
    assert "No model is promoted to prod yet" in text
    assert "| EWR | 20 | 0.2000 | 0.7100 | 0.4000 | 0.1000 |" in text
    assert "2 of 3 features over threshold: month, temp; 1 counted by the gate" in text
    assert "Decision: **overridden**." in text
    assert "Override by **Ada** (applied): winter drift reviewed" in text
    assert "| `data/processed` | `aaa.dir` |" in text
    assert "![ROC curve](figures/roc.png)" in text
    assert "seed: 42" in text
    assert "Predicts whether a flight, when it is scheduled, will arrive more than 15 minutes late" in text
    assert "| `flight-delay` |" in text
    assert "| flights | rows |" in text


def test_report_takes_every_name_of_the_data_set_from_params():
    text = render(context(dataset=RAIN, target="rain_tomorrow"))
    assert "# Model card (draft): rain tomorrow, hist_gradient_boosting" in text
    assert "Predicts whether it rains at a station tomorrow" in text
    assert "| days | rows |" in text
    assert "Main table `days`; entity keys `station`." in text
    assert "classification of `rain_tomorrow` (rain tomorrow: 1 rain, 0 dry)" in text
    words = text.lower().replace("flightdelay", "")  # the package's name (`python -m flightdelay ...`) is no data
    for word in ("flight", "late", "arrival", "on time"):
        assert word not in words, word


def test_report_compares_with_the_promoted_model():
    text = render(context(promoted=PROMOTED))
    assert "| metric (evaluation months) | this model | constant baseline | promoted (prod v0.0.3, " in text
    assert "| ROC AUC | 0.7000 | 0.5000 | 0.6900 |" in text
    assert "The promoted model is v0.0.3 at commit `abcdef123456`." in text


def test_report_does_not_change_its_input():
    ctx = context(promoted=PROMOTED)
    before = copy.deepcopy(ctx)
    render(ctx)
    assert ctx == before


def test_figures_for_classification_are_pngs_with_identical_bytes_every_time():
    first = figures(PLOTS, DRIFT, "classification", top=10, dpi=50, dataset=FLIGHTS)
    second = figures(copy.deepcopy(PLOTS), copy.deepcopy(DRIFT), "classification", top=10, dpi=50, dataset=FLIGHTS)
    assert sorted(first) == ["calibration.png", "drift.png", "importance.png", "precision_recall.png", "roc.png"]
    for name, data in first.items():
        assert data.startswith(PNG_SIGNATURE), name
        assert data == second[name], f"{name} differs between two runs"
        assert b"tEXt" not in data and b"iTXt" not in data, f"{name} carries text metadata (e.g. a version)"


def test_figures_for_regression_draw_residuals_not_curves():
    plots = {**PLOTS, "roc.json": [], "precision_recall.json": [], "calibration.json": []}
    plots["residuals.json"] = [{"predicted": 5.0, "residual": 1.0}, {"predicted": 10.0, "residual": -3.0}]
    out = figures(plots, DRIFT, "regression", top=10, dpi=50, dataset=FLIGHTS)
    assert sorted(out) == ["drift.png", "importance.png", "residuals.png"]


def test_figures_name_the_data_set_so_another_one_draws_other_figures():
    flights = figures(PLOTS, DRIFT, "classification", top=10, dpi=50, dataset=FLIGHTS)
    rain = figures(PLOTS, DRIFT, "classification", top=10, dpi=50, dataset=RAIN)
    assert all(flights[name] != rain[name] for name in flights), "a title or axis does not come from params"
