"""Write reports/report.md, a model card draft, with PNG figures in reports/figures/ and the same as a PDF.

Stage `report`: reports/report.md, a model card draft for a human to polish, with PNG figures, and
reports/report.pdf, the same content with the figures in it, for readers who do not read Markdown.

Reads only the pipeline's small outputs (metrics, rows, slices, drift, gate, the package pointer, plot data,
the promoted model's registry record), so it is cheap and its outputs are git-tracked. Every name and word of the
data set (titles, the target, class names, what the rows are) comes from params.yaml `dataset`. The figures are
drawn with matplotlib's Agg renderer in its default style, with no metadata that changes between runs, and the
PDF is written by reportlab in invariant mode (core/pdf.py), so the same inputs give the same bytes.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import logging
from pathlib import Path
from typing import Any

import yaml

from flightdelay.core.config import DatasetParams, FeatureParams, IngestParams, Params, ReportParams, TrainParams
from flightdelay.core.contracts import DriftResult, FeatureDrift, GateDecision, TrainSummary
from flightdelay.core.files import atomic_dir, atomic_path, read_json, to_json, write_text
from flightdelay.core.pdf import render_pdf
from flightdelay.core.tables import markdown_table
from flightdelay.release.record import read_record

log = logging.getLogger(__name__)

# Paths come on the command line (dvc.yaml's cmd): option -> help. The CLI makes them required options.
INPUTS = {
    "metrics": "the evaluate stage's headline metrics",
    "rows": "the evaluate stage's row counts",
    "slices": "the evaluate stage's slice metrics",
    "plots": "the evaluate stage's plot data folder",
    "drift": "the drift stage's JSON result",
    "gate": "the gate stage's decision",
    "pointer": "the package stage's pointer to the package",
    "promoted": "the registry record of the model in prod",
    "summary": "the train stage's JSON summary",
}
OUTPUTS = {
    "report": "the Markdown model card draft",
    "figures": "folder for its PNG figures",
    "pdf": "the same model card as a PDF, figures included",
}
UNTRACKED: dict[str, str] = {}

# Metrics shown in the model card, in this order, with a label.
METRIC_LABELS = {
    "roc_auc": "ROC AUC",
    "pr_auc": "PR AUC (average precision)",
    "log_loss": "log loss",
    "brier": "Brier score",
    "ece": "expected calibration error",
    "f1": "F1 at the threshold",
    "accuracy": "accuracy at the threshold",
    "mae": "mean absolute error",
    "rmse": "root mean squared error",
    "r2": "R²",
}
FIGURE_TITLES = {
    "roc.png": "ROC curve",
    "precision_recall.png": "Precision-recall curve",
    "calibration.png": "Calibration",
    "importance.png": "Permutation importance",
    "drift.png": "Drift (PSI per feature)",
    "residuals.png": "Residuals",
}


# ------------------------------------------------------------------------------------------------ figures


def _figure(width: float = 6.0, height: float = 4.5) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any, dpi: int) -> bytes:
    buffer = io.BytesIO()
    # No "Software" (matplotlib's version) or any other text chunk: identical inputs give identical bytes.
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


def _curve(points: list[dict[str, float]], x: str, y: str, title: str, xlabel: str, ylabel: str, dpi: int) -> bytes:
    fig = _figure()
    ax = fig.add_subplot()
    marker = "o" if x == "mean_predicted" else None  # calibration bins are points, curves are lines
    ax.plot([p[x] for p in points], [p[y] for p in points], color="tab:blue", marker=marker, label="model")
    if x in ("fpr", "mean_predicted"):
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="chance" if x == "fpr" else "ideal")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel, xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig, dpi)


def _bars(
    labels: list[str],
    values: list[float],
    title: str,
    xlabel: str,
    dpi: int,
    line: float | None = None,
    colors: list[str] | None = None,
) -> bytes:
    fig = _figure(7.0, max(2.5, 0.3 * len(labels) + 1.2))
    ax = fig.add_subplot()
    positions = list(range(len(labels)))[::-1]  # largest on top
    ax.barh(positions, values, color=colors or "tab:blue")
    ax.set_yticks(positions, labels)
    if line is not None:
        ax.axvline(line, color="tab:red", linestyle="--", linewidth=1, label=f"threshold {line}")
        ax.legend(loc="lower right")
    ax.set(title=title, xlabel=xlabel)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _png(fig, dpi)


def metric_label(key: str, dataset: DatasetParams) -> str:
    """A metric's name in the model card; errors of a regression carry the target's unit."""
    label = METRIC_LABELS.get(key, key)
    return f"{label} ({dataset.target.regression.unit})" if key in ("mae", "rmse") else label


def figures(
    plots: dict[str, Any], drift: DriftResult, task: str, top: int, dpi: int, dataset: DatasetParams
) -> dict[str, bytes]:
    """File name -> PNG bytes. Curves that do not apply to the task (or have no points) are left out. Titles and
    axes name the model and the target as params.yaml `dataset` does."""
    out: dict[str, bytes] = {}
    name, positive = dataset.name, dataset.target.classification.labels[1]
    regression = dataset.target.regression
    if task == "classification":
        if plots.get("roc.json"):
            out["roc.png"] = _curve(
                plots["roc.json"],
                "fpr",
                "tpr",
                f"ROC curve, {name} (evaluation months)",
                "false positive rate",
                "true positive rate",
                dpi,
            )
        if plots.get("precision_recall.json"):
            out["precision_recall.png"] = _curve(
                plots["precision_recall.json"],
                "recall",
                "precision",
                f"Precision-recall, {name} (evaluation months)",
                "recall",
                "precision",
                dpi,
            )
        if plots.get("calibration.json"):
            out["calibration.png"] = _curve(
                plots["calibration.json"],
                "mean_predicted",
                "fraction_positive",
                f"Calibration, {name} (evaluation months)",
                f"mean predicted probability of {positive}",
                f"observed share {positive}",
                dpi,
            )
    elif plots.get("residuals.json"):
        fig = _figure()
        ax = fig.add_subplot()
        rows = plots["residuals.json"]
        ax.scatter([r["predicted"] for r in rows], [r["residual"] for r in rows], s=4, alpha=0.4)
        ax.axhline(0, color="grey", linewidth=1)
        ax.set(
            title=f"Residuals, {name} (evaluation months)",
            xlabel=f"predicted {regression.name} ({regression.unit})",
            ylabel=f"actual - predicted ({regression.unit})",
        )
        fig.tight_layout()
        out["residuals.png"] = _png(fig, dpi)
    importance = (plots.get("importance.json") or [])[:top]
    if importance:
        out["importance.png"] = _bars(
            [r["feature"] for r in importance],
            [r["importance"] for r in importance],
            f"Permutation importance, {name} (top features)",
            "drop in test score when the feature is shuffled",
            dpi,
        )
    ranked = sorted(drift.features, key=lambda f: (-(f.psi or 0.0), f.feature))[:top]
    if ranked:
        out["drift.png"] = _bars(
            [f.feature + (" (expected)" if f.expected else "") for f in ranked],
            [f.psi or 0.0 for f in ranked],
            f"Drift of {name}: PSI, training rows vs evaluation window",
            "population stability index",
            dpi,
            line=drift.thresholds.psi,
            colors=[
                "tab:red" if f.over_threshold and not f.expected else "tab:grey" if f.expected else "tab:blue"
                for f in ranked
            ],
        )
    return out


# ------------------------------------------------------------------------------------------------ markdown


def _plain(value: Any) -> Any:
    """Dataclass dicts with tuples -> plain JSON types (lists), as YAML and Markdown want them."""
    return json.loads(to_json(value))


def _span(months: list[str]) -> str:
    """A run of consecutive 'YYYY-MM' months as 'first to last' (or the one month)."""
    return months[0] if len(months) == 1 else f"{months[0]} to {months[-1]}"


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _pvalue(value: float | None) -> str:
    if value is None:
        return "—"
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def _table(header: list[str], rows: list[list[Any]], left: int = 1) -> list[str]:
    """A Markdown table; the first `left` columns are text (left-aligned), the rest numbers (right-aligned)."""
    return markdown_table(header, [[_fmt(v) for v in row] for row in rows], "-" * left + ">" * (len(header) - left))


@dataclasses.dataclass(frozen=True)
class ReportInputs:
    """What the model card is drawn from: the pipeline's outputs, loaded and typed, and the params it shows."""

    dataset: DatasetParams  # names and words of the data set (params.yaml `dataset`)
    summary: TrainSummary
    drift: DriftResult
    gate: GateDecision
    package: dict[str, Any]  # reports/package.json, the package stage's pointer
    metrics: dict[str, Any]  # reports/metrics.json: headline metrics and the constant baseline's
    rows: dict[str, Any]  # reports/rows.json: rows of the main table per stage
    slices: dict[str, dict[str, dict[str, Any]]]  # reports/slices.json: column -> value -> metrics
    promoted: dict[str, Any] | None  # the promoted version in registry/prod.json, None when none is
    window: dict[str, str]  # ingest.window: start and end month
    split: dict[str, list[str]]  # features.split: the train and test months, 'YYYY-MM', in order
    params: dict[str, Any]  # `features` and `train` params as plain JSON types
    top: int  # features in the drift table
    figures: list[str]  # names of the PNG figures, in order


def _model_section(r: ReportInputs) -> list[str]:
    summary, package = r.summary, r.package
    n_num, n_cat = len(summary.numeric), len(summary.categorical)
    return [
        f"# Model card (draft): {r.dataset.name}, {summary.model}",
        "",
        "> Draft written by the `report` stage from the pipeline's outputs. A human polishes the prose (intended "
        "use, limitations) before publishing; the numbers come from `reports/*.json` of the same commit.",
        "",
        "## Model",
        "",
        *_table(
            ["property", "value"],
            left=2,
            rows=[
                ["artifact", f"`{r.dataset.artifact}`"],
                ["package", f"`{package['name']}` (`{package['path']}/`)"],
                ["package hash", f"`{package['hash']}`"],
                ["model file SHA-256", f"`{package['model_sha256']}`"],
                ["model", f"{summary.model}, {summary.task} of `{summary.target}` ({target_name(r)})"],
                ["features", f"{n_num + n_cat} ({n_num} numeric, {n_cat} categorical)"],
                ["feature groups", ", ".join(r.params["train"]["feature_groups"])],
                ["training rows", summary.rows],
                ["iterations", summary.iterations],
            ],
        ),
    ]


def target_name(r: ReportInputs) -> str:
    t = r.dataset.target
    if r.summary.task == "classification":
        return f"{t.classification.name}: 1 {t.classification.labels[1]}, 0 {t.classification.labels[0]}"
    return f"{t.regression.name}, in {t.regression.unit}"


def _intended_use_section(r: ReportInputs) -> list[str]:
    t = r.dataset.target
    predicts = t.classification.predicts if r.summary.task == "classification" else t.regression.predicts
    return [
        "## Intended use and limitations",
        "",
        f"Predicts {predicts} (the features are facts known when the prediction is made). *To be completed by "
        "the model owner: who uses the predictions, for what decision, and where the model must not be used.*",
    ]


def _data_section(r: ReportInputs) -> list[str]:
    rows = r.rows
    return [
        "## Data",
        "",
        f"Window {r.window['start']} to {r.window['end']}; training months {_span(r.split['train'])}, "
        f"evaluation months {_span(r.split['test'])}. Main table `{r.dataset.table}`; "
        + (
            f"entity keys {', '.join(f'`{k}`' for k in r.dataset.entity_keys)}."
            if r.dataset.entity_keys
            else "one series."
        ),
        "",
        *_table(
            [r.dataset.rows, "rows"],
            [
                ["read", rows["ingest"]["in"]],
                ["quarantined by ingest (unreadable values)", rows["ingest"]["quarantined"]],
                ["quarantined by validate (schema rules)", rows["validate"]["quarantined"]],
                ["passed validation", rows["validate"]["passed"]],
                ["no target value (features.missing_target)", rows["features"]["no_arrival"]],
                ["outside the training and evaluation months", rows["features"]["unused_months"]],
                ["training", rows["features"]["train"]],
                ["evaluation", rows["features"]["test"]],
            ],
        ),
    ]


def _params_section(r: ReportInputs) -> list[str]:
    return [
        "## Params",
        "",
        "```yaml",
        yaml.safe_dump(
            {"features": r.params["features"], "train": r.params["train"]},
            sort_keys=False,
            default_flow_style=None,
            width=110,
        ).rstrip(),
        "```",
    ]


def _metrics_section(r: ReportInputs) -> list[str]:
    metrics, promoted = r.metrics, r.promoted
    baseline = metrics.get("baseline", {})
    theirs = promoted["package"]["metrics"] if promoted else {}
    promoted_label = (
        f"promoted ({promoted['stage']} {promoted['version']}, `{promoted['package']['name']}`)"
        if promoted
        else "promoted"
    )
    return [
        "## Metrics",
        "",
        *_table(
            ["metric (evaluation months)", "this model", "constant baseline", promoted_label],
            [
                [metric_label(k, r.dataset), metrics[k], baseline.get(k), theirs.get(k)]
                for k in METRIC_LABELS
                if k in metrics
            ],
        ),
        "",
        (
            f"The promoted model is {promoted['version']} at commit `{promoted['commit'][:12]}`."
            if promoted
            else "No model is promoted to prod yet, so there is nothing to compare with."
        ),
    ]


def _slices_section(r: ReportInputs) -> list[str]:
    keys = (
        ["rows", "positive_rate", "roc_auc", "pr_auc", "brier"]
        if r.summary.task == "classification"
        else ["rows", "mae", "rmse", "r2"]
    )
    lines = ["## Slice metrics", ""]
    for column, table in r.slices.items():
        lines += [f"By `{column}`:", ""]
        lines += _table([column, *keys], [[value, *[m.get(k) for k in keys]] for value, m in table.items()])
        lines.append("")
    return lines[:-1]


def _drift_order(f: FeatureDrift) -> tuple[bool, float, str]:
    return (not f.over_threshold, -(f.psi or 0.0), f.feature)


def _drift_section(r: ReportInputs) -> list[str]:
    s = r.drift.summary
    top = sorted(r.drift.features, key=_drift_order)[: r.top]
    return [
        "## Drift",
        "",
        f"Prediction PSI {_fmt(s.prediction_psi, 3)} (training rows vs evaluation window). "
        f"{len(s.over_threshold)} of {s.features} features over threshold"
        + (f": {', '.join(s.over_threshold)}" if s.over_threshold else "")
        + f"; {len(s.counted)} counted by the gate (not in `drift.expected`). Full table: "
        "[drift_report.md](drift_report.md).",
        "",
        *_table(
            ["feature", "kind", "over threshold", "PSI", "test p-value"],
            [
                [
                    f.feature,
                    f.kind,
                    ("yes" if f.over_threshold else "no") + (" (expected)" if f.expected else ""),
                    f.psi,
                    _pvalue(f.p_value),
                ]
                for f in top
            ],
            left=3,
        ),
    ]


def _gate_section(r: ReportInputs) -> list[str]:
    gate = r.gate
    lines = ["## Gate", "", f"Decision: **{gate.decision}**."]
    if gate.baseline:
        b = gate.baseline
        lines.append(f"Compared with the promoted {b.stage} model {b.version} (`{b.package}`).")
    lines.append("")
    lines += _table(
        ["rule", "outcome", "note", "value", "threshold"],
        [[g.rule, g.outcome, g.note, g.value, f"{g.comparison} {g.threshold}"] for g in gate.rules],
        left=3,
    )
    if gate.override:
        o = gate.override
        lines += [
            "",
            f"Override by **{o.approved_by}** ({'applied' if o.applied else 'not applied'}): {o.reason} "
            f"— accepts {', '.join(o.rules)}.",
        ]
    return lines


def _lineage_section(r: ReportInputs) -> list[str]:
    package = r.package
    return [
        "## Lineage",
        "",
        "- Git commit: the commit that holds this file and `dvc.lock`. A file cannot name the commit that "
        "contains it, so the commit of a released model is recorded when it is promoted: in its GTO tag and "
        "`registry/<stage>.json` (`python -m flightdelay history prod`).",
        f"- Package `{package['name']}`, hash `{package['hash']}`.",
        "- Data and config it was trained from (hashes from `dvc.lock`):",
        "",
        *_table(["path", "hash"], [[f"`{p}`", f"`{h}`"] for p, h in package["data"].items()], left=2),
    ]


def _figures_section(r: ReportInputs) -> list[str]:
    lines = ["## Figures", ""]
    for name in r.figures:
        lines += [f"![{FIGURE_TITLES.get(name, name)}](figures/{name})", ""]
    return lines


SECTIONS = (
    _model_section,
    _intended_use_section,
    _data_section,
    _params_section,
    _metrics_section,
    _slices_section,
    _drift_section,
    _gate_section,
    _lineage_section,
    _figures_section,
)


def render(inputs: ReportInputs) -> str:
    """The model card draft: its sections in order, a blank line between two."""
    lines: list[str] = []
    for section in SECTIONS:
        lines += [*section(inputs), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


# ------------------------------------------------------------------------------------------------ entry point


def main(args: argparse.Namespace, params: Params) -> None:
    run(
        params.dataset,
        params.ingest,
        params.features,
        params.train,
        params.report,
        metrics_file=args.metrics,
        rows_file=args.rows,
        slices_file=args.slices,
        plots_dir=args.plots,
        drift_file=args.drift,
        gate_file=args.gate,
        pointer_file=args.pointer,
        promoted_file=args.promoted,
        summary_file=args.summary,
        report_file=args.report,
        figures_dir=args.figures,
        pdf_file=args.pdf,
    )


def run(
    dataset: DatasetParams,
    ingest: IngestParams,
    features: FeatureParams,
    train: TrainParams,
    report: ReportParams,
    *,
    metrics_file: str | Path,
    rows_file: str | Path,
    slices_file: str | Path,
    plots_dir: str | Path,
    drift_file: str | Path,
    gate_file: str | Path,
    pointer_file: str | Path,
    promoted_file: str | Path,
    summary_file: str | Path,
    report_file: str | Path,
    figures_dir: str | Path,
    pdf_file: str | Path,
) -> None:
    summary = TrainSummary.load(summary_file)
    plots = {p.name: read_json(p) for p in sorted(Path(plots_dir).glob("*.json"))}
    drift = DriftResult.load(drift_file)
    pictures = figures(plots, drift, summary.task, report.top_features, report.dpi, dataset)
    inputs = ReportInputs(
        dataset=dataset,
        summary=summary,
        drift=drift,
        gate=GateDecision.load(gate_file),
        package=read_json(pointer_file),
        metrics=read_json(metrics_file),
        rows=read_json(rows_file),
        slices=read_json(slices_file),
        promoted=read_record(promoted_file),
        window=dataclasses.asdict(ingest.window),
        split={"train": features.split.train_months(), "test": features.split.test_months()},
        params=_plain({"features": dataclasses.asdict(features), "train": dataclasses.asdict(train)}),
        top=report.top_features,
        figures=sorted(pictures),
    )
    with atomic_dir(figures_dir) as tmp:
        for name, data in pictures.items():
            (tmp / name).write_bytes(data)
    markdown = render(inputs)
    write_text(report_file, markdown)
    # The PDF's images are the figures the Markdown links to, by the same relative path (_figures_section).
    linked = {f"figures/{name}": data for name, data in pictures.items()}
    with atomic_path(pdf_file) as tmp:
        tmp.write_bytes(pdf(markdown, linked, dataset))
    log.info("report: %s and %s with %d figures in %s", report_file, pdf_file, len(pictures), figures_dir)


def pdf(markdown: str, figures: dict[str, bytes], dataset: DatasetParams) -> bytes:
    """The model card as PDF bytes, the same for the same inputs."""
    return render_pdf(markdown, figures, title=f"Model card: {dataset.name}", author=f"{dataset.artifact} pipeline")
