"""The service's pure parts: request models from an input schema, body checks, JSON parsing, request ids, the
input frame, and the deploy history that rollback replays."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flightdelay.serving.app import data_window, frame_of, parse_json, request_id
from flightdelay.serving.metrics import ServiceMetrics
from flightdelay.serving.predictor import _columns
from flightdelay.serving.runtime import (
    DeployError,
    good_stack,
    read_history,
    render_history,
    resolve_package,
    version_of,
)
from flightdelay.serving.schema import ApiError, check_body, check_rows, row_model
from tests.fake_predictor import FLIGHT, SCHEMA, FakePredictor, InputField


def entry(outcome: str, name: str) -> dict[str, str]:
    return {"outcome": outcome, "package": name, "hash": name * 4, "time": "t", "reason": ""}


def test_good_stack_pushes_deploys_pops_rollbacks_and_ignores_refusals():
    history = [
        entry("started", "a"),
        entry("started", "a"),  # a restart on the same package
        entry("deployed", "b"),
        entry("refused", "x"),
        entry("deployed", "c"),
        entry("rolled_back", "b"),
    ]
    assert [e["package"] for e in good_stack(history)] == ["a", "b"]
    assert [e["package"] for e in good_stack([*history, entry("rolled_back", "a")])] == ["a"]
    assert [e["package"] for e in good_stack([*history, entry("started", "c")])] == ["a", "b", "c"]


def test_read_history_names_a_bad_line(tmp_path):
    path = tmp_path / "history.jsonl"
    assert read_history(path) == []
    path.write_text(json.dumps(entry("deployed", "a")) + "\n\n{oops\n")
    with pytest.raises(DeployError, match=r"history.jsonl: line 3 is not JSON"):
        read_history(path)
    path.write_text(json.dumps(entry("exploded", "a")) + "\n")
    with pytest.raises(DeployError, match=r"line 1 is not a deploy history entry"):
        read_history(path)


def test_render_history_is_one_line_per_entry():
    text = render_history([entry("deployed", "model-aaaa"), {**entry("refused", "model-bbbb"), "reason": "bad"}])
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["time", "outcome", "package"]
    assert lines[2].split()[1:3] == ["refused", "model-bbbb"] and lines[2].endswith("bad")
    assert render_history([]) == "no deploys yet\n"


def record(tmp_path: Path, promoted: dict | None, artifact: str = "flight-delay") -> None:
    (tmp_path / "registry").mkdir(exist_ok=True)
    body = {"artifact": artifact, "stage": "prod", "promoted": promoted}
    (tmp_path / "registry" / "prod.json").write_text(json.dumps(body))


def test_resolve_package_reads_the_channel_record(tmp_path):
    assert resolve_package("some/dir", None, tmp_path) == Path("some/dir").absolute()
    with pytest.raises(DeployError, match="give --package PATH or --stage prod"):
        resolve_package(None, None, tmp_path)
    record(tmp_path, None)
    with pytest.raises(DeployError, match="nothing is promoted to prod"):
        resolve_package(None, "prod", tmp_path)
    record(tmp_path, {"version": "v0.0.3", "package": {"name": "model-0123456789abcdef", "hash": "h"}}, "rain")
    with pytest.raises(DeployError, match=r"prod holds model-0123456789abcdef \(version v0.0.3\), which is not in"):
        resolve_package(None, "prod", tmp_path)
    with pytest.raises(DeployError, match=r"`dvc artifacts get \. rain --stage prod`"):  # the record's own name
        resolve_package(None, "prod", tmp_path)
    (tmp_path / "models" / "package" / "model-0123456789abcdef").mkdir(parents=True)
    assert resolve_package(None, "prod", tmp_path) == (tmp_path / "models/package/model-0123456789abcdef").absolute()


def test_request_id_keeps_a_safe_header_and_replaces_anything_else():
    assert request_id("abc-123.x:y_z") == "abc-123.x:y_z"
    for bad in (None, "", "a b", "x" * 129, "é", "a\nb"):
        made = request_id(bad)
        assert made != bad and len(made) == 32


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (b'{"flights": [{"dest": "IAH", "dest": "XXX"}]}', "dest"),
        (b'{"flights": [], "flights": [{}]}', "flights"),
        (b'{"package": "/a", "rollback": false, "package": "/b"}', "package"),
    ],
)
def test_parse_json_refuses_a_key_given_twice_in_one_object_naming_it(body, key):
    with pytest.raises(ApiError) as caught:
        parse_json(body)
    assert (caught.value.status, caught.value.code, caught.value.field) == (400, "duplicate_key", key)
    assert repr(key) in caught.value.message
    assert parse_json(b'{"a": {"dest": 1}, "b": {"dest": 2}}') == {"a": {"dest": 1}, "b": {"dest": 2}}


@pytest.mark.parametrize("body", [b"", b"  ", b"{", b"NaN", b'{"a": Infinity}', b"\xff"])
def test_parse_json_refuses_what_is_not_strict_json(body):
    with pytest.raises(ApiError) as caught:
        parse_json(body)
    assert (caught.value.status, caught.value.code) == (400, "invalid_json")


def test_parse_json_reads_json():
    assert parse_json(b'{"flights": [1, 2.5, null]}') == {"flights": [1, 2.5, None]}


def test_check_body_caps_the_batch_before_looking_at_rows():
    assert check_body({"flights": ["anything"]}, 1, "flights") == ["anything"]
    with pytest.raises(ApiError) as caught:
        check_body({"flights": [1, 2, 3]}, 2, "flights")
    assert (caught.value.status, caught.value.limit) == (413, 2)


def test_the_row_model_fills_left_out_nullable_fields_and_caps_strings():
    model = row_model(SCHEMA, max_string_length=6)
    [row] = check_rows([{k: v for k, v in FLIGHT.items() if k != "tailnum"}], model, "flights")
    assert row["tailnum"] is None and list(row) == [f.name for f in SCHEMA]
    with pytest.raises(ApiError) as caught:
        check_rows([{**FLIGHT, "tailnum": "N1234567"}], model, "flights")
    assert (caught.value.field, caught.value.rule) == ("tailnum", "string_too_long")


def test_an_unknown_field_kind_is_refused():
    with pytest.raises(ValueError, match="unknown kind 'date'"):
        row_model([InputField("when", "date", False)], 10)


def test_frame_of_keeps_order_and_gives_each_kind_its_dtype():
    rows = check_rows([FLIGHT, {**FLIGHT, "tailnum": None, "distance": 5}], row_model(SCHEMA, 64), "flights")
    frame = frame_of(rows, SCHEMA)
    assert list(frame.columns) == [f.name for f in SCHEMA]
    assert frame["month"].dtype == "Int64" and frame["distance"].dtype == "float64"
    assert frame["distance"].tolist() == [1400.0, 5.0]
    assert frame["tailnum"].iloc[0] == "N14228" and pd.isna(frame["tailnum"].iloc[1])


def test_a_date_time_field_is_shown_with_its_format_and_left_to_the_predictor_to_parse():
    @dataclass(frozen=True)
    class WithFormat(InputField):
        format: str | None = None

    model = row_model([WithFormat("time_hour", "string", False, max_length=25, format="date-time")], 64)
    assert model.model_json_schema()["properties"]["time_hour"]["format"] == "date-time"
    assert check_rows([{"time_hour": "2013-11-03T17:00:00Z"}], model, "flights") == [
        {"time_hour": "2013-11-03T17:00:00Z"}
    ]


def test_the_version_is_the_predictors_own_else_the_manifests():
    assert version_of(FakePredictor(manifest={"version": "v1"})) == "v1"
    predictor = FakePredictor(manifest={})
    assert version_of(predictor) is None
    predictor.version = "0.1.0"  # type: ignore[attr-defined]
    assert version_of(predictor) == "0.1.0"


def test_the_data_window_comes_from_the_recorded_params():
    manifest = {
        "params": {
            "ingest": {"window": {"start": "2013-01", "end": "2013-12"}},
            "features": {"split": {"train": {"start": "2013-01", "end": "2013-10"}, "test": {"start": "2013-11"}}},
        },
        "model": {"train_rows": 5},
    }
    window = data_window(manifest)
    assert window == {
        "ingested": {"start": "2013-01", "end": "2013-12"},
        "train": {"start": "2013-01", "end": "2013-10"},
        "test": {"start": "2013-11"},
        "train_rows": 5,
    }
    assert data_window({}) is None


def test_integer_bounds_are_integers_in_the_schema():
    props = row_model(SCHEMA, 64).model_json_schema()["properties"]
    assert props["month"]["maximum"] == 12 and isinstance(props["month"]["maximum"], int)
    assert isinstance(props["distance"]["maximum"], float)


def test_the_drift_windows_take_the_last_values_of_lists_and_arrays():
    """A large batch's model inputs come as arrays (Predictor.predict_records): a window keeps its last
    drift_window values of each, in order, as it does of the record path's lists."""
    metrics = ServiceMetrics(drift_window=3, drift_min_rows=1)
    metrics.observe_features({"distance": np.array([1.0, 2.0, 3.0, 4.0, 5.0]), "carrier": ["AA", None]})
    assert list(metrics._features["distance"]) == [3.0, 4.0, 5.0]
    assert list(metrics._features["carrier"]) == ["AA", None]
    metrics.observe_features({"distance": [6.0], "carrier": np.array(["B6", "DL", "UA", "WN"], dtype=object)})
    assert list(metrics._features["distance"]) == [4.0, 5.0, 6.0]
    assert list(metrics._features["carrier"]) == ["DL", "UA", "WN"]


def test_columns_of_records_are_in_record_order_with_none_for_a_name_left_out():
    records = [{"a": 1, "b": "x"}, {"a": 2, "b": None}]
    assert _columns(records, ["b", "a"]) == [["x", None], [1, 2]]
    assert _columns(records, ["a"]) == [[1, 2]]
    assert _columns([{"a": 1}, {"a": 2, "b": "y"}], ["a", "b"]) == [[1, 2], [None, "y"]]  # one record lacks b
    assert _columns([], ["a", "b"]) == [[], []]
