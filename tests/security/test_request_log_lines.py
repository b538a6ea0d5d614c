"""`flightdelay monitor` reads a request log line by line: a line that is JSON but holds a number no float can hold,
an integer too long to convert, or NaN/Infinity (not JSON; the service never writes them) must be a skipped BadLine,
never a crash of the whole monitor run or a NaN in the PSI."""

from __future__ import annotations

import pytest

from flightdelay.monitoring.requestlog import BadLine, parse_request

BASE = (
    '{"time":"2013-11-01T00:00:00.000Z","request_id":"a","method":"POST","path":"/predict","status":200,'
    '"batch_size":1,"model_hash":null,"error":null,'
)


def test_a_plain_line_is_read():
    assert parse_request(BASE + '"latency_ms":1.5,"predictions":[0.25]}').predictions == (0.25,)


@pytest.mark.parametrize(
    "tail",
    [
        '"latency_ms":1' + "0" * 400 + ',"predictions":null}',
        '"latency_ms":1,"predictions":[1' + "0" * 400 + "]}",
        '"latency_ms":' + "1" * 5000 + ',"predictions":null}',
        '"latency_ms":1,"predictions":[NaN]}',
        '"latency_ms":Infinity,"predictions":null}',
    ],
    ids=["huge-latency", "huge-prediction", "too-many-digits", "nan-prediction", "infinite-latency"],
)
def test_a_hostile_number_is_a_bad_line(tail):
    with pytest.raises(BadLine):
        parse_request(BASE + tail)
