"""data.scaffold (`flightdelay new-dataset`): the target text, schema inference, monthly partitions, params and
dvc.yaml edits, on small frames and texts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from flightdelay.core.config import parse_params, parse_schema
from flightdelay.data import scaffold as S
from tests.default_params import DEFAULTS_FILE, default_params


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("precipitation shift -1 > 0", {"source": "precipitation", "shift": -1, "rule": "> 0"}),
        ("arr_delay >15", {"source": "arr_delay", "shift": 0, "rule": "> 15"}),
        ("rain_mm shift -1", {"source": "rain_mm", "shift": -1, "rule": None}),
        ("temp shift -2 <= -3.5", {"source": "temp", "shift": -2, "rule": "<= -3.5"}),
    ],
)
def test_the_target_text_is_source_shift_and_rule(text, want):
    assert S.parse_target(text) == want


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("will it rain", r"expected COLUMN \[shift N\] \[RULE\]"),
        ("rain shift 1 > 0", r"shift 1 looks back; use a negative shift"),
    ],
)
def test_a_bad_target_text_is_refused_in_one_line(text, message):
    with pytest.raises(S.ScaffoldError, match=message):
        S.parse_target(text)


def weather(n_days: int = 90) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    dates = pd.date_range("2012-01-01", periods=n_days, freq="D")
    return pd.DataFrame(
        {
            "date": dates.strftime("%Y-%m-%d"),
            "precipitation": rng.gamma(0.5, 4, n_days).round(1),
            "temp_max": rng.normal(10, 5, n_days).round(1),
            "wind": np.where(np.arange(n_days) == 3, np.nan, 2.5),
            "weather": rng.choice(["rain", "sun", "fog"], n_days),
            "days": np.arange(n_days),
        }
    )


def test_the_schema_is_inferred_from_the_values():
    rows = S.read_table(weather(), "date", [], "w.csv")
    table = S.infer_table(rows.drop(columns=["year", "month"]), "date", [])
    cols = table["columns"]
    assert cols["date"] == {"dtype": "datetime"}
    assert cols["weather"] == {"dtype": "str", "allowed": ["fog", "rain", "sun"]}
    assert cols["wind"] == {"dtype": "float", "min": 2.5, "max": 2.5, "nullable": True}
    assert cols["days"] == {"dtype": "int", "min": 0, "max": 89}
    assert cols["precipitation"]["dtype"] == "float"
    assert table["key"] == ["date"] and table["period"] == {"year": "year", "month": "month"}
    schema = parse_schema({"tables": {"days": table}})  # the pipeline's own schema check accepts it
    assert schema.table("days").columns["weather"].allowed == ("fog", "rain", "sun")


def test_a_time_value_that_is_no_date_is_named_by_row_and_column():
    frame = weather()
    frame.loc[5, "date"] = "someday"
    with pytest.raises(S.ScaffoldError, match=r"^w.csv: row 7, column 'date': 'someday' is not a date"):
        S.read_table(frame, "date", [], "w.csv")


def test_two_rows_of_the_same_time_are_refused():
    frame = pd.concat([weather(5), weather(5).iloc[[2]]], ignore_index=True)
    with pytest.raises(S.ScaffoldError, match=r"row 7 repeats \['date'\] of an earlier row"):
        S.read_table(frame, "date", [], "w.csv")


def test_partitions_are_one_csv_per_month_with_year_and_month():
    rows = S.read_table(weather(), "date", [], "w.csv")
    parts = S.monthly_csv(rows, "date")
    assert sorted(parts) == ["2012-01", "2012-02", "2012-03"]
    first = pd.read_csv(pd.io.common.StringIO(parts["2012-02"]))
    assert len(first) == 29 and set(first["month"]) == {2} and first["date"].iloc[0] == "2012-02-01T00:00:00"


def scaffolded(target: str = "precipitation shift -1 > 0", test_months: int = 1) -> dict:
    rows = S.read_table(weather(), "date", [], "w.csv")
    table = S.infer_table(rows.drop(columns=["year", "month"]), "date", [])
    return S.scaffold_params(
        default_params(),
        table="seattle",
        name="rain tomorrow",
        time_column="date",
        entity_keys=[],
        target=S.parse_target(target),
        schema=table,
        periods=["2012-01", "2012-02", "2012-03"],
        test_months=test_months,
        raw_dir="data/raw/seattle",
    )


def test_the_params_describe_the_data_set_and_load():
    raw = scaffolded()
    params = parse_params(raw)  # the pipeline's own params check accepts them
    assert params.features.builder == "generic"
    assert params.dataset.target.classification.source == "precipitation"
    assert params.dataset.target.classification.rule == "> 0"
    assert params.dataset.artifact == "rain-tomorrow"
    # never yes/no, which `dvc exp run -S` writes back unquoted and YAML 1.1 reads as booleans
    assert params.dataset.target.classification.labels == {0: "not rain tomorrow", 1: "rain tomorrow"}
    assert params.features.split.train_months() == ["2012-01", "2012-02"]
    assert params.features.split.test_months() == ["2012-03"]
    generic = params.features.generic
    assert generic is not None
    assert generic.categorical == ("weather",)
    assert "precipitation" in generic.numeric  # today's rain is known when tomorrow is predicted
    assert params.train.task == "classification"
    assert params.ingest.window.start == "2012-01" and params.data.raw_dir == "data/raw/seattle"


def test_a_same_row_target_is_no_feature_and_a_number_target_is_regression():
    same_row = parse_params(scaffolded("precipitation > 0"))
    assert same_row.features.generic is not None
    assert "precipitation" not in same_row.features.generic.numeric
    regression = parse_params(scaffolded("precipitation shift -1"))
    assert regression.train.task == "regression"


def test_too_few_months_for_the_test_months_are_refused():
    with pytest.raises(S.ScaffoldError, match=r"covers 3 month\(s\), 2012-01 to 2012-03: too few for 3 test"):
        scaffolded(test_months=3)


DVC = """stages:
  raw:
    desc: export
    cmd: python -m flightdelay raw
    deps:
      - a

  ingest:
    cmd: python -m flightdelay ingest

artifacts:
  flight-delay:
    path: models/package
"""


def test_the_raw_stage_is_moved_aside_and_the_artifact_renamed():
    text, raw = S.without_raw_stage(DVC)
    assert raw.startswith("  raw:\n") and "python -m flightdelay raw" in raw
    assert "  raw:" not in text and "  ingest:" in text
    renamed = S.with_artifact(text, "rain-tomorrow")
    assert "  rain-tomorrow:\n    path: models/package" in renamed and "flight-delay" not in renamed


def test_the_params_file_keeps_its_comments():
    """new-dataset rewrites params.yaml: a key that stays keeps its comment, a key that goes takes its own along."""
    original = DEFAULTS_FILE.read_text(encoding="utf-8")
    kept = "# Which code builds the features (core/processed.py is what every builder writes)"
    assert kept in original  # the fixture's comment on features.builder, which the scaffold sets to generic
    new = scaffolded()
    text = S.keep_comments(original, new)
    assert yaml.safe_load(text) == new
    assert kept in text and text.startswith("# The params every test starts from")
    assert parse_params(yaml.safe_load(text)).features.builder == "generic"


def test_comments_stay_on_kept_keys_and_go_with_removed_ones():
    original = """# the top
a:
  b: 1        # b's comment
  gone: 2     # gone's comment
  lst: [x, y] # a flow list
c: yes-ish
"""
    new = {"a": {"b": 1.0, "lst": ["x", "y"], "new": "yes", "day": "2013-01-01"}, "c": "yes-ish", "d": True}
    text = S.keep_comments(original, new)
    assert yaml.safe_load(text) == new
    assert isinstance(yaml.safe_load(text)["a"]["b"], float)  # 1 -> 1.0 is a change (1 == 1.0 in Python)
    assert "# the top" in text and "# a flow list" in text and "lst: [x, y]" in text
    assert "gone" not in text
    assert 'new: "yes"' in text and 'day: "2013-01-01"' in text  # YAML 1.1 (the stages' reader) would not read a text


def test_a_dask_engine_is_set_back_to_local_for_the_generic_builder():
    rows = S.read_table(weather(), "date", [], "w.csv")
    table = S.infer_table(rows.drop(columns=["year", "month"]), "date", [])
    raw = S.scaffold_params(
        default_params({"compute.engine": "dask"}),
        table="seattle",
        name="rain tomorrow",
        time_column="date",
        entity_keys=[],
        target=S.parse_target("precipitation shift -1 > 0"),
        schema=table,
        periods=["2012-01", "2012-02", "2012-03"],
        test_months=1,
        raw_dir="data/raw/seattle",
    )
    assert parse_params(raw).compute.engine == "local"  # dask would be refused with features.builder: generic
