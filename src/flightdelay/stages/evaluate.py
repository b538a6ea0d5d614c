"""Test metrics beside a constant baseline, slice metrics, plot data.

Stage `evaluate`: test metrics beside a trivial baseline, per-slice metrics and plot data.

Cheap by design (it reads the predictions written by `predict`), because its outputs are small git-tracked
files that `dvc metrics diff` and `dvc plots diff` compare across commits without the remote.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flightdelay.core.config import DatasetParams, EvaluateParams, Params, TrainParams
from flightdelay.core.contracts import TrainSummary
from flightdelay.core.errors import PipelineError
from flightdelay.core.files import atomic_dir, read_json, read_parquet, write_json
from flightdelay.modeling import metrics

log = logging.getLogger(__name__)

# Paths come on the command line (dvc.yaml's cmd): option -> help. The CLI makes them required options.
INPUTS = {
    "predictions": "the predict stage's folder",
    "summary": "the train stage's JSON summary",
    "ingested": "the ingest stage's folder (its counts.json)",
    "validated": "the validate stage's folder (its counts.json)",
    "processed": "the features stage's folder (its counts.json)",
}
OUTPUTS = {
    "metrics": "JSON headline metrics (dvc metrics)",
    "evaluation": "JSON metrics in detail, with the baseline",
    "slices": "JSON metrics per slice",
    "rows": "JSON: where every row went, from raw to scored",
    "plots": "folder of plot data (dvc plots)",
}
UNTRACKED: dict[str, str] = {}


def score(scored: pd.DataFrame, summary: TrainSummary, ep: EvaluateParams) -> dict[str, Any]:
    """Test metrics of the model and of a constant baseline (the training mean)."""
    y = scored[summary.target].to_numpy()
    pred = scored["prediction"].to_numpy()
    constant = np.full(len(y), summary.target_mean, dtype=float)
    if summary.task == "classification":
        model = metrics.classification(y, pred, ep.threshold, ep.calibration_bins)
        baseline = metrics.classification(y, constant, ep.threshold, ep.calibration_bins)
    else:
        model = metrics.regression(y, pred)
        baseline = metrics.regression(y, constant)
    return {**model, "baseline": baseline}


PLOT_FILES = (
    "roc.json",
    "precision_recall.json",
    "calibration.json",
    "confusion.json",
    "importance.json",
    "residuals.json",
)
HEADLINE = {
    "classification": (
        ["roc_auc", "pr_auc", "log_loss", "brier", "ece", "f1", "accuracy"],
        ["roc_auc", "pr_auc", "log_loss", "brier"],
    ),
    "regression": (["mae", "rmse", "r2"], ["mae", "rmse", "r2"]),
}


def headline(result: dict[str, Any], task: str) -> dict[str, Any]:
    """The few numbers `dvc metrics show` prints; everything else goes to reports/evaluation.json."""
    model_keys, baseline_keys = HEADLINE[task]
    return {
        **{k: result[k] for k in model_keys},
        "baseline": {k: result["baseline"][k] for k in baseline_keys},
    }


def slice_columns(scored: pd.DataFrame, summary: TrainSummary) -> list[str]:
    """The columns evaluate.slices may name: the id columns `predict` keeps beside each prediction (not the target
    nor the prediction itself)."""
    return [c for c in scored.columns if c not in (summary.target, "prediction")]


def check_slices(ep: EvaluateParams, scored: pd.DataFrame, summary: TrainSummary, source: str) -> None:
    """Every column evaluate.slices names is one the scored rows carry; a column that is not there is an error
    before anything is written, not a slice left out of reports/slices.json without a word."""
    usable = slice_columns(scored, summary)
    unknown = [c for c in ep.slices if c not in usable]
    if unknown:
        raise PipelineError(
            f"params.yaml: evaluate.slices: no column {', '.join(map(repr, unknown))} among the scored rows "
            f"({source}); use any of {', '.join(usable) or '(none: the features stage keeps no id columns)'} "
            "(the id columns the features stage keeps, id_columns in its feature_spec.json), or remove it"
        )


def slices(scored: pd.DataFrame, summary: TrainSummary, ep: EvaluateParams) -> dict[str, Any]:
    """Metrics per value of each column evaluate.slices names (check_slices checked they are all there)."""
    return {
        column: metrics.slice_table(
            scored,
            column,
            summary.target,
            summary.task,
            ep.threshold,
            ep.calibration_bins,
            ep.min_slice_rows,
        )
        for column in ep.slices
    }


def plot_data(
    scored: pd.DataFrame,
    importance: list[dict[str, Any]],
    summary: TrainSummary,
    ep: EvaluateParams,
    seed: int,
    labels: dict[int, str],
) -> dict[str, Any]:
    """File name -> rows, for the plots declared in dvc.yaml. Plots that do not apply to the task get an
    empty list, so `dvc plots show` and `dvc plots diff` find every declared file for either task. `labels` names
    the classes in the confusion matrix (dataset.target.classification.labels)."""
    y = scored[summary.target].to_numpy()
    pred = scored["prediction"].to_numpy()
    files: dict[str, Any] = {name: [] for name in PLOT_FILES}
    files["importance.json"] = importance
    if summary.task == "classification":
        files["roc.json"] = metrics.roc_points(y, pred, ep.curve_points)
        files["precision_recall.json"] = metrics.pr_points(y, pred, ep.curve_points)
        files["calibration.json"] = metrics.calibration_points(y, pred, ep.calibration_bins)
        files["confusion.json"] = metrics.confusion_counts(y, pred, ep.threshold, labels)
    else:
        files["residuals.json"] = metrics.residual_points(y, pred, ep.curve_points * 5, seed)
    return files


def check_names(dataset: DatasetParams, summary: TrainSummary, scored: pd.DataFrame, source: str) -> None:
    """The params' names of the data set agree with what was built: the target column of the task and the entity
    keys (which `predict` keeps beside each prediction)."""
    column = dataset.target.column(summary.task)
    if column != summary.target:
        raise PipelineError(
            f"params.yaml: dataset.target.{summary.task}.column is {column!r} but the features stage built the "
            f"target {summary.target!r} (the train summary); make dataset.target.{summary.task}.column "
            "name the column the features stage builds"
        )
    missing = [key for key in dataset.entity_keys if key not in scored.columns]
    if missing:
        raise PipelineError(
            f"{source}: no column {', '.join(map(repr, missing))} of dataset.entity_keys; name columns the "
            "features stage keeps as id columns (id_columns in its feature_spec.json)"
        )


def row_counts(
    ingest: dict[str, Any], validate: dict[str, Any], features: dict[str, Any], table: str
) -> dict[str, Any]:
    """Where every row of the main table (dataset.table) went, stage by stage. For each stage, in = passed +
    quarantined (+ rows removed by a documented rule: rows with no target, months in neither split)."""
    for stage, counts in (("ingest", ingest), ("validate", validate)):
        if table not in counts:
            raise PipelineError(
                f"the {stage} stage's counts.json has no table {table!r} (params.yaml dataset.table); it counts "
                f"{', '.join(sorted(counts))}: set dataset.table to the main table of the schema"
            )
    return {
        "ingest": {
            "in": ingest[table]["rows_in"],
            "passed": ingest[table]["rows_passed"],
            "quarantined": ingest[table]["rows_quarantined"],
        },
        "validate": {
            "in": validate[table]["rows_in"],
            "passed": validate[table]["rows_passed"],
            "quarantined": validate[table]["rows_quarantined"],
        },
        "features": {
            "in": features["rows_in"],
            "no_arrival": features["rows_dropped_no_arrival"],
            "unused_months": features["rows_unused_months"],
            "train": features["train"],
            "test": features["test"],
        },
    }


def main(args: argparse.Namespace, params: Params) -> dict[str, int]:
    return run(
        params.dataset,
        params.evaluate,
        params.train,
        predictions_dir=args.predictions,
        summary_file=args.summary,
        ingested_dir=args.ingested,
        validated_dir=args.validated,
        processed_dir=args.processed,
        metrics_file=args.metrics,
        detail_file=args.evaluation,
        slices_file=args.slices,
        rows_file=args.rows,
        plots_dir=args.plots,
    )


def run(
    dataset: DatasetParams,
    evaluate: EvaluateParams,
    train: TrainParams,
    *,
    predictions_dir: str | Path,
    summary_file: str | Path,
    ingested_dir: str | Path,
    validated_dir: str | Path,
    processed_dir: str | Path,
    metrics_file: str | Path,
    detail_file: str | Path,
    slices_file: str | Path,
    rows_file: str | Path,
    plots_dir: str | Path,
) -> dict[str, int]:
    ep = evaluate
    summary = TrainSummary.load(summary_file)
    scored = read_parquet(Path(predictions_dir) / "test.parquet")
    check_names(dataset, summary, scored, str(Path(predictions_dir) / "test.parquet"))
    check_slices(ep, scored, summary, str(Path(predictions_dir) / "test.parquet"))
    importance = read_json(Path(predictions_dir) / "importance.json")
    rows = row_counts(
        read_json(Path(ingested_dir) / "counts.json"),
        read_json(Path(validated_dir) / "counts.json"),
        read_json(Path(processed_dir) / "counts.json"),
        dataset.table,
    )
    result = score(scored, summary, ep)
    detail = {
        "task": summary.task,
        "model": summary.model,
        "train_rows": summary.rows,
        "train_target_mean": summary.target_mean,
        **result,
    }
    by_slice = slices(scored, summary, ep)
    plots = plot_data(scored, importance, summary, ep, train.seed, dataset.target.classification.labels)
    # Every input is read and every figure computed before the first write: a stage that fails on its inputs
    # leaves the outputs of its last run (or, under DVC, none), never a mix of the two.
    write_json(metrics_file, headline(result, summary.task))
    write_json(detail_file, detail)
    write_json(slices_file, by_slice)
    write_json(rows_file, rows)
    with atomic_dir(plots_dir) as tmp:
        for name, data in plots.items():
            write_json(tmp / name, data)
    key = "roc_auc" if summary.task == "classification" else "mae"
    log.info(
        "evaluate: %s %.4f (baseline %.4f) on %d test rows", key, result[key], result["baseline"][key], len(scored)
    )
    return {"rows_in": len(scored)}
