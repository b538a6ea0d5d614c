"""The thresholds of `params.yaml` `monitor:` applied to each window's measures: which rules a window breaks."""

from __future__ import annotations

import dataclasses
from typing import Any

from flightdelay.core.config import MonitorParams


@dataclasses.dataclass(frozen=True)
class Breach:
    """A window over one threshold: the rule, what it measured (`subject`: the prediction or a feature), the value,
    the threshold and the window."""

    rule: str
    subject: str
    value: float
    threshold: float
    start: str
    end: str

    def describe(self) -> str:
        what = {
            "max_error_rate": "5xx error rate",
            "max_p99_ms": "p99 latency (ms)",
            "max_psi": f"PSI of {self.subject}",
            "max_feature_psi": f"PSI of {self.subject}",
        }[self.rule]
        return f"{what} {self.value:.4g} > {self.threshold:g} ({self.rule}) in {self.start} .. {self.end}"


def judge(window: dict[str, Any], mp: MonitorParams) -> list[Breach]:
    """The rules `window` (a summary from windows.summarize) breaks; none when it has fewer than min_requests.
    Feature PSI is judged only when `max_feature_psi` is set, and never for `expected` features."""
    if window["requests"] < mp.min_requests:
        return []
    span = {"start": window["start"], "end": window["end"]}
    found: list[Breach] = []
    if window["error_rate"] > mp.max_error_rate:
        found.append(Breach("max_error_rate", "requests", window["error_rate"], mp.max_error_rate, **span))
    p99 = window["latency_ms"]["p99"]
    if p99 is not None and p99 > mp.max_p99_ms:
        found.append(Breach("max_p99_ms", "latency", p99, mp.max_p99_ms, **span))
    psi = window["psi"]
    if psi["prediction"] is not None and psi["prediction"] > mp.max_psi:
        found.append(Breach("max_psi", "prediction", psi["prediction"], mp.max_psi, **span))
    limit = mp.max_feature_psi
    for feature, value in sorted(psi["features"].items()):
        if limit is not None and feature not in mp.expected and value > limit:
            found.append(Breach("max_feature_psi", feature, value, limit, **span))
    return found
