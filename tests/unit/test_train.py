"""flightdelay.stages.train: feature selection from the feature spec."""

from __future__ import annotations

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
    with pytest.raises(PipelineError, match=r"known only after departure: \['dep_delay'\]"):
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
