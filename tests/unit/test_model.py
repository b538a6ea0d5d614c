"""flightdelay.modeling.model: every model x task fits on strings and NaNs; model files are canonical and safe."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from threadpoolctl import threadpool_limits

from flightdelay.core.config import MODELS_BY_TASK, ConfigError, TrainParams, parse_params
from flightdelay.core.errors import PipelineError
from flightdelay.modeling.model import (
    ESTIMATORS,
    build_pipeline,
    check_model_params,
    dumps_canonical,
    load_model,
    model_params_problems,
    prepare,
    save_model,
)
from tests.default_params import default_params
from tests.tiny_models import CATEGORICAL, NUMERIC, TARGETS, fit, predict, synthetic


def test_prepare_types():
    frame = synthetic(10)
    frame["temp"] = frame["temp"].astype(object)
    X = prepare(frame, NUMERIC, CATEGORICAL)
    assert list(X.columns) == CATEGORICAL + NUMERIC
    assert X["carrier"].dtype == object
    assert X["distance"].dtype == "float64"
    assert X["temp"].dtype == "float64"
    missing = frame["carrier"].isna().to_numpy()
    assert X["carrier"][missing].map(lambda v: isinstance(v, float) and np.isnan(v)).all()
    assert X.loc[~missing, "carrier"].map(type).eq(str).all()


@pytest.mark.parametrize(("task", "model"), [(t, m) for t, models in MODELS_BY_TASK.items() for m in models])
def test_every_model_fits_its_tasks(model, task):
    frame = synthetic()
    pipeline = fit(task, model, frame)
    pred = predict(pipeline, task, frame)
    assert pred.shape == (len(frame),)
    assert np.isfinite(pred).all()
    # unseen categories and missing values at prediction time are handled too
    new = frame.head(3).assign(carrier=pd.array(["ZZ", None, "UA"], dtype="string"), temp=np.nan)
    assert np.isfinite(predict(pipeline, task, new)).all()
    if task == "classification":
        assert ((pred >= 0) & (pred <= 1)).all()
        assert list(pipeline.classes_) == [0, 1]
    if model == "constant":
        expected = frame[TARGETS[task]].mean()
        assert pred == pytest.approx(np.full(len(frame), expected))
    else:
        assert np.ptp(pred) > 0  # the model uses its inputs


def test_logistic_regression_is_not_built_for_regression():
    # no silent stand-in (it used to build a Ridge, which then crashed train); params refuse it first
    assert "logistic_regression" not in MODELS_BY_TASK["regression"]
    with pytest.raises(PipelineError, match="logistic_regression is a classifier; it cannot be trained for regression"):
        build_pipeline("regression", "logistic_regression", NUMERIC, CATEGORICAL, {}, 0)


def test_unknown_model_is_an_error():
    with pytest.raises(PipelineError, match="unknown model 'xgboost'"):
        build_pipeline("classification", "xgboost", NUMERIC, CATEGORICAL, {}, 0)


# ------------------------------------------------------------------------------------ models' keyword arguments


def train_params(changes: dict | None = None) -> TrainParams:
    return parse_params(default_params(changes)).train


def test_the_default_models_keyword_arguments_pass_for_both_tasks():
    assert model_params_problems(train_params()) == []
    assert model_params_problems(train_params({"train.task": "regression"})) == []


def test_an_unknown_keyword_argument_names_its_key_and_the_estimators_arguments():
    """It used to pass the params check and fail in the fit as a TypeError: "train failed unexpectedly ... a bug"."""
    (problem,) = model_params_problems(train_params({"train.hist_gradient_boosting.max_iterr": 200}))
    assert problem.startswith(
        "train.hist_gradient_boosting.max_iterr: unknown key; expected one of class_weight, early_stopping, "
    )
    assert problem.endswith(" (the keyword arguments of HistGradientBoostingClassifier, for train.task classification)")
    assert "max_iter," in problem and "random_state" not in problem and "categorical_features" not in problem


def test_a_value_out_of_range_names_its_key_value_and_scikit_learns_rule():
    (problem,) = model_params_problems(train_params({"train.hist_gradient_boosting.learning_rate": -0.1}))
    assert problem == (
        "train.hist_gradient_boosting.learning_rate: -0.1 is not allowed (scikit-learn: The 'learning_rate' "
        "parameter of HistGradientBoostingClassifier must be a float in the range (0.0, inf))"
    )


def test_the_keyword_arguments_are_checked_against_the_tasks_estimator():
    """class_weight is a classifier's; loss log_loss is not a regression loss."""
    changes = {"train.hist_gradient_boosting.class_weight": "balanced", "train.hist_gradient_boosting.loss": "log_loss"}
    assert model_params_problems(train_params(changes)) == []
    problems = model_params_problems(train_params({**changes, "train.task": "regression"}))
    assert [p.split(":")[0] for p in problems] == [
        "train.hist_gradient_boosting.class_weight",
        "train.hist_gradient_boosting.loss",
    ]
    assert "(the keyword arguments of HistGradientBoostingRegressor, for train.task regression)" in problems[0]
    assert problems[1].startswith(
        "train.hist_gradient_boosting.loss: 'log_loss' is not allowed (scikit-learn: The 'loss' parameter of "
        "HistGradientBoostingRegressor must be a str among {"
    )


def test_every_model_section_is_checked_not_only_train_model():
    changes = {
        "train.model": "constant",
        "train.logistic_regression.C": -1,
        "train.logistic_regression.penalty": "l3",
        "train.hist_gradient_boosting.max_iter": 1.5,
    }
    problems = model_params_problems(train_params(changes))
    assert [p.split(" is not allowed")[0] for p in problems] == [
        "train.hist_gradient_boosting.max_iter: 1.5",
        "train.logistic_regression.C: -1",
        "train.logistic_regression.penalty: 'l3'",
    ]


@pytest.mark.parametrize(
    ("model", "name"),
    [
        ("hist_gradient_boosting", "random_state"),
        ("hist_gradient_boosting", "categorical_features"),
        ("logistic_regression", "random_state"),
    ],
)
def test_a_keyword_argument_the_pipeline_sets_is_refused(model, name):
    """build_pipeline passes these itself: given again they were a TypeError (multiple values) in the fit."""
    (problem,) = model_params_problems(train_params({f"train.{model}.{name}": 1}))
    assert problem.startswith(f"train.{model}.{name}: set by the pipeline from ")
    assert problem.endswith(f"; remove it from train.{model}")


def test_check_model_params_is_a_config_error_one_line_per_problem():
    tp = train_params({"train.hist_gradient_boosting.max_iterr": 200, "train.logistic_regression.C": 0})
    with pytest.raises(ConfigError) as caught:
        check_model_params(tp, "params.yaml")
    lines = str(caught.value).splitlines()
    assert [line.split(":")[:2] for line in lines] == [
        ["params.yaml", " train.hist_gradient_boosting.max_iterr"],
        ["params.yaml", " train.logistic_regression.C"],
    ]


def test_every_estimator_build_pipeline_builds_is_one_model_params_problems_checks():
    for task, models in MODELS_BY_TASK.items():
        for model in models:
            if model != "constant":
                pipeline = build_pipeline(task, model, NUMERIC, CATEGORICAL, {}, 0)
                assert type(pipeline[-1]) is ESTIMATORS[model][task]


def test_seed_reaches_the_estimator():
    pipeline = build_pipeline("classification", "hist_gradient_boosting", NUMERIC, CATEGORICAL, {"max_iter": 5}, 11)
    assert pipeline[-1].random_state == 11
    assert pipeline[-1].max_iter == 5
    assert list(pipeline[-1].categorical_features) == [True, True, False, False]


@pytest.mark.parametrize("model", ["hist_gradient_boosting", "logistic_regression"])
def test_dumps_canonical_same_bytes_for_identical_models(model):
    frame = synthetic()
    first = fit("classification", model, frame)
    second = fit("classification", model, frame)
    assert dumps_canonical(first) == dumps_canonical(second)
    other = fit("classification", model, synthetic(seed=1))
    assert dumps_canonical(first) != dumps_canonical(other)


def test_dumps_canonical_is_a_readable_skops_file():
    pipeline = fit("regression", "hist_gradient_boosting", synthetic())
    data = dumps_canonical(pipeline)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert "schema.json" in archive.namelist()
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    loaded = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    frame = synthetic(20, seed=5)
    assert np.array_equal(predict(loaded, "regression", frame), predict(pipeline, "regression", frame))


@pytest.mark.parametrize(
    ("task", "model"),
    [
        ("classification", "hist_gradient_boosting"),
        ("classification", "logistic_regression"),
        ("regression", "hist_gradient_boosting"),
        ("classification", "constant"),
    ],
)
def test_save_load_round_trip_gives_identical_predictions(tmp_path, task, model):
    pipeline = fit(task, model, synthetic())
    path = tmp_path / "models" / "model.skops"
    save_model(pipeline, path)
    loaded = load_model(path)
    assert type(loaded) is Pipeline
    frame = synthetic(30, seed=9)
    assert np.array_equal(predict(loaded, task, frame), predict(pipeline, task, frame))
    assert [p.name for p in path.parent.iterdir()] == ["model.skops"]  # no temporary files left


def test_save_model_twice_gives_the_same_file(tmp_path):
    save_model(fit("classification", "hist_gradient_boosting", synthetic()), tmp_path / "a.skops")
    save_model(fit("classification", "hist_gradient_boosting", synthetic()), tmp_path / "b.skops")
    assert (tmp_path / "a.skops").read_bytes() == (tmp_path / "b.skops").read_bytes()


class Foreign:
    """A type that is not from scikit-learn, numpy or scipy."""

    def __init__(self) -> None:
        self.value = 1


def test_load_model_refuses_a_foreign_type(tmp_path):
    path = tmp_path / "foreign.skops"
    path.write_bytes(sio.dumps(Foreign()))
    with pytest.raises(PipelineError, match=r"holds ObjectNode tests\.unit\.test_model\.Foreign, which no model"):
        load_model(path)


def test_load_model_refuses_a_foreign_type_inside_a_pipeline(tmp_path):
    path = tmp_path / "foreign.skops"
    path.write_bytes(sio.dumps(Pipeline([("step", FunctionTransformer(kw_args={"x": Foreign()}))])))
    with pytest.raises(PipelineError, match="Foreign"):
        load_model(path)


def test_load_model_refuses_builtin_exec(tmp_path):
    path = tmp_path / "exec.skops"
    path.write_bytes(sio.dumps(Pipeline([("step", FunctionTransformer(func=exec))])))
    with pytest.raises(PipelineError, match=r"holds TypeNode builtins\.exec, which no model"):
        load_model(path)


def test_save_model_refuses_a_foreign_type_and_writes_nothing(tmp_path):
    with pytest.raises(PipelineError, match="Foreign"):
        save_model(Foreign(), tmp_path / "m.skops")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: b"not a zip file at all",
        lambda data: data[: len(data) // 2],
        pytest.param(
            lambda data: b"",
        ),
    ],
    ids=["garbage", "truncated", "empty"],
)
def test_load_model_corrupt_file_is_a_pipeline_error(tmp_path, damage):
    good = tmp_path / "good.skops"
    save_model(fit("classification", "constant", synthetic()), good)
    bad = tmp_path / "bad.skops"
    bad.write_bytes(damage(good.read_bytes()))
    with pytest.raises(PipelineError, match="not a readable skops model file"):
        load_model(bad)


def test_load_model_zip_without_a_schema_is_a_pipeline_error(tmp_path):
    path = tmp_path / "other.skops"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not a model")
    with pytest.raises(PipelineError, match="not a readable skops model file"):
        load_model(path)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_model_file_does_not_depend_on_the_thread_count(task):
    frame = synthetic()
    with threadpool_limits(limits=1):
        one = fit(task, "hist_gradient_boosting", frame)
    with threadpool_limits(limits=2):
        two = fit(task, "hist_gradient_boosting", frame)
    assert one[-1]._bin_mapper.n_threads != two[-1]._bin_mapper.n_threads  # the fit records it...
    assert dumps_canonical(one) == dumps_canonical(two)  # ...the model file does not
    assert one[-1]._bin_mapper.n_threads == 1  # and writing it leaves the caller's model as it was


def test_the_stand_in_skops_imports_through_lists_no_name_but_gives_every_attribute():
    import scipy.special

    from flightdelay.modeling.skops_io import _unlisted

    stand_in = _unlisted(scipy.special)
    assert dir(stand_in) == [] and "expit" in dir(scipy.special)
    assert stand_in.expit is scipy.special.expit and stand_in.__name__ == "scipy.special"
    with pytest.raises(AttributeError):
        stand_in.no_such_function  # noqa: B018
