"""flightdelay.stages.predict: importance in the encoded space equals importance through the whole pipeline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.inspection import permutation_importance

from flightdelay.core.contracts import TrainSummary
from flightdelay.modeling.model import build_pipeline, prepare
from flightdelay.stages.predict import encoded_step, importance, reference_rows


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
def test_importance_equals_permutation_importance_of_the_whole_pipeline(model):
    data = frame()
    X = prepare(data, SUMMARY.numeric, SUMMARY.categorical)
    params = {"max_iter": 20} if model != "constant" else {}
    pipeline = build_pipeline("classification", model, ["x", "z"], ["carrier"], params, seed=0).fit(X, data["late"])
    assert (encoded_step(pipeline, X) is not None) == (model == "hist_gradient_boosting")
    table = importance(pipeline, data, SUMMARY, sample=400, repeats=3, seed=7)
    rows = data.sample(n=400, random_state=7).sort_index()
    Xs = prepare(rows, SUMMARY.numeric, SUMMARY.categorical)
    whole = permutation_importance(
        pipeline, Xs, rows["late"].to_numpy(), scoring="roc_auc", n_repeats=3, random_state=7
    )
    expected = dict(zip(Xs.columns, whole.importances_mean, strict=True))
    assert {r["feature"] for r in table} == set(expected)
    for r in table:
        assert r["importance"] == pytest.approx(expected[r["feature"]], abs=1e-12)


def test_reference_rows_is_a_fixed_sample_in_file_order():
    data = frame(100)
    assert reference_rows(data, 1000, seed=3) is data
    sample = reference_rows(data, 30, seed=3)
    assert len(sample) == 30 and sample.index.is_monotonic_increasing
    assert sample.equals(reference_rows(data, 30, seed=3))
