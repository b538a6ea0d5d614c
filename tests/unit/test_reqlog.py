"""The request log's writer thread (flightdelay.serving.reqlog): every entry lands, in order, as strict JSON,
whether it is written while the service runs (batched every BATCH_S) or drained by close()."""

from __future__ import annotations

import json
import time

from flightdelay.serving.reqlog import RequestLog


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_every_entry_lands_in_order_and_close_drains_the_queue(tmp_path):
    log = RequestLog(tmp_path / "logs" / "requests.jsonl")
    for i in range(500):
        log.write({"request_id": str(i), "latency_ms": float("nan") if i == 7 else i / 10})
    log.write({"request_id": "odd", "value": object()})  # default=str: written, not lost
    log.close()
    got = lines(tmp_path / "logs" / "requests.jsonl")
    assert [g["request_id"] for g in got] == [*map(str, range(500)), "odd"]
    assert got[7]["latency_ms"] is None and got[8]["latency_ms"] == 0.8


def test_entries_land_while_the_log_stays_open(tmp_path):
    log = RequestLog(tmp_path / "requests.jsonl")
    try:
        log.write({"request_id": "a"})
        deadline = time.monotonic() + 30  # a wait with a generous bound, not a timing assertion
        while len(lines(tmp_path / "requests.jsonl")) < 1:
            assert time.monotonic() < deadline, "the entry was never written"
            time.sleep(0.01)
        log.write({"request_id": "b"})
        while len(lines(tmp_path / "requests.jsonl")) < 2:
            assert time.monotonic() < deadline, "the second entry was never written"
            time.sleep(0.01)
        assert [g["request_id"] for g in lines(tmp_path / "requests.jsonl")] == ["a", "b"]
    finally:
        log.close()
