"""flightdelay.serving.record_features: compute_features' numbers for plain dict records, every fallback included,
and None (compute_features' turn) for what only it does. The inline frames are test_features.py's."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from flightdelay.modeling import flight_features as FF
from flightdelay.serving.record_features import FEATURE_NAMES, RecordLookups, record_features
from flightdelay.stages import features as F
from tests.unit.test_features import PARAMS, build, context, flights_partition, planes, weather_rows

# ------------------------------------------------------------------------------------------------ per record


def fitted_state() -> FF.FeatureState:
    frame, _ = build(flights_partition(), FF.weather_table(weather_rows(), 3), PARAMS)
    prior_sum, prior_count, tables = FF.History.collect([("2013-01", frame)], "late").tables(None)
    state = F.initial_state(PARAMS, FF.aircraft_table(planes()), 2013, 2013)
    return dataclasses.replace(state, prior_sum=prior_sum, prior_count=prior_count, history=tables)


def as_records(flights: pd.DataFrame) -> list[dict]:
    """Flights as the service receives them: plain ints, floats and text, None for missing, time as text."""
    columns = ["year", "month", "day", "sched_dep_time", "sched_arr_time", "carrier", "flight", "tailnum", "origin",
               "dest", "distance", "hour", "minute"]  # fmt: skip
    out = flights[columns].astype(object).where(flights[columns].notna(), None).to_dict("records")
    for record, stamp in zip(out, flights["time_hour"], strict=True):
        record["time_hour"] = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out


def typed(records: list[dict]) -> pd.DataFrame:
    """The records as compute_features reads them (the validated partitions' types)."""
    frame = pd.DataFrame(records)
    for column in ("year", "month", "day", "sched_dep_time", "sched_arr_time", "flight", "hour", "minute"):
        frame[column] = frame[column].astype("Int64")
    for column in ("carrier", "tailnum", "origin", "dest"):
        frame[column] = frame[column].astype("string")
    frame["distance"] = frame["distance"].astype("float64")
    frame["time_hour"] = pd.to_datetime(frame["time_hour"], utc=True, format="ISO8601")
    return frame


def test_record_features_give_compute_features_numbers_with_every_fallback():
    records = as_records(flights_partition())
    records += [
        {**records[0], "day": 2, "time_hour": "2013-01-02T14:00:00Z"},  # a day outside the schedule, no weather
        {**records[1], "time_hour": "2013-01-01 20:00:00+00:00"},  # no weather that hour
        {**records[0], "tailnum": None},  # no aircraft, the prior for the tail's history
        {**records[2], "tailnum": "N999"},  # an aircraft the state does not know
        {**records[0], "year": 2011, "time_hour": "2011-01-01T14:00:00"},  # outside the holiday calendar
        {**records[3], "time_hour": "2013-01-01T11:00:00-05:00"},  # an offset: 16:00 UTC
    ]
    state, ctx = fitted_state(), context()
    built = record_features(records, RecordLookups(ctx, state))
    assert built is not None
    columns, fallback = built
    frame, expected_fallback = FF.compute_features(typed(records), ctx, state)
    assert fallback.tolist() == expected_fallback.tolist() == [False] * 4 + [True, True, False, False, True, False]
    for name in FEATURE_NAMES:
        if name in FF.CATEGORICAL:
            assert columns[name] == [None if pd.isna(v) else v for v in frame[name]], name
        else:  # the same float64 bits, NaN where compute_features has NaN
            np.testing.assert_array_equal(np.array(columns[name], dtype="float64"), frame[name].astype("float64"), name)


@pytest.mark.parametrize(
    "change",
    [
        {"flight": 77},  # not in the schedule, on a day that is: counted with the schedule by compute_features
        {"time_hour": "2013-01-01T14:00:00.5Z"},  # not the plain form
        {"time_hour": "2013-01-01T14:00"},
        {"day": 31, "month": 2},  # no such date
        {"flight": 1.0},  # a field of another type than the input schema's
        {"distance": None},
    ],
)
def test_record_features_leave_to_compute_features_what_only_it_does(change):
    records = as_records(flights_partition())
    records[2] = {**records[2], **change}
    assert record_features(records, RecordLookups(context(), fitted_state())) is None
