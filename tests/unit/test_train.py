"""flightdelay.stages.train: feature selection from the feature spec."""

from __future__ import annotations

import pandas as pd
import pytest

from flightdelay.core.contracts import FeatureSpec
from flightdelay.core.errors import PipelineError
from flightdelay.stages.features import FEATURE_GROUPS, TARGETS, feature_spec
from flightdelay.stages.train import iterations, select_features


def small_spec(**groups: list[str]) -> FeatureSpec:
    return FeatureSpec(
        groups={
            "route": ["carrier", "origin", "distance"],
            "schedule": ["dep_hour", "month"],
            "mixed": ["month", "carrier", "temp"],
            **groups,
        },
        categorical=["carrier", "origin"],
        targets={"classification": "late"},
        id_columns=[],
        leaky_columns=["arr_delay", "dep_delay", "late"],
    )


def test_select_features_splits_numeric_and_categorical_in_group_order():
    numeric, categorical = select_features(small_spec(), ("schedule", "route", "mixed"))
    assert numeric == ["dep_hour", "month", "distance", "temp"]  # month once, in first-seen order
    assert categorical == ["carrier", "origin"]


def test_select_features_order_follows_the_groups_asked_for():
    numeric, categorical = select_features(small_spec(), ("route", "schedule"))
    assert numeric == ["distance", "dep_hour", "month"]
    assert categorical == ["carrier", "origin"]


def test_select_features_unknown_group():
    with pytest.raises(PipelineError, match=r"unknown group\(s\) \['wether'\]; available: \['mixed', 'route', 'sched"):
        select_features(small_spec(), ("route", "wether"))


def test_select_features_rejects_a_leaky_column():
    spec = small_spec(schedule=["dep_hour", "dep_delay"])
    with pytest.raises(
        PipelineError, match=r"known only after the moment of prediction \(leaky_columns\): \[.dep_delay.\]"
    ):
        select_features(spec, ("route", "schedule"))
    # the same spec is fine when the leaky group is not chosen
    assert select_features(spec, ("route",)) == (["distance"], ["carrier", "origin"])


def test_select_features_on_the_real_feature_spec():
    spec = feature_spec(FEATURE_GROUPS, TARGETS)
    numeric, categorical = select_features(spec, tuple(FEATURE_GROUPS))
    every = [c for cols in FEATURE_GROUPS.values() for c in cols]
    assert sorted(numeric + categorical) == sorted(set(every))
    assert set(categorical) == {"carrier", "origin", "dest", "plane_type", "engine_type", "manufacturer"}
    assert not set(numeric + categorical) & set(spec.leaky_columns)


class _Boosted:
    n_iter_ = 17


class _PerClass:
    n_iter_ = [3, 9]  # noqa: RUF012 - a stand-in for LogisticRegression's array attribute


def test_iterations():
    assert iterations(_Boosted()) == 17
    assert iterations(_PerClass()) == 9
    assert iterations(object()) == 0


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_training_loss_recorded_by_the_estimator_equals_a_second_pass(task):
    import numpy as np

    from flightdelay.modeling.model import build_pipeline
    from flightdelay.stages.train import recorded_loss, training_loss

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"c": rng.choice(["a", "b", "c"], 400).astype(object), "x": rng.normal(size=400)})
    y = (X["x"] + (X["c"] == "a") + rng.normal(size=400) > 0.5).astype(int).to_numpy()
    if task == "regression":
        y = X["x"].to_numpy() * 3 + rng.normal(size=400)
    # no validation share: the recorded loss is on every row, so it must equal the second pass it replaces
    params = {"max_iter": 20, "early_stopping": True, "validation_fraction": None}
    pipeline = build_pipeline(task, "hist_gradient_boosting", ["x"], ["c"], params, seed=0).fit(X, y)
    recorded = recorded_loss(pipeline[-1], task)
    assert recorded is not None
    pipeline[-1].train_score_ = np.array([])  # as an estimator without a recorded loss: computed
    assert training_loss(pipeline, X, y, task) == pytest.approx(recorded, rel=1e-9)
    no_record = build_pipeline(
        task, "hist_gradient_boosting", ["x"], ["c"], {"max_iter": 5, "early_stopping": False}, 0
    )
    assert recorded_loss(no_record.fit(X, y)[-1], task) is None
