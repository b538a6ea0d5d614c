"""The monitoring figure: latency percentiles and PSI per window, as PNG bytes that are the same every run.

Drawn with matplotlib's Agg renderer and no text chunks in the PNG (like the report stage's figures), so the same
windows give the same bytes.
"""

from __future__ import annotations

import io
from typing import Any

# Features drawn besides the prediction: the ones with the highest PSI in any window.
TOP_FEATURES = 4
PSI_FLOOR = 1e-3  # a PSI of 0 drawn at this height on the log scale


def _floor(value: float | None) -> float | None:
    return None if value is None else max(value, PSI_FLOOR)


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
    top.set(ylabel="latency (ms)", title="Service latency per window (one request: a batch of rows)")
    top.legend(loc="upper left", fontsize="small")
    top.grid(alpha=0.3)

    peak: dict[str, float] = {}
    for w in windows:
        for name, value in w["psi"]["features"].items():
            peak[name] = max(peak.get(name, 0.0), value)
    shown = sorted(peak, key=lambda n: (-peak[n], n))[:TOP_FEATURES]
    bottom.plot(x, [_floor(w["psi"]["prediction"]) for w in windows], color="black", marker="o", label="prediction")
    for name in shown:
        values = [_floor(w["psi"]["features"].get(name)) for w in windows]
        bottom.plot(x, values, marker=".", linewidth=1, label=name)
    bottom.axhline(max_psi, color="tab:red", linewidth=1, label=f"max_psi {max_psi:g}")
    bottom.set_yscale("log")  # PSI spans 0.01 (same distribution) to 10+ (disjoint): a log scale shows both
    bottom.set(ylabel="PSI vs training (log)", title="Drift per window (PSI against the package's training reference)")
    bottom.legend(loc="upper left", fontsize="small")
    bottom.grid(alpha=0.3)
    step = max(1, len(x) // 12)
    bottom.set_xticks(x[::step], [str(i + 1) for i in x][::step])
    bottom.set_xlabel("window (in log order; their times are in the monitor's --out file)")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()
