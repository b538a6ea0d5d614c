"""flightdelay.stages.predict: importance in the encoded space (or through the fast scorer's kernel) equals importance
through the whole pipeline, and the cached scorers give the estimator's numbers bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
from sklearn.inspection import permutation_importance

from flightdelay.core.config import EvaluateParams
from flightdelay.core.contracts import TrainSummary
from flightdelay.modeling.fast_model import FastModel
from flightdelay.modeling.model import build_pipeline, prepare
from flightdelay.stages.predict import (
    KERNEL_MIN_EVALUATIONS,
    KernelCached,
    encoded_step,
    importance,
    predictions,
    tree_cached,
    tree_evaluations,
)


def frame(n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    out = pd.DataFrame(
        {
            "carrier": rng.choice(["AA", "B6", "UA", None], n),
            "x": rng.normal(size=n),
            "z": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
        }
    )
    out["late"] = (out["x"] + (out["carrier"] == "AA") + rng.normal(size=n) > 0.5).astype(int)
    return out


SUMMARY = TrainSummary(
    task="classification",
    model="hist_gradient_boosting",
    seed=0,
    fallback_used=False,
    target="late",
    numeric=["x", "z"],
    categorical=["carrier"],
    rows=600,
    target_mean=0.5,
    iterations=20,
    training_loss=0.5,
)


@pytest.mark.parametrize("model", ["hist_gradient_boosting", "logistic_regression", "constant"])
@pytest.mark.parametrize("with_fast", [True, False], ids=["fast-scorer", "scikit-learn"])
def test_importance_equals_permutation_importance_of_the_whole_pipeline(model, with_fast):
    data = frame()
    X = prepare(data, SUMMARY.numeric, SUMMARY.categorical)
    params = {"max_iter": 20} if model != "constant" else {}
    pipeline = build_pipeline("classification", model, ["x", "z"], ["carrier"], params, seed=0).fit(X, data["late"])
    assert (encoded_step(pipeline, X) is not None) == (model == "hist_gradient_boosting")
    fast = FastModel.build(pipeline) if with_fast else None
    assert (fast is not None) == (with_fast and model == "hist_gradient_boosting")
    rows = data.sample(n=400, random_state=7).sort_index()
    table = importance(pipeline, rows, SUMMARY, repeats=3, seed=7, fast=fast)
    Xs = prepare(rows, SUMMARY.numeric, SUMMARY.categorical)
    whole = permutation_importance(
        pipeline, Xs, rows["late"].to_numpy(), scoring="roc_auc", n_repeats=3, random_state=7
    )
    expected = dict(zip(Xs.columns, whole.importances_mean, strict=True))
    assert {r["feature"] for r in table} == set(expected)
    for r in table:
        assert r["importance"] == pytest.approx(expected[r["feature"]], abs=1e-12)


def test_tree_cached_importance_is_the_estimators_bit_for_bit_with_fewer_tree_evaluations(monkeypatch):
    """Each score of the cached copy is the estimator's own number (==, not approx) on the reference rows and on
    every shuffled matrix, while trees that do not split on the shuffled column are not evaluated again."""
    rng = np.random.default_rng(3)
    n = 500
    X = np.column_stack(
        [rng.normal(size=n), rng.normal(size=n), rng.integers(0, 4, n).astype(float), rng.normal(size=n)]
    )
    X[rng.random(n) < 0.1, 1] = np.nan
    y = (X[:, 0] + 0.3 * np.nan_to_num(X[:, 1]) + (X[:, 2] == 1) + rng.normal(size=n) > 0.5).astype(int)
    estimator = HistGradientBoostingClassifier(max_iter=40, max_depth=2, categorical_features=[2], random_state=0)
    estimator.fit(X, y)
    cached = tree_cached(estimator, X)
    assert cached is not estimator
    calls = {"n": 0}
    predict = TreePredictor.predict

    def counted(self, *args, **kwargs):
        calls["n"] += 1
        return predict(self, *args, **kwargs)

    monkeypatch.setattr(TreePredictor, "predict", counted)
    assert np.array_equal(cached.decision_function(X), estimator.decision_function(X))
    trees = estimator._predictors
    total = 0
    for column in range(X.shape[1]):
        shuffled = X.copy()
        shuffled[:, column] = rng.permutation(shuffled[:, column])
        calls["n"] = 0
        got = cached.predict_proba(shuffled)
        evaluated = calls["n"]
        assert np.array_equal(got, estimator.predict_proba(shuffled)), column
        # the estimator's own column order (it puts categorical columns first) is what its trees split on
        before, after = (estimator._preprocess_X(m, reset=False) for m in (X, shuffled))
        moved = [j for j in range(X.shape[1]) if not np.array_equal(before[:, j], after[:, j], equal_nan=True)]
        reading = sum(bool(np.isin(t.nodes["feature_idx"][t.nodes["is_leaf"] == 0], moved).any()) for (t,) in trees)
        assert evaluated == reading, column  # only the trees that split on the column
        total += evaluated
    assert total < 0.75 * X.shape[1] * len(trees)  # 94 of 160 here
    fast = permutation_importance(cached, X, y, scoring="roc_auc", n_repeats=3, random_state=5)
    slow = permutation_importance(estimator, X, y, scoring="roc_auc", n_repeats=3, random_state=5)
    assert np.array_equal(fast.importances, slow.importances)


def test_tree_cached_leaves_other_estimators_alone():
    data = frame()
    X = prepare(data, SUMMARY.numeric, SUMMARY.categorical)
    pipeline = build_pipeline("classification", "logistic_regression", ["x", "z"], ["carrier"], {}, seed=0)
    pipeline.fit(X, data["late"])
    assert tree_cached(pipeline[-1], np.zeros((3, 2))) is pipeline[-1]


def test_the_fast_scorer_gives_the_same_predictions_and_importance_bit_for_bit():
    """Scores and importance through FastModel (the kernel, with its leaf cache) are the numbers of the
    scikit-learn paths exactly (==): the stage's outputs do not depend on which one ran."""
    data = frame(900)
    X = prepare(data, SUMMARY.numeric, SUMMARY.categorical)
    params = {"max_iter": 60, "max_leaf_nodes": 15}
    pipeline = build_pipeline("classification", "hist_gradient_boosting", ["x", "z"], ["carrier"], params, seed=0)
    pipeline.fit(X, data["late"])
    fast = FastModel.build(pipeline)
    assert fast is not None and fast.compiled
    slow_rows = predictions(pipeline, data, SUMMARY, ["carrier"])
    fast_rows = predictions(pipeline, data, SUMMARY, ["carrier"], fast)
    assert fast_rows.equals(slow_rows)
    rows = data.iloc[::2]
    with_fast = importance(pipeline, rows, SUMMARY, repeats=4, seed=11, fast=fast)
    without = importance(pipeline, rows, SUMMARY, repeats=4, seed=11, fast=None)
    assert with_fast == without  # floats compared with ==
    assert len({r["importance"] for r in with_fast}) == 3  # three columns that matter, with different scores


def test_kernel_cached_walks_only_the_trees_that_split_on_a_shuffled_column(monkeypatch):
    rng = np.random.default_rng(4)
    n = 700
    data = pd.DataFrame(
        {"carrier": rng.choice(["AA", "B6", "UA"], n), "x": rng.normal(size=n), "z": rng.normal(size=n)}
    )
    data.loc[rng.random(n) < 0.1, "z"] = np.nan
    y = (data["x"] + (data["carrier"] == "AA") + rng.normal(size=n) > 0.5).astype(int)
    params = {"max_iter": 50, "max_depth": 2}
    pipeline = build_pipeline("classification", "hist_gradient_boosting", ["x", "z"], ["carrier"], params, seed=0)
    pipeline.fit(data, y)
    fast = FastModel.build(pipeline)
    assert fast is not None and fast.compiled
    M = fast.matrix(data)
    cached = KernelCached(fast, M)
    walked = {"trees": 0}
    leaves = FastModel.leaves

    def counted(self, X, trees):
        walked["trees"] += len(trees)
        return leaves(self, X, trees)

    monkeypatch.setattr(FastModel, "leaves", counted)
    assert np.array_equal(cached.decision_function(M), fast.raw(M))
    reads = fast.split_columns()
    assert reads.shape == (50, 3) and reads.any(axis=0).all()
    total = 0
    for column in range(M.shape[1]):
        shuffled = M.copy()
        shuffled[:, column] = rng.permutation(shuffled[:, column])
        walked["trees"] = 0
        assert np.array_equal(cached.decision_function(shuffled), fast.raw(shuffled)), column
        assert walked["trees"] == reads[:, column].sum(), column  # only the trees that split on it
        total += walked["trees"]
    assert total < 0.75 * M.shape[1] * len(reads)
    other = M[:10]  # another matrix: scored whole
    assert np.array_equal(cached.decision_function(other), fast.raw(other))
    whole = KernelCached(fast, M, cached_leaves=len(reads) * len(M) - 1)  # one value too many to keep
    assert whole.kept_ is None
    walked["trees"] = 0
    assert np.array_equal(whole.decision_function(shuffled), fast.raw(shuffled))
    assert walked["trees"] == 0  # scored by raw, every tree, no leaves kept or walked again


def test_the_kernel_is_compiled_only_for_enough_work_to_repay_it():
    """The default data (200 trees; 54,000 test and 50,000 reference rows; importance on 5,000 rows x 45 columns
    x 3 repeats) uses the kernel; a smoke run's 50 trees on a few thousand rows keep scikit-learn."""
    default = tree_evaluations(200, 104_000, 5_000, 45, EvaluateParams(importance_repeats=3))
    assert default == 200 * (104_000 + 5_000 * 136) and default >= KERNEL_MIN_EVALUATIONS
    smoke = tree_evaluations(50, 5_400, 500, 45, EvaluateParams(importance_repeats=1))
    assert smoke == 50 * (5_400 + 500 * 46) and smoke < KERNEL_MIN_EVALUATIONS
