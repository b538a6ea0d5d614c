"""Cut a stream of requests into windows and measure each: traffic, errors, latency, PSI against training.

Only scoring traffic (POST /predict) is measured; other paths (health probes, metrics scrapes) are counted in
`other_requests`. A window is a fixed stretch of time (`monitor.window: 1h`, aligned to the epoch, so the same
log always gives the same windows) or a fixed number of scoring requests (`monitor.window: 500`). Windows are
written as soon as the log has moved two windows past them, so a log of any length needs the memory of about two
windows; a line that arrives after its window was written is counted as skipped.

Percentiles are nearest-rank (the smallest latency with at least p% of the window's latencies at or below it):
always a latency that was observed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import numpy as np
import pandas as pd

from flightdelay.monitoring.requestlog import Request, Skipped

SCORING = ("POST", "/predict")
PREDICTION = "prediction"
PERCENTILES = (50, 95, 99)


class Reference(Protocol):
    """The package's training distributions (flightdelay.serving.predictor.Reference)."""

    columns: list[str]

    def psi(self, column: str, values: pd.Series) -> float: ...


@dataclasses.dataclass
class Window:
    """What one window has collected so far."""

    start: dt.datetime
    end: dt.datetime
    requests: int = 0
    other_requests: int = 0
    client_errors: int = 0
    errors: int = 0
    latencies: list[float] = dataclasses.field(default_factory=list)
    predictions: list[float] = dataclasses.field(default_factory=list)
    features: dict[str, list[Any]] = dataclasses.field(default_factory=dict)
    model_hashes: set[str] = dataclasses.field(default_factory=set)

    def add(self, request: Request) -> None:
        if (request.method, request.path) != SCORING:
            self.other_requests += 1
            return
        self.requests += 1
        self.client_errors += 400 <= request.status < 500
        self.errors += request.status >= 500
        self.latencies.append(request.latency_ms)
        if request.model_hash:
            self.model_hashes.add(request.model_hash)
        if request.predictions is not None:
            self.predictions.extend(request.predictions)
        for column, values in (request.features or {}).items():
            self.features.setdefault(column, []).extend(values)


def iso(time: dt.datetime) -> str:
    return time.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def nearest_rank(values: list[float], percent: float) -> float | None:
    """The nearest-rank percentile: the value at rank ceil(p/100 * n) of the sorted values (None if empty)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(percent / 100 * len(ordered))) - 1]


def psi_of(window: Window, reference: Reference | None, min_rows: int) -> dict[str, Any]:
    """PSI of the predictions and of each logged feature the reference knows; None below `min_rows` rows."""
    rows = len(window.predictions)
    if reference is None or rows < min_rows:
        return {"prediction": None, "features": {}}
    known = set(reference.columns)
    features = {
        column: float(reference.psi(column, pd.Series(values)))
        for column, values in sorted(window.features.items())
        if column in known and len(values) >= min_rows
    }
    prediction = float(reference.psi(PREDICTION, pd.Series(np.asarray(window.predictions, dtype="float64"))))
    return {"prediction": prediction, "features": features}


def summarize(window: Window, reference: Reference | None, min_psi_rows: int) -> dict[str, Any]:
    """The line written for a window: what the monitor reports and the thresholds judge."""
    n = window.requests
    return {
        "start": iso(window.start),
        "end": iso(window.end),
        "requests": n,
        "other_requests": window.other_requests,
        "errors": window.errors,
        "client_errors": window.client_errors,
        "error_rate": window.errors / n if n else None,
        "client_error_rate": window.client_errors / n if n else None,
        "latency_ms": {f"p{p}": nearest_rank(window.latencies, p) for p in PERCENTILES}
        | {"max": max(window.latencies, default=None)},
        "rows": len(window.predictions),
        "psi": psi_of(window, reference, min_psi_rows),
        "model_hashes": sorted(window.model_hashes),
    }


def _time_key(request: Request, seconds: int) -> int:
    return math.floor(request.time.timestamp() / seconds)


def windows(
    requests: Iterable[Request],
    window: str | int,
    seconds: int | None,
    reference: Reference | None,
    min_psi_rows: int,
    skipped: Skipped,
) -> Iterator[dict[str, Any]]:
    """Summaries of the windows of `requests`, in time order. `seconds` is the window's length for a time window,
    None for a window of `window` scoring requests."""
    open_windows: dict[int, Window] = {}
    done = -1  # every window key up to this one has been written
    latest = -1
    scoring = 0
    for request in requests:
        if seconds is not None:
            key, lag = _time_key(request, seconds), 1
        else:
            key, lag = scoring // int(window), 0
            scoring += (request.method, request.path) == SCORING
        if key <= done:
            skipped.add(request.line, f"{iso(request.time)} arrived after its window was written (log out of order)")
            continue
        if key not in open_windows:
            if seconds is not None:
                start = dt.datetime.fromtimestamp(key * seconds, dt.UTC)
                open_windows[key] = Window(start=start, end=start + dt.timedelta(seconds=seconds))
            else:
                open_windows[key] = Window(start=request.time, end=request.time)
        current = open_windows[key]
        current.add(request)
        if seconds is None:
            current.start, current.end = min(current.start, request.time), max(current.end, request.time)
        latest = max(latest, key)
        for old in sorted(k for k in open_windows if k < latest - lag):
            yield summarize(open_windows.pop(old), reference, min_psi_rows)
            done = old
    for key in sorted(open_windows):
        yield summarize(open_windows.pop(key), reference, min_psi_rows)
