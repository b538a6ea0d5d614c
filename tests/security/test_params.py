"""Params that are wrong get one named line before any work, from every stage (issue 8, points 5, 9 and 10).

Each case writes its own params file (the test defaults with one change) into a workspace laid out like the
repository, runs a stage through the real CLI entry point and checks: exit code 1, the exact one-line message
(file, key, value, what is allowed), no traceback, no "failed unexpectedly", and nothing written but the log.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from flightdelay.cli import STAGES, main
from tests.default_params import default_params, write_params
from tests.stage_cmd import stage_argv
from tests.workspace import lay_out, written

REPO = Path(__file__).resolve().parents[2]
SHA = "0123456789abcdef" * 4
OVERRIDE = {"approved_by": "Ada", "reason": "reviewed", "rules": ["min_metrics.roc_auc"], "model_sha256": SHA}


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """dvc.yaml and the schema file of the repository; params.yaml is written by each test."""
    lay_out(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def refused(stage: str, capfd: pytest.CaptureFixture[str], root: Path) -> list[str]:
    """Run `stage`; assert it was refused cleanly before any work; return its 'failed:' lines."""
    code = main(stage_argv(stage, default_params()))
    err = capfd.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err
    assert "unexpectedly" not in err
    assert written(root) == []
    return [line.split(f"{stage} failed: ", 1)[1] for line in err.splitlines() if f"{stage} failed: " in line]


BAD_VALUES: list[tuple[dict[str, Any], str]] = [
    (
        {"validate.max_invalid_share": "abc"},
        "params.yaml: validate.max_invalid_share: 'abc' is not a number (expected a number from 0 to 1)",
    ),
    (
        {"validate.max_invalid_share": -0.5},
        "params.yaml: validate.max_invalid_share: -0.5 is out of range (expected a number from 0 to 1)",
    ),
    (
        {"ingest.max_invalid_share": 1.5},
        "params.yaml: ingest.max_invalid_share: 1.5 is out of range (expected a number from 0 to 1)",
    ),
    (
        {"train.seed": "abc"},
        "params.yaml: train.seed: 'abc' is not an integer (expected an integer from 0 to 4294967295)",
    ),
    (
        {"train.seed": True},
        "params.yaml: train.seed: True is not an integer (expected an integer from 0 to 4294967295)",
    ),
    (
        {"train.seed": 7.0},
        "params.yaml: train.seed: 7.0 is not an integer (expected an integer from 0 to 4294967295)",
    ),
    (
        {
            "features.split": {
                "train": {"start": "2013-13", "end": "2013-14"},
                "test": {"start": "2014-01", "end": "2014-01"},
            }
        },
        "params.yaml: features.split.train.start: '2013-13' is not allowed (expected a month like '2013-01', quoted)\n"
        "params.yaml: features.split.train.end: '2013-14' is not allowed (expected a month like '2013-01', quoted)",
    ),
    (
        {"validate.profile_quantiles": [1.5]},
        "params.yaml: validate.profile_quantiles[0]: 1.5 is out of range (expected a number from 0 to 1)",
    ),
    (
        {"evaluate.threshold": 2},
        "params.yaml: evaluate.threshold: 2 is out of range (expected a number between 0 and 1, both excluded)",
    ),
    (
        {"drift.psi_threshold": -1},
        "params.yaml: drift.psi_threshold: -1 is out of range (expected a number >= 0)",
    ),
    (
        {"gate.min_metrics": {"roc_auc": -1}},
        "params.yaml: gate.min_metrics.roc_auc: -1 is outside the range of roc_auc (expected from 0 to 1)",
    ),
    (
        {"gate.min_metrics": {"roc_auc": 1.2}},
        "params.yaml: gate.min_metrics.roc_auc: 1.2 is outside the range of roc_auc (expected from 0 to 1)",
    ),
    (
        {"ingest.window": {"start": "2013-01", "end": "2013-13"}},
        "params.yaml: ingest.window.end: '2013-13' is not allowed (expected a month like '2013-01', quoted)",
    ),
    (
        {"features.holiday_country": "XX"},
        "params.yaml: features.holiday_country: 'XX' is not a country the holidays library knows (expected a code "
        "like US, GB)",
    ),
    (
        {"train.model": "xgboost"},
        "params.yaml: train.model: 'xgboost' is not one of 'hist_gradient_boosting', 'logistic_regression' or "
        "'constant'",
    ),
    (
        {"train.sede": 7},
        "params.yaml: train.sede: unknown key; expected one of task, model, seed, feature_groups, fallback_seed, "
        "max_rows, hist_gradient_boosting, logistic_regression",
    ),
]


@pytest.mark.parametrize(("change", "message"), BAD_VALUES, ids=[next(iter(c)) for c, _ in BAD_VALUES])
def test_a_bad_value_is_one_named_line_before_any_work(change, message, workspace, capfd):
    write_params(workspace / "params.yaml", default_params(change))
    assert refused("ingest", capfd, workspace) == message.splitlines()


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_stage_refuses_bad_params_before_any_work(stage, workspace, capfd):
    write_params(workspace / "params.yaml", default_params({"train.seed": "abc"}))
    assert refused(stage, capfd, workspace) == [
        "params.yaml: train.seed: 'abc' is not an integer (expected an integer from 0 to 4294967295)"
    ]


@pytest.mark.parametrize(
    ("change", "start"),
    [
        (
            {"train.hist_gradient_boosting.max_iterr": 200},
            "params.yaml: train.hist_gradient_boosting.max_iterr: unknown key; expected one of class_weight, ",
        ),
        (
            {"train.hist_gradient_boosting.learning_rate": -0.1},
            "params.yaml: train.hist_gradient_boosting.learning_rate: -0.1 is not allowed (scikit-learn: The "
            "'learning_rate' parameter of HistGradientBoostingClassifier must be a float in the range (0.0, inf))",
        ),
        (
            {"train.task": "regression", "train.logistic_regression.C": "1"},
            "params.yaml: train.logistic_regression.C: '1' is not allowed (scikit-learn: The 'C' parameter of "
            "LogisticRegression must be a float in the range (0.0, inf])",
        ),
    ],
    ids=["unknown name", "out of range", "unused model"],
)
def test_train_refuses_a_bad_model_keyword_argument_before_any_work(change, start, workspace, capfd):
    """These passed the params check and failed in the fit: "train failed unexpectedly: TypeError ... a bug"."""
    write_params(workspace / "params.yaml", default_params(change))
    (line,) = refused("train", capfd, workspace)
    assert line.startswith(start)


def test_a_params_file_without_data_raw_dir_is_named_not_a_traceback(workspace, capfd):
    params = default_params()
    del params["data"]["raw_dir"]
    write_params(workspace / "params.yaml", params)
    # dvc.yaml's ${data.raw_dir} cannot be resolved either: the stage log gets no paths, the user one line
    assert refused("ingest", capfd, workspace) == ["params.yaml: data.raw_dir: missing (expected a non-empty text)"]


@pytest.mark.parametrize("text", ["- data\n- train\n", "just a string\n", "42\n"])
def test_a_params_file_that_is_not_a_mapping_is_one_line(text, workspace, capfd):
    (workspace / "params.yaml").write_text(text)
    lines = refused("train", capfd, workspace)
    assert len(lines) == 1
    assert lines[0].startswith("params.yaml: expected a mapping of sections (dataset, data, raw, ingest, ")


def test_an_empty_params_file_names_every_missing_section(workspace, capfd):
    (workspace / "params.yaml").write_text("")
    lines = refused("train", capfd, workspace)
    assert lines == [
        "params.yaml: expected a mapping of sections (dataset, data, raw, ingest, validate, features, train, "
        "evaluate, drift, gate, package, report, serve, compute, monitor), got NoneType"
    ]


def test_a_yaml_syntax_error_names_the_file_line_and_column(workspace, capfd):
    (workspace / "params.yaml").write_text("data:\n  raw_dir: data/raw\n  schema: [config/schema.yaml\ntrain: {}\n")
    lines = refused("features", capfd, workspace)
    assert len(lines) == 1
    assert re.fullmatch(r"params\.yaml: line 4, column 6: not valid YAML \(.+\); fix the syntax there", lines[0])


def test_a_key_given_twice_is_refused_not_resolved_to_the_last(workspace, capfd):
    """DVC refuses such a file ("found duplicate key"); a stage run by hand refused it too, instead of using 43."""
    text = yaml.safe_dump(default_params(), sort_keys=False).replace("  seed: 42\n", "  seed: 42\n  seed: 43\n")
    (workspace / "params.yaml").write_text(text)
    line = text.splitlines().index("  seed: 43") + 1
    assert refused("train", capfd, workspace) == [
        f"params.yaml: line {line}, column 3: train.seed is given twice (first on line {line - 1}); keep one of "
        "them (YAML forbids a key twice in one mapping, and DVC refuses the file)"
    ]


def test_a_yaml_syntax_error_in_the_schema_file_names_that_file(workspace, capfd):
    write_params(workspace / "params.yaml", default_params())
    (workspace / "config" / "schema.yaml").write_text("tables:\n  flights: {columns: {year: {dtype: int}\n")
    lines = refused("validate", capfd, workspace)
    assert len(lines) == 1
    assert lines[0].startswith("config/schema.yaml: line 3, column 1: not valid YAML")


def test_a_params_file_that_is_not_utf8_is_one_line(workspace, capfd):
    (workspace / "params.yaml").write_bytes(b"data: {raw_dir: \xff\xfe}\n")
    lines = refused("ingest", capfd, workspace)
    assert len(lines) == 1
    assert lines[0].startswith("params.yaml: cannot read the params file")


def test_several_problems_are_one_line_each(workspace, capfd):
    write_params(workspace / "params.yaml", default_params({"train.seed": "abc", "evaluate.threshold": 2}))
    assert refused("train", capfd, workspace) == [
        "params.yaml: train.seed: 'abc' is not an integer (expected an integer from 0 to 4294967295)",
        "params.yaml: evaluate.threshold: 2 is out of range (expected a number between 0 and 1, both excluded)",
    ]


# --------------------------------------------------------------------------------------- gate override (point 5)


def test_override_rules_given_as_one_string_are_refused_not_matched_by_substring(workspace, capfd):
    override = {**OVERRIDE, "rules": "min_metrics.roc_auc,max_drifted_features"}
    write_params(workspace / "params.yaml", default_params({"gate.override": override}))
    assert refused("gate", capfd, workspace) == [
        "params.yaml: gate.override.rules: 'min_metrics.roc_auc,max_drifted_features' is not a list "
        "(expected a list of the failed rules you accept, e.g. [min_metrics.roc_auc])"
    ]


def test_override_rules_must_be_known_rule_names(workspace, capfd):
    override = {**OVERRIDE, "rules": ["max_drifted_features", "min_metrics"]}
    write_params(workspace / "params.yaml", default_params({"gate.override": override}))
    assert refused("gate", capfd, workspace) == [
        "params.yaml: gate.override.rules[1]: 'min_metrics' is not a gate rule; copy the names from `failed` in "
        "reports/gate.json"
    ]


@pytest.mark.parametrize("digits", ["123456789012", "1" * 64])
def test_an_unquoted_all_digit_model_sha256_is_refused_naming_the_key(digits, workspace, capfd):
    params = default_params({"gate.override": {**OVERRIDE, "model_sha256": "PLACEHOLDER"}})
    text = yaml.safe_dump(params, sort_keys=False).replace("PLACEHOLDER", digits)
    (workspace / "params.yaml").write_text(text)
    assert isinstance(yaml.safe_load(text)["gate"]["override"]["model_sha256"], int)  # YAML reads it as a number
    lines = refused("gate", capfd, workspace)
    assert len(lines) == 1
    assert lines[0].startswith(f"params.yaml: gate.override.model_sha256: {digits[:20]}")
    assert "is not a text (expected the full SHA-256 of the model file in quotes, 64 hex digits" in lines[0]


@pytest.mark.parametrize("sha", ["0123456789ab", SHA[:-1], SHA + "0", "g" * 64])
def test_model_sha256_must_be_64_hex_digits(sha, workspace, capfd):
    write_params(workspace / "params.yaml", default_params({"gate.override": {**OVERRIDE, "model_sha256": sha}}))
    lines = refused("gate", capfd, workspace)
    assert len(lines) == 1
    assert lines[0].startswith(f"params.yaml: gate.override.model_sha256: {sha[:20]!r}"[:60])
    assert "64 hex digits" in lines[0]


# ------------------------------------------------------------------------------------- test isolation (point 10)

# Tests whose subject is the repository's params.yaml itself (its keys); they read nothing else from it.
READS_REPO_PARAMS = {"tests/meta/test_dataset_words.py", "tests/meta/test_docs.py", "tests/unit/test_config.py"}


def test_no_test_reads_the_working_params_file():
    """`dvc exp run -S key=value` leaves params.yaml changed: tests take their params from tests/default_params."""
    offenders = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        name = path.relative_to(REPO).as_posix()
        text = path.read_text()
        reads = re.search(r"""REPO\s*/\s*["']params\.yaml["']|load_params\(\s*\)""", text)
        if reads and name not in READS_REPO_PARAMS:
            offenders.append(name)
    assert offenders == []
