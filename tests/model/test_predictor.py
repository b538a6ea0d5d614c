"""The package as a predictor (flightdelay.serving.predictor) on a model trained on real months (conftest `trained`).

A package is built from the trained model the way the package stage builds one (manifest, feature state, checksums),
then loaded with the validated partitions of March as context. The predictor must give exactly what the pipeline
gives: the same features as the features stage and the same probability as the predict stage, from raw flights.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flightdelay.core.config import DriftParams
from flightdelay.modeling.model import prepare
from flightdelay.release.package_format import STATE_FILE, PackageError
from flightdelay.serving import schema
from flightdelay.serving.features_flights import ContextSource
from flightdelay.serving.predictor import (
    INLINE_ROWS,
    RECORD_ROWS,
    CanaryError,
    InputError,
    Predictor,
    input_problems,
    typed_records,
    typed_rows,
    validate_input,
)
from flightdelay.serving.record_features import RecordLookups, record_features
from flightdelay.stages import drift
from tests.model.conftest import Trained

MARCH = "2013-03"


@pytest.fixture(scope="module")
def predictor(package: Path, trained: Trained) -> Predictor:
    return Predictor.load(package, ContextSource.from_validated(trained.validated, [MARCH]))


def raw_flights(trained: Trained) -> pd.DataFrame:
    """March's validated flights as a caller sends them: plain values, the time as ISO-8601 text."""
    return pd.read_parquet(trained.validated / "flights" / f"{MARCH}.parquet")


def as_sent(flights: pd.DataFrame, predictor: Predictor) -> pd.DataFrame:
    names = [f.name for f in predictor.input_schema]
    out = flights[names].astype(object).where(flights[names].notna(), None)
    out["time_hour"] = flights["time_hour"].map(lambda t: t.isoformat())
    return out.reset_index(drop=True)


def test_the_predictor_scores_raw_flights_exactly_as_the_pipeline(predictor, trained):
    flights = raw_flights(trained)
    sent = as_sent(flights, predictor)
    known = input_problems(sent, predictor.input_schema)["field"].to_numpy() == ""
    out = predictor.predict(sent[known], validate=True)
    assert list(out.columns) == ["probability", "label", "context_fallback"]
    assert out.dtypes.astype(str).tolist() == ["float64", "int8", "bool"]
    # the features stage drops flights without an arrival and keeps the others in order: its rows line up with
    # the arrived flights (those with a category the model never saw are refused by the predictor)
    arrived = flights["arr_delay"].notna().to_numpy()
    expected = trained.test[known[arrived]]
    assert 0 < len(trained.test) - len(expected) < 100  # destinations first served in March
    scored = out["probability"].to_numpy()[arrived[known]]
    np.testing.assert_allclose(scored, trained.p_late(expected), rtol=0, atol=1e-9)
    assert (out["label"] == (out["probability"] >= predictor.threshold)).all()
    assert not out["context_fallback"].any()
    features = predictor.features(sent[known])[arrived[known]].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        features, prepare(expected, trained.summary.numeric, trained.summary.categorical).reset_index(drop=True)
    )


def test_one_flight_alone_scores_as_in_a_batch(predictor, trained):
    sent = as_sent(raw_flights(trained).head(50), predictor)
    batch = predictor.predict(sent)
    for row in (0, 17, 49):
        alone = predictor.predict(sent.iloc[[row]])
        assert alone["probability"].iloc[0] == batch["probability"].iloc[row]


def test_checked_records_on_the_plain_list_path_score_exactly_as_predict(predictor, trained):
    sent = as_sent(raw_flights(trained).head(300), predictor)
    sent = sent[input_problems(sent, predictor.input_schema)["field"].to_numpy() == ""].reset_index(drop=True)
    records = sent.to_dict("records")
    expected = predictor.predict(sent)
    assert record_features(
        records[:RECORD_ROWS], RecordLookups(predictor.row_features._context, predictor.state)
    )  # fast path
    for start in range(0, len(records), RECORD_ROWS):
        got = predictor.predict_records(records[start : start + RECORD_ROWS], checked=True)
        want = expected.iloc[start : start + RECORD_ROWS]
        np.testing.assert_array_equal(got.probability, want["probability"].to_numpy())
        np.testing.assert_array_equal(got.label, want["label"].to_numpy())
        np.testing.assert_array_equal(got.context_fallback, want["context_fallback"].to_numpy())
    for row in (0, 7, len(records) - 1):  # one flight alone: the numpy walk of every tree
        assert predictor.predict_records([records[row]], checked=True).probability[0] == expected["probability"][row]
    typed = typed_records(records, predictor.input_schema)  # over RECORD_ROWS: typed per column, compute_features
    pd.testing.assert_frame_equal(typed, typed_rows(sent, predictor.input_schema))
    as_json = json.loads(sent.to_json(orient="records"))  # what the service's request model hands on: None, int
    model = schema.row_model(list(predictor.input_schema), 64)
    checked = schema.check_rows(as_json, model, predictor.table)
    pd.testing.assert_frame_equal(typed_records(checked, predictor.input_schema), typed)
    whole = predictor.predict_records(records, checked=True)
    np.testing.assert_array_equal(whole.probability, expected["probability"].to_numpy())


def test_inline_scores_are_predict_records_for_a_few_rows_and_none_otherwise(predictor, trained, monkeypatch):
    """What the service may score on its event loop: up to INLINE_ROWS checked rows, on the record path and the
    compiled kernel, with predict_records' numbers; None for more rows or without the kernel (the pool then)."""
    sent = as_sent(raw_flights(trained).head(40), predictor)
    sent = sent[input_problems(sent, predictor.input_schema)["field"].to_numpy() == ""].reset_index(drop=True)
    records = sent.to_dict("records")
    assert predictor.fast is not None and predictor.fast.compiled
    for n in (1, INLINE_ROWS):
        got = predictor.inline_scores(records[:n])
        assert got is not None
        want = predictor.predict_records(records[:n], checked=True)
        np.testing.assert_array_equal(got.probability, want.probability)
        np.testing.assert_array_equal(got.label, want.label)
        np.testing.assert_array_equal(got.context_fallback, want.context_fallback)
    assert predictor.inline_scores(records[: INLINE_ROWS + 1]) is None
    assert predictor.inline_scores([]) is None
    monkeypatch.setattr(predictor.fast, "_kernel", None)  # numba absent: the numpy walk, not for the event loop
    assert predictor.inline_scores(records[:1]) is None


def test_unchecked_records_and_a_bad_time_are_checked_by_predict_records(predictor, trained):
    record = as_sent(raw_flights(trained).head(1), predictor).to_dict("records")[0]
    with pytest.raises(InputError, match="time_hour") as caught:
        predictor.predict_records([{**record, "time_hour": "not a time"}], checked=True)
    assert (caught.value.field, caught.value.rule) == ("time_hour", "format")
    with pytest.raises(InputError) as caught:
        predictor.predict_records([{**record, "origin": "XXX"}])
    assert (caught.value.field, caught.value.rule) == ("origin", "allowed")
    # a batch over RECORD_ROWS is typed per column, each distinct time parsed once; a bad or missing one anywhere
    # makes typed_records give up, and predict_records' checks name it
    batch = [dict(record) for _ in range(RECORD_ROWS + 5)]
    assert typed_records(batch, predictor.input_schema) is not None
    for bad in ("not a time", None):
        batch[RECORD_ROWS + 2]["time_hour"] = bad
        assert typed_records(batch, predictor.input_schema) is None
    batch[RECORD_ROWS + 2]["time_hour"] = "not a time"
    with pytest.raises(InputError, match="time_hour") as caught:
        predictor.predict_records(batch, checked=True)
    assert (caught.value.field, caught.value.rule) == ("time_hour", "format")


def test_a_flight_without_context_uses_the_fallback_counted_and_never_fails(predictor, trained):
    sent = as_sent(raw_flights(trained).head(3), predictor)
    sent.loc[1, ["month", "day"]] = [4, 2]  # a day the context does not hold (April)
    sent.loc[1, "time_hour"] = "2013-04-02T12:00:00+00:00"
    before = predictor.fallback_rows
    out = predictor.predict(sent)
    assert out["context_fallback"].tolist() == [False, True, False]
    assert predictor.fallback_rows == before + 1
    assert 0.0 < out["probability"].iloc[1] < 1.0
    X = predictor.features(sent)
    assert X.loc[1, ["origin_day_departures", "temp", "precip_trend_sum"]].isna().all()
    assert X.loc[0, ["origin_day_departures", "temp"]].notna().all()


def test_with_no_context_every_flight_is_a_fallback(package, trained):
    alone = Predictor.load(package.parent)  # the folder that holds the package finds it
    assert alone.name == package.name
    out = alone.predict(as_sent(raw_flights(trained).head(4), alone))
    assert out["context_fallback"].all()


def test_a_flight_not_in_the_schedule_is_counted_with_it(predictor, trained):
    flights = raw_flights(trained)
    sent = as_sent(flights.head(1), predictor)
    sent.loc[0, "flight"] = 9999  # not scheduled that day, but the day is known
    X = predictor.features(sent)
    same_day = flights[(flights["day"] == flights["day"].iloc[0]) & (flights["origin"] == flights["origin"].iloc[0])]
    assert X["origin_day_departures"].iloc[0] == len(same_day) + 1
    assert not predictor.predict(sent)["context_fallback"].iloc[0]


def test_the_canary_reproduces_the_recorded_outputs(predictor):
    predictor.canary()


def test_a_canary_that_does_not_reproduce_names_the_row(predictor):
    manifest = json.loads(json.dumps(predictor.manifest))
    manifest["example_predictions"][2] = repr(float(manifest["example_predictions"][2]) + 1e-6)
    other = Predictor(
        path=predictor.path,
        package_hash=predictor.package_hash,
        manifest=manifest,
        model=predictor.model,
        row_features=predictor.row_features,
    )
    with pytest.raises(CanaryError, match="canary row 2 scored"):
        other.canary()


def test_identity_threshold_schema_and_reference(predictor, package):
    assert predictor.name == package.name
    assert len(predictor.package_hash) == 64 and predictor.package_hash.startswith(package.name[6:])
    assert predictor.threshold == 0.35
    names = [f.name for f in predictor.input_schema]
    assert "dep_delay" not in names and "arr_delay" not in names and "air_time" not in names
    assert set(predictor.reference.columns) == {*predictor.numeric, *predictor.categorical, "prediction"}


def test_the_reference_psi_is_the_drift_stage_psi(predictor, trained):
    current = trained.test.head(2000)
    result = drift.compare(
        trained.train,
        current,
        ["distance", "hist_route"],
        ["carrier"],
        trained.p_late(trained.train).to_numpy(),
        trained.p_late(current).to_numpy(),
        DriftParams(),
    )
    by_name = {f.feature: f.psi for f in result.features}
    for column in ("distance", "hist_route", "carrier"):
        assert predictor.reference.psi(column, current[column]) == pytest.approx(by_name[column], abs=1e-4)
    assert predictor.reference.psi("prediction", trained.p_late(current)) == pytest.approx(
        result.prediction.psi, abs=1e-4
    )
    with pytest.raises(KeyError, match="no training reference"):
        predictor.reference.psi("nope", current["distance"])


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("dest", "XXX", "allowed"),  # a category the model never saw
        ("carrier", "ZZ", "allowed"),
        ("origin", None, "required"),
        ("month", 13, "maximum"),
        ("sched_dep_time", "0930", "type"),
        ("distance", float("nan"), "required"),  # NaN is a missing value
        ("distance", float("inf"), "finite"),
        ("year", 2013.5, "type"),
        ("flight", True, "type"),
        ("tailnum", "N" * 1000, "max_length"),
        ("time_hour", "yesterday", "format"),
    ],
)
def test_bad_input_names_the_field_row_and_rule(predictor, trained, field, value, rule):
    sent = as_sent(raw_flights(trained).head(3), predictor)
    sent[field] = sent[field].astype(object)
    sent.at[2, field] = value
    with pytest.raises(InputError) as refused:
        predictor.predict(sent)
    assert (refused.value.field, refused.value.row, refused.value.rule) == (field, 2, rule)
    assert "\n" not in str(refused.value)


def test_a_missing_field_is_refused_and_a_missing_nullable_one_is_not(predictor, trained):
    sent = as_sent(raw_flights(trained).head(2), predictor)
    with pytest.raises(InputError, match="'distance'") as refused:
        validate_input(sent.drop(columns=["distance"]), predictor.input_schema)
    assert refused.value.rule == "required"
    out = predictor.predict(sent.drop(columns=["tailnum"]))  # tailnum may be null: no aircraft features
    assert len(out) == 2


def test_an_empty_batch_gives_an_empty_frame(predictor):
    out = predictor.predict(pd.DataFrame(columns=[f.name for f in predictor.input_schema]))
    assert len(out) == 0 and list(out.columns) == ["probability", "label", "context_fallback"]


def test_a_tampered_package_is_refused_at_load(package, tmp_path):
    copy = tmp_path / package.name
    shutil.copytree(package, copy)
    state = json.loads((copy / STATE_FILE).read_text())
    state["history_smoothing"] = 0.0
    (copy / STATE_FILE).write_text(json.dumps(state))
    with pytest.raises(PackageError, match=r"feature_state\.json: SHA-256"):
        Predictor.load(copy)


def test_the_predictor_scores_with_the_fast_scorer_and_it_matches_predict_proba(predictor, trained):
    assert predictor.fast is not None  # the default model is hist-gradient boosting: the fast scorer applies
    sent = as_sent(raw_flights(trained), predictor).head(300)
    known = input_problems(sent, predictor.input_schema)["field"].to_numpy() == ""
    features = predictor.features(sent[known])
    want = predictor.model.predict_proba(features)[:, 1]
    got = predictor.predict(sent[known])["probability"].to_numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m["params"]["evaluate"].update(threshold=float("nan")),
        lambda m: m["params"]["evaluate"].update(threshold=5.0),
        lambda m: m["params"]["evaluate"].update(threshold="0.5x"),
        lambda m: m["model"].pop("features"),
    ],
    ids=["nan-threshold", "threshold-over-1", "text-threshold", "no-features"],
)
def test_a_re_signed_hostile_manifest_is_refused_at_load(package, tmp_path, edit):
    # a package author can hash any manifest: a NaN or out-of-range threshold loaded, passed the canary (which
    # checks probabilities only) and labelled every flight 0; a missing key was a KeyError past PackageError
    from flightdelay.release.package_format import MANIFEST_FILE, MODEL_FILE, write_package

    manifest = json.loads((package / MANIFEST_FILE).read_text())
    edit(manifest)
    hostile, _ = write_package(
        tmp_path / "hostile", (package / MODEL_FILE).read_bytes(), manifest, (package / STATE_FILE).read_bytes()
    )
    # refused by verify's check of the manifest's shapes (a threshold that is not a number) or at load
    with pytest.raises(PackageError, match=r"refusing (the package|it)$"):
        Predictor.load(hostile)
