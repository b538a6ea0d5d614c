"""The fast scorer (flightdelay.serving.fast_model) gives predict_proba's probabilities of the same fitted pipeline.

A hist-gradient-boosting pipeline is built as the train stage builds it (modeling.model.build_pipeline) on a
small synthetic frame whose categories drive the label, then scored on rows with missing values, categories the
model never saw, and a mix of both, through both evaluation paths (all trees walked at once in numpy, and each
tree's compiled predictor).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import flightdelay.serving.fast_model as fast_model
from flightdelay.modeling.model import build_pipeline, prepare
from flightdelay.serving.fast_model import FastModel

NUMERIC = ["x", "y"]
CATEGORICAL = ["carrier", "origin"]
PARAMS = {"max_iter": 40, "min_samples_leaf": 5}


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = pd.DataFrame(
        {
            "carrier": rng.choice(["AA", "B6", "DL", "UA", "WN"], n).astype(object),
            "origin": rng.choice(["EWR", "JFK", "LGA"], n).astype(object),
            "x": rng.normal(size=n),
            "y": rng.uniform(0, 100, n),
        }
    )
    out.loc[rng.random(n) < 0.1, "x"] = np.nan
    out.loc[rng.random(n) < 0.1, "carrier"] = None
    return out


def fitted(categorical: list[str] = CATEGORICAL) -> object:
    train = frame(2000, 1)
    logit = (train["carrier"] == "B6") * 1.5 - (train["origin"] == "LGA") + 0.5 * train["x"].fillna(0)
    label = (logit + np.random.default_rng(2).normal(size=len(train)) > 0.3).astype(int)
    model = build_pipeline("classification", "hist_gradient_boosting", NUMERIC, categorical, PARAMS, seed=3)
    model.fit(prepare(train, NUMERIC, categorical), label)
    return model


@pytest.fixture(scope="module")
def model() -> object:
    return fitted()


def scored(n: int, seed: int) -> pd.DataFrame:
    rows = frame(n, seed)
    rows.loc[rows.index[::7], "carrier"] = "ZZ"  # a category the model never saw
    rows.loc[rows.index[::11], "origin"] = None
    rows.loc[rows.index[::13], "y"] = np.nan
    return prepare(rows, NUMERIC, CATEGORICAL)


@pytest.mark.parametrize("walk_cells", [0, 10**9], ids=["compiled-trees", "numpy-walk"])
@pytest.mark.parametrize("n", [1, 3, 500])
def test_the_fast_scorer_gives_predict_proba_to_1e_12(model, monkeypatch, walk_cells, n):
    monkeypatch.setattr(fast_model, "WALK_CELLS", walk_cells)
    fast = FastModel.build(model)
    assert fast is not None
    rows = scored(n, 10 + n)
    want = model.predict_proba(rows)[:, 1]
    got = fast.predict_proba(rows)
    assert got.dtype == np.float64 and got.shape == (n,)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_a_large_batch_split_between_threads_and_in_chunks_gives_predict_proba(model, monkeypatch):
    monkeypatch.setattr(fast_model, "WALK_CELLS", 0)
    monkeypatch.setattr(fast_model, "THREAD_ROWS", 1)
    monkeypatch.setattr(fast_model, "BATCH_THREADS", 3)
    monkeypatch.setattr(fast_model, "CHUNK_ROWS", 128)
    fast = FastModel.build(model)
    assert fast is not None
    rows = scored(700, 21)
    np.testing.assert_allclose(fast.predict_proba(rows), model.predict_proba(rows)[:, 1], rtol=0, atol=1e-12)


def test_text_with_the_string_dtype_scores_as_object_text(model):
    rows = scored(50, 4)
    as_string = rows.astype({c: "string" for c in CATEGORICAL})  # what compute_features gives
    fast = FastModel.build(model)
    assert fast is not None
    np.testing.assert_allclose(fast.predict_proba(as_string), model.predict_proba(rows)[:, 1], rtol=0, atol=1e-12)


def test_an_unseen_category_scores_as_a_missing_one(model):
    fast = FastModel.build(model)
    assert fast is not None
    rows = scored(20, 5)
    unseen, missing = rows.copy(), rows.copy()
    unseen["carrier"] = "ZZ"
    missing["carrier"] = np.nan
    np.testing.assert_array_equal(fast.predict_proba(unseen), fast.predict_proba(missing))


def test_other_models_get_no_fast_scorer():
    train = frame(300, 6)
    label = (train["y"] > 50).astype(int)
    logistic = build_pipeline("classification", "logistic_regression", NUMERIC, CATEGORICAL, {}, seed=1)
    logistic.fit(prepare(train, NUMERIC, CATEGORICAL), label)
    assert FastModel.build(logistic) is None
    regressor = build_pipeline("regression", "hist_gradient_boosting", NUMERIC, CATEGORICAL, PARAMS, seed=1)
    regressor.fit(prepare(train, NUMERIC, CATEGORICAL), train["y"])
    assert FastModel.build(regressor) is None
    assert FastModel.build(object()) is None


def test_the_numpy_walk_follows_the_compiled_trees_on_codes_no_encoder_gives(model, monkeypatch):
    """Codes the encoders never produce (a category code the trees did not see, a negative one) take the same
    branch in the numpy walk as in scikit-learn's compiled predictor: the rules are the same, not just the data."""
    fast = FastModel.build(model)
    assert fast is not None
    X = fast.matrix(scored(60, 7))
    X[::3, 0] = 40.0  # a carrier code the trees never saw
    X[1::3, 0] = -1.0
    X[2::3, 1] = 200.0
    monkeypatch.setattr(fast_model, "WALK_CELLS", 10**9)
    walked = fast.raw(X)
    monkeypatch.setattr(fast_model, "WALK_CELLS", 0)
    np.testing.assert_array_equal(walked, fast.raw(X))
