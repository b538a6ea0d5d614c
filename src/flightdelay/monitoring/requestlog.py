"""The service's request log, read as a stream: one JSON object per line (the contract in docs/monitoring.md).

`read_requests` yields each well-formed line as a `Request` and counts the rest in a `Skipped` (with the first few
line numbers and reasons), so one torn or hand-edited line never stops the monitor.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from collections.abc import Iterable, Iterator
from typing import Any

# Lines quoted in the report of skipped lines; the rest are only counted.
EXAMPLES = 5


@dataclasses.dataclass(frozen=True)
class Request:
    """One line of the request log."""

    time: dt.datetime
    request_id: str
    method: str
    path: str
    status: int
    latency_ms: float
    model_hash: str | None
    batch_size: int
    error: str | None
    predictions: tuple[float, ...] | None
    features: dict[str, list[Any]] | None = None
    line: int = 0  # the line number in the log


@dataclasses.dataclass
class Skipped:
    """Lines not used: how many, and the first few as 'line N: reason'."""

    count: int = 0
    examples: list[str] = dataclasses.field(default_factory=list)

    def add(self, line_no: int, reason: str) -> None:
        self.count += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(f"line {line_no}: {reason}")


class BadLine(ValueError):
    """A line that is not a request record; the message says which key and why."""


def _get(entry: dict[str, Any], key: str, kinds: type | tuple[type, ...], nullable: bool = False) -> Any:
    if key not in entry:
        raise BadLine(f"no key {key!r}")
    value = entry[key]
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise BadLine(f"{key!r} is {json.dumps(value)[:40]}, not {'/'.join(k.__name__ for k in _tuple(kinds))}")
    return value


def _tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def parse_time(text: str) -> dt.datetime:
    """A UTC time written as ISO-8601 with a trailing Z."""
    if not text.endswith("Z"):
        raise BadLine(f"'time' {text[:40]!r} is not UTC ISO-8601 ending in Z")
    try:
        return dt.datetime.fromisoformat(text[:-1]).replace(tzinfo=dt.UTC)
    except ValueError:
        raise BadLine(f"'time' {text[:40]!r} is not UTC ISO-8601 ending in Z") from None


def parse_request(text: str, line: int = 0) -> Request:
    """One log line as a Request, or BadLine naming what is wrong."""

    def no_constants(name: str) -> Any:
        raise BadLine(f"{name} is not JSON (the service writes null)")

    try:  # ValueError: JSONDecodeError, or an integer too long to convert
        entry = json.loads(text, parse_constant=no_constants)
    except (ValueError, RecursionError):
        raise BadLine("not JSON (a torn or hand-edited line?)") from None
    if not isinstance(entry, dict):
        raise BadLine("not a JSON object")
    try:
        latency = float(_get(entry, "latency_ms", (int, float)))
    except OverflowError:
        raise BadLine("'latency_ms' is too large for a number") from None
    if not math.isfinite(latency) or latency < 0:
        raise BadLine(f"'latency_ms' {latency} is not a finite number >= 0")
    predictions = _get(entry, "predictions", list, nullable=True)
    if predictions is not None:
        if not all(isinstance(p, int | float) and not isinstance(p, bool) for p in predictions):
            raise BadLine("'predictions' holds something other than numbers")
        try:
            predictions = tuple(float(p) for p in predictions)
        except OverflowError:
            raise BadLine("'predictions' holds a number too large for a float") from None
    features = entry.get("features")
    if features is not None and not (
        isinstance(features, dict) and all(isinstance(v, list) for v in features.values())
    ):
        raise BadLine("'features' is not an object of column -> list of values")
    return Request(
        time=parse_time(_get(entry, "time", str)),
        request_id=_get(entry, "request_id", str),
        method=_get(entry, "method", str),
        path=_get(entry, "path", str),
        status=_get(entry, "status", int),
        latency_ms=latency,
        model_hash=_get(entry, "model_hash", str, nullable=True),
        batch_size=_get(entry, "batch_size", int),
        error=_get(entry, "error", str, nullable=True),
        predictions=predictions,
        features=features,
        line=line,
    )


def read_requests(lines: Iterable[str], skipped: Skipped) -> Iterator[Request]:
    """The well-formed requests of a log, in file order; blank lines are ignored, bad ones counted in `skipped`."""
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield parse_request(line, line_no)
        except BadLine as exc:
            skipped.add(line_no, str(exc))
