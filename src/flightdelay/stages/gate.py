"""Decide whether the model may be packaged (metric, calibration, drift and vs-promoted rules).

Stage `gate`: decide whether the trained model may be packaged (a "blessing").

Rules come from `params.yaml: gate`:

- `min_metrics` / `max_metrics`: bounds on the headline metrics in reports/metrics.json (e.g. ROC AUC at
  least 0.65, expected calibration error at most 0.08). A rule on a metric of the other task is skipped;
- `max_drifted_features`: features over the drift thresholds (reports/drift.json), `drift.expected` not counted;
- `max_prediction_psi`: PSI of the model's predictions, training rows vs the evaluation window;
- `max_drop_vs_promoted`: no worse than the model promoted to prod by more than this, per metric. The
  baseline is registry/prod.json, written by `python -m flightdelay promote`; with no promoted model the
  rule is skipped and gate.json says so.

Every rule's value, threshold and outcome go to reports/gate.json. A failed gate writes an alert naming the
failed rules to reports/alerts/ and exits non-zero, so `dvc repro` stops before `package`. A human who has
reviewed the failure can accept named rules for one model file with `gate.override` (see the alert for the
exact snippet); the decision is then `overridden` and the package manifest records who and why.
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import Any, Final, Literal

from flightdelay.core.config import GATE_METRICS, DatasetParams, GateMetric, GateParams, Override, Params
from flightdelay.core.contracts import (
    Baseline,
    Candidate,
    DriftResult,
    DriftSummary,
    GateDecision,
    GateRule,
    OverrideRecord,
    TrainSummary,
)
from flightdelay.core.errors import PipelineError
from flightdelay.core.files import read_json, write_text
from flightdelay.core.hashing import sha256_file
from flightdelay.core.tables import markdown_table
from flightdelay.release.record import read_record

log = logging.getLogger(__name__)

# Paths come on the command line (dvc.yaml's cmd): option -> help. The CLI makes them required options.
INPUTS = {
    "metrics": "the evaluate stage's headline metrics",
    "drift": "the drift stage's JSON result",
    "summary": "the train stage's JSON summary",
    "model": "the model file judged (its SHA-256 names it)",
    "promoted": "the registry record of the model in prod, to compare with",
}
OUTPUTS = {"gate": "JSON decision with every rule"}
UNTRACKED = {"alerts": "folder for the alert written when the gate fails or is overridden"}

PASS: Final = "pass"
FAIL: Final = "fail"
SKIPPED: Final = "skipped"
Decision = Literal["pass", "fail", "overridden"]


class GateFailed(PipelineError):
    """The gate refused the model; the message names the failed rules and the alert file."""


# ------------------------------------------------------------------------------------------------ pure logic


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


Comparison = Literal[">=", "<="]
Outcome = Literal["pass", "fail", "skipped"]


def rule(name: str, value: Any, comparison: Comparison, threshold: Any, outcome: Outcome, note: str = "") -> GateRule:
    return GateRule(rule=name, value=value, comparison=comparison, threshold=threshold, outcome=outcome, note=note)


def _bound(name: str, value: Any, comparison: Comparison, threshold: float) -> GateRule:
    if _missing(value):
        return rule(name, None, comparison, threshold, FAIL, "the value is missing (NaN): cannot show the rule holds")
    ok = value >= threshold if comparison == ">=" else value <= threshold
    return rule(name, value, comparison, threshold, PASS if ok else FAIL)


def metric_rules(metrics: dict[str, Any], task: str, gp: GateParams) -> list[GateRule]:
    """`min_metrics` and `max_metrics` against the headline metrics of this run."""
    out = []
    bounds: tuple[tuple[str, Comparison, dict[GateMetric, int | float]], ...] = (
        ("min_metrics", ">=", gp.min_metrics),
        ("max_metrics", "<=", gp.max_metrics),
    )
    for section, comparison, rules in bounds:
        for metric, threshold in rules.items():
            name = f"{section}.{metric}"
            if metric not in metrics:
                out.append(rule(name, None, comparison, threshold, SKIPPED, f"not a metric of the {task} task"))
            else:
                out.append(_bound(name, metrics[metric], comparison, threshold))
    return out


def drift_rules(summary: DriftSummary, gp: GateParams) -> list[GateRule]:
    out = []
    if gp.max_drifted_features is not None:
        counted = summary.counted
        r = _bound("max_drifted_features", len(counted), "<=", gp.max_drifted_features)
        out.append(r.model_copy(update={"note": "over threshold: " + (", ".join(counted) if counted else "none")}))
    if gp.max_prediction_psi is not None:
        out.append(_bound("max_prediction_psi", summary.prediction_psi, "<=", gp.max_prediction_psi))
    return out


def promoted_rules(
    metrics: dict[str, Any], task: str, promoted: dict[str, Any] | None, gp: GateParams
) -> list[GateRule]:
    """No worse than the promoted model by more than the tolerance, per metric (absolute difference)."""
    out = []
    for metric, tolerance in gp.max_drop_vs_promoted.items():
        name = f"max_drop_vs_promoted.{metric}"
        if promoted is None:
            out.append(rule(name, None, "<=", tolerance, SKIPPED, "no model is promoted to prod: nothing to compare"))
            continue
        package = promoted["package"]
        theirs = package.get("metrics", {}).get(metric)
        label = f"{promoted['version']} ({package['name']})"
        if package.get("task") != task or _missing(theirs) or metric not in metrics:
            out.append(
                rule(name, None, "<=", tolerance, SKIPPED, f"{metric} is not comparable with the promoted {label}")
            )
            continue
        ours = metrics[metric]
        if _missing(ours):
            out.append(rule(name, None, "<=", tolerance, FAIL, f"{metric} is missing (NaN) for this model"))
            continue
        drop = theirs - ours if GATE_METRICS[metric] == "higher" else ours - theirs
        r = _bound(name, drop, "<=", tolerance)
        out.append(r.model_copy(update={"note": f"this model {ours:.4f}, promoted {label} {theirs:.4f}"}))
    return out


def apply_override(
    failed: list[str], override: Override | None, model_sha256: str
) -> tuple[Decision, OverrideRecord | None]:
    """(decision, override record). An override applies only to the model file it names and only when it
    accepts every failed rule; otherwise the gate still fails and the record says why."""
    if override is None:
        return (FAIL if failed else PASS), None

    def record(applied: bool, note: str) -> OverrideRecord:
        return OverrideRecord(
            approved_by=override.approved_by,
            reason=override.reason,
            rules=list(override.rules),
            model_sha256=override.model_sha256,
            applied=applied,
            note=note,
        )

    if not failed:
        return PASS, record(False, "not needed: every rule passed")
    if model_sha256.lower() != override.model_sha256.lower():
        return FAIL, record(
            False, f"written for model {override.model_sha256[:12]}, not this model {model_sha256[:12]}"
        )
    uncovered = [r for r in failed if r not in override.rules]
    if uncovered:
        return FAIL, record(False, f"does not accept the failed rule(s) {uncovered}")
    return "overridden", record(True, f"accepts the failed rule(s) {failed}")


def decide(
    metrics: dict[str, Any],
    drift: DriftSummary,
    promoted: dict[str, Any] | None,
    candidate: Candidate,
    gp: GateParams,
) -> GateDecision:
    """The gate decision with every rule's value, threshold and outcome."""
    task = candidate.task
    rules = metric_rules(metrics, task, gp) + drift_rules(drift, gp) + promoted_rules(metrics, task, promoted, gp)
    failed = [r.rule for r in rules if r.outcome == FAIL]
    decision, override = apply_override(failed, gp.override, candidate.model_sha256)
    baseline = None
    if promoted is not None:
        baseline = Baseline(
            stage="prod",
            version=promoted["version"],
            package=promoted["package"]["name"],
            commit=promoted["commit"],
        )
    return GateDecision(
        decision=decision,
        candidate=candidate,
        baseline=baseline,
        failed=failed,
        skipped=[r.rule for r in rules if r.outcome == SKIPPED],
        override=override,
        rules=rules,
    )


def _show(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def render_alert(gate: GateDecision, name: str) -> str:
    """The alert a human reads after a failed (or overridden) gate, with the override snippet to accept it;
    `name` is the model's name (dataset.name)."""
    c = gate.candidate
    sha = c.model_sha256[:12]
    title = "FAILED" if gate.decision == FAIL else "OVERRIDDEN"
    lines = [
        f"# Gate {title}: {name} model {sha} ({c.model}, {c.task})",
        "",
        "No package is built from a failed gate." if gate.decision == FAIL else "The package was built anyway.",
        "",
        *markdown_table(
            ["failed rule", "value", "threshold", "note"],
            [
                [r.rule, _show(r.value), f"{r.comparison} {_show(r.threshold)}", r.note]
                for r in gate.rules
                if r.outcome == FAIL
            ],
            "->>-",
        ),
    ]
    override = gate.override
    if override is not None:
        lines += [
            "",
            f"Override by {override.approved_by}: {override.reason} "
            f"({'applied' if override.applied else 'not applied'}: {override.note}).",
        ]
    if gate.decision == FAIL:
        rules = ", ".join(gate.failed)
        lines += [
            "",
            "## What to do",
            "",
            "Fix the cause and run `dvc repro` again. Or, after reviewing the failure, accept exactly these rules "
            "for exactly this model file in `params.yaml` and run `dvc repro`; the override is recorded in the "
            "package manifest:",
            "",
            "```yaml",
            "gate:",
            "  override:",
            '    approved_by: "<your name>"',
            '    reason: "<why this model may ship anyway>"',
            f"    rules: [{rules}]",
            f'    model_sha256: "{c.model_sha256}"',  # the full hash: an override names one exact file
            "```",
        ]
    lines += ["", "Every rule, passed or not: `reports/gate.json`."]
    return "\n".join(lines) + "\n"


def alert_path(alerts_dir: str | Path, model_sha256: str) -> Path:
    """One alert file per model file; its name holds no time, so a rerun replaces it."""
    return Path(alerts_dir) / f"gate-{model_sha256[:12]}.md"


# ------------------------------------------------------------------------------------------------ entry point


def main(args: argparse.Namespace, params: Params) -> None:
    run(
        params.dataset,
        params.gate,
        metrics_file=args.metrics,
        drift_file=args.drift,
        summary_file=args.summary,
        model_file=args.model,
        promoted_file=args.promoted,
        gate_file=args.gate,
        alerts_dir=args.alerts,
    )


def run(
    dataset: DatasetParams,
    gate: GateParams,
    *,
    metrics_file: str | Path,
    drift_file: str | Path,
    summary_file: str | Path,
    model_file: str | Path,
    promoted_file: str | Path,
    gate_file: str | Path,
    alerts_dir: str | Path,
) -> None:
    summary = TrainSummary.load(summary_file)
    candidate = Candidate(model_sha256=sha256_file(model_file), model=summary.model, task=summary.task)
    drift = DriftResult.load(drift_file).summary
    result = decide(read_json(metrics_file), drift, read_record(promoted_file), candidate, gate)
    result.save(gate_file)
    for r in result.rules:
        log.info("gate: %-34s %-7s %s %s %s", r.rule, r.outcome, _show(r.value), r.comparison, r.threshold)
    if result.decision == PASS:
        log.info("gate: pass")
        return
    alert = alert_path(alerts_dir, candidate.model_sha256)
    write_text(alert, render_alert(result, dataset.name))
    if result.decision == FAIL:
        for line in render_alert(result, dataset.name).splitlines():
            if line.startswith("| ") and not line.startswith("| failed rule"):
                log.error("gate alert: %s", line)
        raise GateFailed(
            f"the model may not be packaged; failed rule(s): {', '.join(result.failed)}. Alert: {alert} "
            "(it shows how to override after review)"
        )
    approver = result.override.approved_by if result.override is not None else "?"
    log.warning("gate: OVERRIDDEN by %s: %s (alert: %s)", approver, result.failed, alert)
