"""Score the test months (and the training months, the reference for prediction drift), permutation importance.

Stage `predict`: score the test months with the trained model and measure permutation importance.

The training months are scored too: their predictions are the reference the `drift` stage compares the test
predictions with. Drift needs only their distribution, so a fixed-seed sample of `drift.reference_sample` training
rows is scored (all of them when there are fewer). Kept apart from `evaluate` and `drift` because it is the expensive
part: its outputs are DVC-cached, so the run-cache can restore them, while the cheap stages after it turn them into
small git-tracked reports. Where the work repays compiling it (`KERNEL_MIN_EVALUATIONS`), the scoring and the
importance go through the service's compiled tree kernel (flightdelay.modeling.fast_model), whose numbers are
scikit-learn's bit for bit, so the outputs do not depend on which path ran.
"""

from __future__ import annotations

import argparse
import copy
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.inspection import permutation_importance

from flightdelay.core.config import DriftParams, EvaluateParams, Params, TrainParams
from flightdelay.core.contracts import FeatureSpec, TrainSummary
from flightdelay.core.files import read_parquet, split_files, write_json, write_parquet
from flightdelay.core.sampling import frame_sample_draw, read_sample
from flightdelay.modeling.fast_model import FastModel, columns_split_on
from flightdelay.modeling.model import load_model, prepare

log = logging.getLogger(__name__)
# Below this many tree evaluations (`tree_evaluations`) scikit-learn's predict is the faster: building the
# kernel's layout and compiling it cost about 2.5 CPU s per process (numba's import 0.3, FastModel.build 0.5,
# the compile 1.7), which scikit-learn's trees repay at roughly 50 ns an evaluation. The default data makes about
# 160 million; the end-to-end tests and `benchmarks/run.py --quick`, a few million. Either way, the same numbers.
KERNEL_MIN_EVALUATIONS = 50_000_000
# KernelCached keeps every tree's leaf value per importance row: up to this many (trees x rows) values (256 MiB)
CACHED_LEAVES = 32 * 1024 * 1024

# Paths come on the command line (dvc.yaml's cmd): option -> help. The CLI makes them required options.
INPUTS = {
    "input": "the features stage's folder",
    "model": "the model file (skops)",
    "summary": "the train stage's JSON summary",
}
OUTPUTS = {"out": "folder for test.parquet, train.parquet (the drift reference sample) and importance.json"}
UNTRACKED: dict[str, str] = {}


def predictions(
    model: Any, frame: pd.DataFrame, summary: TrainSummary, id_columns: list[str], fast: FastModel | None = None
) -> pd.DataFrame:
    """ID columns, the target and the model's prediction (probability of class 1, or the predicted value) per row;
    by `fast` (`FastModel.build(model)`: predict_proba's numbers bit for bit) where there is one."""
    X = prepare(frame, summary.numeric, summary.categorical)
    if fast is not None:
        pred = fast.predict_proba(X)
    elif summary.task == "classification":
        pred = model.predict_proba(X)[:, 1]
    else:
        pred = model.predict(X)
    out = frame[[c for c in id_columns if c in frame.columns]].copy()
    out[summary.target] = frame[summary.target].to_numpy()
    out["prediction"] = np.asarray(pred, dtype="float64")
    return out


def encoded_step(model: Any, X: pd.DataFrame) -> tuple[Any, np.ndarray, list[str]] | None:
    """(estimator, X encoded, raw column of each encoded column) when the encoding maps columns one to one.

    Such an encoding (the ordinal codes and passthrough of hist_gradient_boosting) is fitted state applied to each
    value alone, so shuffling an encoded column is shuffling its raw column, and permutation importance measured
    on the encoded matrix with the estimator alone is the importance of the raw features, with the strings
    encoded once instead of once per shuffle. One-hot encoding (logistic_regression) spreads a column over
    several, and the constant model has no encoding: None for those.
    """
    if len(model.steps) < 2:
        return None
    encode = model[:-1]
    names = [str(n) for n in encode.get_feature_names_out()]
    if sorted(names) != sorted(X.columns):
        return None
    encoded = np.asarray(encode.transform(X), dtype="float64")
    if encoded.shape[1] != len(names):
        return None
    return model[-1], encoded, names


def tree_cached(estimator: Any, X: np.ndarray) -> Any:
    """`estimator` (a fitted HistGradientBoosting model) for permutation importance on the matrix `X`: a shallow
    copy that keeps each tree's output on `X`'s rows and, for a matrix that differs from `X` in some columns,
    evaluates only the trees that split on one of those columns. A tree that never reads a column gives each
    row the same output whatever is shuffled in it, and the outputs are added in the estimator's own order onto
    its own baseline, so every score is the estimator's number bit for bit (tests/unit/test_predict.py), for
    about a third of the tree evaluations on the default model. Any other estimator is returned as it is.
    """
    predictors = getattr(estimator, "_predictors", None)
    if predictors is None or not hasattr(estimator, "_predict_iterations") or not hasattr(estimator, "_preprocess_X"):
        return estimator
    reference = estimator._preprocess_X(X, reset=False)
    reads = columns_split_on(predictors, reference.shape[1])  # tree (iteration) -> columns it splits on
    original = estimator._predict_iterations
    cache: list[list[np.ndarray]] = []

    def predict_iterations(
        X: np.ndarray, predictors: list[list[Any]], raw: np.ndarray, is_binned: bool, n_threads: int
    ) -> None:
        if is_binned or X.shape != reference.shape:
            original(X, predictors, raw, is_binned, n_threads)
            return
        changed = [j for j in range(X.shape[1]) if not np.array_equal(X[:, j], reference[:, j], equal_nan=True)]
        if not cache and changed:  # not the reference matrix, and nothing kept yet
            original(X, predictors, raw, is_binned, n_threads)
            return
        known_cat_bitsets, f_idx_map = estimator._bin_mapper.make_known_categories_bitsets()
        fill = not cache
        again = np.asarray(reads[:, changed].any(axis=1), dtype=bool)
        for i, trees in enumerate(predictors):
            if fill or again[i]:
                outs = [
                    tree.predict(X, known_cat_bitsets=known_cat_bitsets, f_idx_map=f_idx_map, n_threads=n_threads)
                    for tree in trees
                ]
            else:
                outs = cache[i]
            if fill:
                cache.append(outs)
            for k, out in enumerate(outs):
                raw[:, k] += out

    cached = copy.copy(estimator)
    cached._predict_iterations = predict_iterations
    return cached


def tree_evaluations(trees: int, scored_rows: int, importance_rows: int, columns: int, evaluate: EvaluateParams) -> int:
    """About how many (row, tree) evaluations the stage makes: every scored row once, and the importance sample
    once for the baseline score and once per column and repeat."""
    return trees * (scored_rows + importance_rows * (1 + columns * evaluate.importance_repeats))


class KernelCached(ClassifierMixin, BaseEstimator):
    """The model behind `fast` as a classifier for permutation importance on the matrix `reference`: its
    decision_function is the model's raw score (`FastModel.raw`) bit for bit. Each tree's leaf values on the
    reference rows are kept, and for a matrix that differs from the reference in some columns only the trees that
    split on one of those columns are walked again, the values then added in the model's order onto its baseline:
    the same sums, for about a third of the tree walks on the default model (tests/unit/test_predict.py). Where
    the leaf values would be more than `cached_leaves` numbers (a large importance sample), nothing is kept and
    every matrix is scored whole."""

    def __init__(self, fast: FastModel, reference: np.ndarray, cached_leaves: int = CACHED_LEAVES) -> None:
        self.fast = fast
        self.reference = reference
        self.cached_leaves = cached_leaves
        self.classes_ = fast.classes
        self.reads_ = fast.split_columns()
        keep = len(self.reads_) * len(reference) <= cached_leaves
        self.kept_ = fast.leaves(reference, np.arange(len(self.reads_))) if keep else None

    def fit(self, X: Any, y: Any) -> KernelCached:  # pragma: no cover - never refitted: an estimator's interface
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype="float64")
        if self.kept_ is None or X.shape != self.reference.shape:
            return self.fast.raw(X)
        # the columns where some value differs (NaN equals NaN): one pass over the matrix, not one call per column
        differs = (self.reference != X) & ~(np.isnan(self.reference) & np.isnan(X))
        changed = differs.any(axis=0)
        again = np.flatnonzero(self.reads_[:, changed].any(axis=1))
        fresh = dict(zip(again.tolist(), self.fast.leaves(X, again), strict=True))
        raw = np.full(len(X), self.fast.baseline, dtype="float64")
        for t, kept in enumerate(self.kept_):
            raw += fresh.get(t, kept)
        return raw


def importance(
    model: Any, rows: pd.DataFrame, summary: TrainSummary, repeats: int, seed: int, *, fast: FastModel | None
) -> list[dict[str, Any]]:
    """Permutation importance of the raw features on `rows` (the stage's fixed-seed sample), largest first; through
    `fast` (`FastModel.build(model)`, None where it gives none) for a score of ranks (ROC AUC)."""
    X = prepare(rows, summary.numeric, summary.categorical)
    y = rows[summary.target].to_numpy()
    scoring = "roc_auc" if summary.task == "classification" else "neg_mean_absolute_error"
    if summary.task == "classification" and len(np.unique(y)) < 2:
        scoring = "neg_log_loss"
    if fast is not None and scoring == "roc_auc":
        # the codes the trees read, per column: shuffling one shuffles its raw column (see encoded_step)
        estimator, X_in, names = KernelCached(fast, fast.matrix(X)), fast.matrix(X), fast.categorical + fast.numeric
    else:
        encoded = encoded_step(model, X)
        estimator, X_in, names = encoded if encoded is not None else (model, X, list(X.columns))
        if encoded is not None:
            estimator = tree_cached(estimator, X_in)  # the baseline score, the first call, fills the cache
    # the seed gives every column the same shuffle of rows whatever the column order: both ways, the same numbers
    result = permutation_importance(estimator, X_in, y, scoring=scoring, n_repeats=repeats, random_state=seed, n_jobs=1)
    table = [
        {"feature": name, "importance": float(m), "std": float(s)}
        for name, m, s in zip(names, result.importances_mean, result.importances_std, strict=True)
    ]
    return sorted(table, key=lambda r: (-r["importance"], r["feature"]))


def main(args: argparse.Namespace, params: Params) -> dict[str, int]:
    return run(
        params.train,
        params.evaluate,
        params.drift,
        in_dir=args.input,
        model_file=args.model,
        summary_file=args.summary,
        out_dir=args.out,
    )


def run(
    train: TrainParams,
    evaluate: EvaluateParams,
    drift: DriftParams,
    *,
    in_dir: str | Path,
    model_file: str | Path,
    summary_file: str | Path,
    out_dir: str | Path,
) -> dict[str, int]:
    spec = FeatureSpec.load(Path(in_dir) / "feature_spec.json")
    summary = TrainSummary.load(summary_file)
    model = load_model(model_file)
    ep = evaluate
    # The samples are read one partition at a time: memory holds a sample, not a split (flat at 30x the data).
    to_rank, test_rows = read_sample(Path(in_dir) / "test", ep.importance_sample, train.seed, frame_sample_draw)
    sample, train_rows = read_sample(Path(in_dir) / "train", drift.reference_sample, train.seed, frame_sample_draw)
    evaluations = tree_evaluations(
        summary.iterations, test_rows + len(sample), len(to_rank), len(summary.numeric) + len(summary.categorical), ep
    )
    # None for a model of another shape, or too little work to pay for compiling: scikit-learn's own predict then
    fast = FastModel.build(model) if evaluations >= KERNEL_MIN_EVALUATIONS else None
    log.info(
        "predict: about %s tree evaluations: scoring with %s",
        f"{evaluations:,}",
        "scikit-learn" if fast is None else "the compiled kernel" if fast.compiled else "FastModel's numpy paths",
    )
    # One test month at a time: each row is scored alone, so the same numbers as the whole split at once.
    parts = []
    for path in split_files(Path(in_dir) / "test"):
        parts.append(predictions(model, read_parquet(path), summary, spec.id_columns, fast))
        log.info("predict: scored %s (%d rows)", path.name, len(parts[-1]))
    scored = pd.concat(parts, ignore_index=True)
    log.info("predict: scored %d test rows", len(scored))
    table = importance(model, to_rank, summary, ep.importance_repeats, train.seed, fast=fast)
    log.info(
        "predict: permutation importance on %d rows x %d repeats; top: %s",
        len(to_rank),
        ep.importance_repeats,
        [r["feature"] for r in table[:5]],
    )
    reference = predictions(model, sample, summary, [], fast)
    reference = reference[["prediction"]].reset_index(drop=True)
    log.info(
        "predict: scored %d of %d training rows (the reference sample for prediction drift)",
        len(reference),
        train_rows,
    )
    write_parquet(scored, Path(out_dir) / "test.parquet")
    write_parquet(reference, Path(out_dir) / "train.parquet")
    write_json(Path(out_dir) / "importance.json", table)
    return {"rows_in": len(scored), "rows_out": len(scored)}
