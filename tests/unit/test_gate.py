"""flightdelay.stages.gate: each rule, the promoted-model comparison, the override and the alert."""

from __future__ import annotations

import pytest

from flightdelay.core.config import GateParams, Override
from flightdelay.core.contracts import Baseline, Candidate, DriftSummary, GateRule
from flightdelay.stages.gate import (
    alert_path,
    apply_override,
    decide,
    drift_rules,
    metric_rules,
    promoted_rules,
    render_alert,
)

SHA = "0123456789abcdef" * 4
METRICS = {"roc_auc": 0.70, "pr_auc": 0.48, "log_loss": 0.52, "brier": 0.17, "ece": 0.05, "f1": 0.4, "accuracy": 0.7}
DRIFT = DriftSummary(
    features=40,
    over_threshold=["month", "temp", "dewp"],
    counted=["temp", "dewp"],
    expected=["month"],
    max_psi=0.5,
    prediction_psi=0.04,
    prediction_over_threshold=False,
)
CANDIDATE = Candidate(model_sha256=SHA, model="hist_gradient_boosting", task="classification")


def promoted(roc_auc: float, task: str = "classification") -> dict:
    return {
        "stage": "prod",
        "version": "v0.0.1",
        "commit": "c" * 40,
        "tag": "flight-delay#prod#1",
        "package": {"name": "model-aaaaaaaaaaaaaaaa", "task": task, "metrics": {"roc_auc": roc_auc, "ece": 0.04}},
    }


def outcomes(rules: list[GateRule]) -> dict[str, str]:
    return {r.rule: r.outcome for r in rules}


def test_metric_rules_pass_fail_and_skip_the_other_tasks_metrics():
    gp = GateParams(min_metrics={"roc_auc": 0.65, "r2": 0.1}, max_metrics={"ece": 0.04})
    rules = metric_rules(METRICS, "classification", gp)
    assert outcomes(rules) == {"min_metrics.roc_auc": "pass", "min_metrics.r2": "skipped", "max_metrics.ece": "fail"}
    ece = next(r for r in rules if r.rule == "max_metrics.ece")
    assert (ece.value, ece.comparison, ece.threshold) == (0.05, "<=", 0.04)
    assert "not a metric of the classification task" in next(r for r in rules if r.rule == "min_metrics.r2").note


def test_a_missing_metric_value_fails_its_rule():
    rules = metric_rules({**METRICS, "roc_auc": None}, "classification", GateParams(min_metrics={"roc_auc": 0.5}))
    assert rules[0].outcome == "fail"
    assert "missing" in rules[0].note


def test_the_threshold_itself_passes():
    rules = metric_rules(METRICS, "classification", GateParams(min_metrics={"roc_auc": 0.70}))
    assert rules[0].outcome == "pass"


def test_drift_rules_count_features_and_bound_prediction_psi():
    rules = drift_rules(DRIFT, GateParams(max_drifted_features=1, max_prediction_psi=0.1))
    assert outcomes(rules) == {"max_drifted_features": "fail", "max_prediction_psi": "pass"}
    assert rules[0].value == 2
    assert rules[0].note == "over threshold: temp, dewp"
    assert drift_rules(DRIFT, GateParams()) == []  # rules not set are not checked


def test_promoted_rule_is_skipped_and_says_so_without_a_promoted_model():
    rules = promoted_rules(METRICS, "classification", None, GateParams(max_drop_vs_promoted={"roc_auc": 0.01}))
    assert rules[0].outcome == "skipped"
    assert rules[0].note == "no model is promoted to prod: nothing to compare"


@pytest.mark.parametrize(("theirs", "outcome"), [(0.705, "pass"), (0.72, "fail"), (0.60, "pass")])
def test_promoted_rule_higher_is_better(theirs, outcome):
    rules = promoted_rules(
        METRICS, "classification", promoted(theirs), GateParams(max_drop_vs_promoted={"roc_auc": 0.01})
    )
    assert rules[0].outcome == outcome
    assert rules[0].value == pytest.approx(theirs - 0.70)
    assert "v0.0.1 (model-aaaaaaaaaaaaaaaa)" in rules[0].note


def test_promoted_rule_lower_is_better():
    # ece 0.05 vs promoted 0.04: 0.01 worse
    gp = GateParams(max_drop_vs_promoted={"ece": 0.005})
    rules = promoted_rules(METRICS, "classification", promoted(0.7), gp)
    assert rules[0].value == pytest.approx(0.01)
    assert rules[0].outcome == "fail"


def test_promoted_rule_across_tasks_is_skipped():
    rules = promoted_rules(
        {"mae": 10.0}, "regression", promoted(0.7), GateParams(max_drop_vs_promoted={"roc_auc": 0.01})
    )
    assert rules[0].outcome == "skipped"
    assert "not comparable" in rules[0].note


def override(**change) -> Override:
    fields = {"approved_by": "Ada", "reason": "reviewed", "rules": ("max_metrics.ece",), "model_sha256": SHA}
    return Override(**{**fields, **change})


def test_no_override_pass_and_fail():
    assert apply_override([], None, SHA) == ("pass", None)
    assert apply_override(["max_metrics.ece"], None, SHA) == ("fail", None)


def test_override_accepts_named_rules_for_the_named_model():
    decision, record = apply_override(["max_metrics.ece"], override(), SHA)
    assert decision == "overridden"
    assert record.applied is True
    assert record.approved_by == "Ada"


def test_override_for_another_model_does_not_apply():
    decision, record = apply_override(["max_metrics.ece"], override(model_sha256="f" * 64), SHA)
    assert decision == "fail"
    assert record.applied is False
    assert "not this model 0123456789ab" in record.note


def test_override_must_cover_every_failed_rule():
    decision, record = apply_override(["max_metrics.ece", "min_metrics.roc_auc"], override(), SHA)
    assert decision == "fail"
    assert "['min_metrics.roc_auc']" in record.note


def test_unneeded_override_is_recorded_but_not_applied():
    decision, record = apply_override([], override(), SHA)
    assert decision == "pass"
    assert record.applied is False
    assert record.note == "not needed: every rule passed"


def test_decide_collects_rules_failures_and_baseline():
    gp = GateParams(
        min_metrics={"roc_auc": 0.65},
        max_metrics={"ece": 0.04},
        max_drifted_features=5,
        max_drop_vs_promoted={"roc_auc": 0.01},
    )
    gate = decide(METRICS, DRIFT, promoted(0.69), CANDIDATE, gp)
    assert gate.decision == "fail"
    assert gate.failed == ["max_metrics.ece"]
    assert gate.skipped == []
    assert [r.rule for r in gate.rules] == [
        "min_metrics.roc_auc",
        "max_metrics.ece",
        "max_drifted_features",
        "max_drop_vs_promoted.roc_auc",
    ]
    assert gate.baseline == Baseline(stage="prod", version="v0.0.1", package="model-aaaaaaaaaaaaaaaa", commit="c" * 40)
    assert gate.candidate == CANDIDATE


def test_decide_without_promoted_model_passes_and_has_no_baseline():
    gate = decide(METRICS, DRIFT, None, CANDIDATE, GateParams(min_metrics={"roc_auc": 0.65}))
    assert gate.decision == "pass"
    assert gate.baseline is None


def test_alert_names_failed_rules_and_gives_the_override_snippet():
    gp = GateParams(min_metrics={"roc_auc": 0.9}, max_metrics={"ece": 0.1})
    gate = decide(METRICS, DRIFT, None, CANDIDATE, gp)
    text = render_alert(gate, "flight delay")
    assert text.startswith("# Gate FAILED: flight delay model 0123456789ab (hist_gradient_boosting, classification)")
    assert "| min_metrics.roc_auc | 0.7000 | >= 0.9000 |" in text
    assert "max_metrics.ece |" not in text  # passed rules are not in the alert table
    assert "    rules: [min_metrics.roc_auc]" in text
    assert f'    model_sha256: "{SHA}"' in text
    assert alert_path("reports/alerts", SHA).as_posix() == "reports/alerts/gate-0123456789ab.md"


def test_alert_of_an_overridden_gate_names_who_and_why():
    gp = GateParams(max_metrics={"ece": 0.04}, override=override())
    gate = decide(METRICS, DRIFT, None, CANDIDATE, gp)
    assert gate.decision == "overridden"
    text = render_alert(gate, "flight delay")
    assert text.startswith("# Gate OVERRIDDEN")
    assert "Override by Ada: reviewed (applied" in text
    assert "## What to do" not in text
