"""The monitoring figure: latency percentiles and PSI per window, as PNG bytes that are the same every run.

Drawn with matplotlib's Agg renderer and no text chunks in the PNG (like the report stage's figures), so the same
windows give the same bytes.
"""

from __future__ import annotations

import io
from typing import Any

# Features drawn besides the prediction: the ones with the highest PSI in any window.
TOP_FEATURES = 4


def _tick(start: str) -> str:
    return start[5:16].replace("T", " ")  # MM-DD HH:MM


def monitoring_png(windows: list[dict[str, Any]], max_p99_ms: float, max_psi: float, dpi: int = 100) -> bytes:
    """Two panels over the windows: latency p50/p95/p99 (ms) with the p99 threshold; PSI of the prediction and of
    the most-drifted features with the PSI threshold."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 6.0))
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True)
    x = list(range(len(windows)))
    for p, style in (("p50", ":"), ("p95", "--"), ("p99", "-")):
        top.plot(x, [w["latency_ms"][p] for w in windows], linestyle=style, marker=".", label=p)
    top.axhline(max_p99_ms, color="tab:red", linewidth=1, label=f"max_p99_ms {max_p99_ms:g}")
    top.set(ylabel="latency (ms)", title="Service latency per window")
    top.legend(loc="upper left", fontsize="small")
    top.grid(alpha=0.3)

    peak: dict[str, float] = {}
    for w in windows:
        for name, value in w["psi"]["features"].items():
            peak[name] = max(peak.get(name, 0.0), value)
    shown = sorted(peak, key=lambda n: (-peak[n], n))[:TOP_FEATURES]
    bottom.plot(x, [w["psi"]["prediction"] for w in windows], color="black", marker="o", label="prediction")
    for name in shown:
        bottom.plot(x, [w["psi"]["features"].get(name) for w in windows], marker=".", linewidth=1, label=name)
    bottom.axhline(max_psi, color="tab:red", linewidth=1, label=f"max_psi {max_psi:g}")
    bottom.set(ylabel="PSI vs training", title="Drift per window (PSI against the package's training reference)")
    bottom.legend(loc="upper left", fontsize="small")
    bottom.grid(alpha=0.3)
    step = max(1, len(x) // 8)
    bottom.set_xticks(x[::step], [_tick(w["start"]) for w in windows][::step], rotation=30, fontsize="small")
    bottom.set_xlabel("window start (UTC)")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()
