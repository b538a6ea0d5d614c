"""What a change did, as comment data: gate, params, metrics, slices and curves against a base. Runs in the PR job.

`flightdelay pr-report --base origin/main` compares the workspace (after `dvc repro`) with a base revision and
writes a folder:

    pr-report/comment-data.json   the comment's data (see prcomment.data); the trusted job renders the comment from it
    pr-report/comment-preview.md  what the trusted job will post from that data (for the run summary)
    pr-report/report.md           the same report with the plots inline, referenced relatively (plots/*.png)
    pr-report/plots/*.png         the plots of `dvc plots diff`, rendered offline from their Vega-Lite specs

It is a tool, not a pipeline stage: it reads what the pipeline wrote and what git holds at the base. The pure
functions turn the JSON of `dvc params diff --json`, `dvc metrics diff --json`, `dvc plots diff --json` and
`reports/*.json` into comment data; `collect` (subprocesses) and `write` (files, PNG rendering) are the I/O edges.
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeGuard

from pydantic import ValidationError

from flightdelay.core.errors import PipelineError
from flightdelay.core.files import atomic_path, write_text
from flightdelay.core.layout import DVC_LOCK, GATE_FILE, PLOTS_DIR, REPORTS_DIR, SLICES_FILE
from flightdelay.prcomment.data import (
    DATA_FILE,
    MAX_POINTS,
    MAX_TEXT,
    SCHEMA_VERSION,
    Change,
    CommentData,
    SliceMove,
    describe,
    validate_comment_data,
)
from flightdelay.prcomment.render import format_metric, format_param, plot_file, render_markdown

log = logging.getLogger(__name__)

# Slice metric compared when none is asked for: the first one the slices hold.
SLICE_METRICS = ("roc_auc", "mae", "rmse", "pr_auc", "brier")
# Curve key -> (plot data file of the evaluate stage, x field, y field), as dvc.yaml's plots declare them.
CURVE_FILES = {
    "roc": (f"{PLOTS_DIR}/roc.json", "fpr", "tpr"),
    "precision_recall": (f"{PLOTS_DIR}/precision_recall.json", "recall", "precision"),
    "calibration": (f"{PLOTS_DIR}/calibration.json", "mean_predicted", "fraction_positive"),
}
# Files `dvc repro` rewrites; a difference from the commit means the PR did not commit its own results.
RESULT_FILES = (DVC_LOCK, REPORTS_DIR)
PREVIEW_FILE = "comment-preview.md"


class ReportError(PipelineError):
    """The report cannot be built: the message names the command or file and what to do."""


# --- pure core -------------------------------------------------------------------------------------------------


def _value(value: Any) -> Any:
    """A params/metrics value the schema accepts: lists and dicts as JSON text, long text cut, NaN as None."""
    if isinstance(value, list | dict):
        value = json.dumps(value, separators=(", ", ": "))
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return value[: MAX_TEXT - 1] + "…"
    return value


def changes(
    diff: Mapping[str, Mapping[str, Mapping[str, Any]]], formatter: Callable[[Any], str] = format_metric
) -> list[Change]:
    """Rows of `dvc params diff --json` / `dvc metrics diff --json` that changed at the displayed precision.

    Keys carry their file only when more than one file has changes.
    """
    files = [name for name, rows in diff.items() if rows]
    out = []
    for file in files:
        for key, row in diff[file].items():
            old, new = _value(row.get("old")), _value(row.get("new"))
            if formatter(old) == formatter(new):
                continue  # unchanged, or a change below the precision shown
            fields = {"file": file if len(files) > 1 else None, "name": key, "base": old, "pr": new}
            try:
                out.append(Change.model_validate(fields))
            except ValidationError as exc:
                raise ReportError(f"{file}: key {key!r} cannot be reported: {describe(exc)}") from None
    return sorted(out, key=lambda c: (c.file or "", c.name))


def pick_slice_metric(slices: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str | None:
    present = {metric for values in slices.values() for row in values.values() for metric in row}
    return next((metric for metric in SLICE_METRICS if metric in present), None)


def _finite(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def slice_moves(
    base: Mapping[str, Mapping[str, Mapping[str, Any]]],
    head: Mapping[str, Mapping[str, Mapping[str, Any]]],
    metric: str,
    top: int = 5,
) -> list[SliceMove]:
    """The `top` slices present on both sides whose `metric` moved most (largest absolute change first)."""
    moves = []
    for dimension, values in head.items():
        for value, row in values.items():
            old = base.get(dimension, {}).get(value, {}).get(metric)
            new = row.get(metric)
            if not (_finite(old) and _finite(new)) or format_metric(old) == format_metric(new):
                continue
            rows = row.get("rows") if isinstance(row.get("rows"), int) else None
            fields = {"dimension": dimension, "value": value, "rows": rows, "base": float(old), "pr": float(new)}
            try:
                moves.append(SliceMove.model_validate(fields))
            except ValidationError as exc:
                raise ReportError(f"slice {dimension}={value!r} cannot be reported: {describe(exc)}") from None
    moves.sort(key=lambda m: (-abs(m.pr - m.base), m.dimension, m.value))
    return moves[:top]


def _has_data(spec: Mapping[str, Any]) -> bool:
    data = spec.get("data")
    if isinstance(data, Mapping) and "values" in data:
        return bool(data["values"])
    return True  # data given another way (a URL, datasets): let the renderer decide


def plot_specs(plots: Mapping[str, Any], names: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """Vega-Lite specs from `dvc plots diff --json`, by plot title; plots with no data are left out."""
    wanted = list(names) if names else None
    out = {}
    for title, entries in (plots.get("data") or {}).items():
        if wanted is not None and title not in wanted:
            continue
        for entry in entries or []:
            spec = entry.get("content")
            if entry.get("type") == "vega" and isinstance(spec, dict) and _has_data(spec):
                out[title] = spec
                break
    if wanted is not None:
        missing = [name for name in wanted if name not in out]
        if missing:
            log.warning("no data for plot(s) %s; available: %s", missing, sorted(plots.get("data") or {}))
    return out


def curve_points(rows: Any, x: str, y: str, limit: int = MAX_POINTS) -> list[list[float]] | None:
    """[x, y] pairs in [0, 1] from plot data rows, at most `limit` (evenly thinned); None under two points."""
    if not isinstance(rows, list):
        return None
    points = [
        [float(r[x]), float(r[y])]
        for r in rows
        if isinstance(r, Mapping) and _finite(r.get(x)) and _finite(r.get(y)) and 0 <= r[x] <= 1 and 0 <= r[y] <= 1
    ]
    if len(points) > limit:
        step = (len(points) - 1) / (limit - 1)
        points = [points[round(i * step)] for i in range(limit)]
    return points if len(points) >= 2 else None


def normalise_gate(gate: Any) -> dict[str, Any] | None:
    """reports/gate.json in the shape of the comment data (decision, override, rules); other keys dropped."""
    if not isinstance(gate, Mapping):
        return None
    out: dict[str, Any] = {"decision": str(gate.get("decision", "")).lower(), "override": None, "rules": []}
    override = gate.get("override")
    if isinstance(override, Mapping):
        out["override"] = {
            "approved_by": _value(str(override.get("approved_by", "?"))),
            "reason": _value(str(override.get("reason", ""))),
            "applied": bool(override.get("applied")),
            "note": _value(str(override.get("note") or "")),
        }
    for rule in gate.get("rules") or []:
        if isinstance(rule, Mapping):
            fields = {k: rule.get(k) for k in ("rule", "outcome", "value", "comparison", "threshold")}
            out["rules"].append({**fields, "note": _value(str(rule.get("note") or ""))})
    return out


# --- I/O edges -------------------------------------------------------------------------------------------------


def _run(cmd: list[str], cwd: Path, ok_codes: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    log.debug("running %s", " ".join(cmd))
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise ReportError(f"cannot run {cmd[0]!r}: {exc}") from None
    if proc.returncode not in ok_codes:
        raise ReportError(f"`{' '.join(cmd)}` exited {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def _dvc_json(args: list[str], cwd: Path) -> Any:
    proc = _run([sys.executable, "-m", "dvc", *args, "--json"], cwd)
    try:
        return json.loads(proc.stdout or "{}")
    except json.JSONDecodeError as exc:
        raise ReportError(f"`dvc {' '.join(args)} --json` printed no JSON ({exc}): {proc.stdout[:500]!r}") from None


def _read_json_file(path: Path) -> Any | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}: not valid JSON ({exc})") from None


def _git_json(rev: str, path: str, cwd: Path) -> Any | None:
    proc = _run(["git", "show", f"{rev}:{path}"], cwd, ok_codes=(0, 128))
    if proc.returncode != 0:
        return None  # the file does not exist at that revision
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{rev}:{path}: not valid JSON ({exc})") from None


def collect(
    base: str,
    repo: Path = Path("."),
    gate_file: str = GATE_FILE,
    slices_file: str = SLICES_FILE,
    plot_names: Iterable[str] | None = None,
    slice_metric: str | None = None,
    top: int = 5,
    pipeline_failed: bool = False,
) -> tuple[CommentData, dict[str, dict[str, Any]]]:
    """Ask git and dvc what changed between `base` and the workspace. Returns the comment data and plot specs."""
    repo = Path(repo)
    verify = _run(["git", "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}"], repo, ok_codes=(0, 1, 128))
    if verify.returncode != 0:
        raise ReportError(
            f"base revision {base!r} not found in {repo.resolve()}; fetch it first "
            "(in GitHub Actions: actions/checkout with fetch-depth: 0)"
        )

    head_slices = _read_json_file(repo / slices_file)
    base_slices = _git_json(base, slices_file, repo)
    slices: dict[str, Any] = {"metric": slice_metric, "missing": None, "moves": []}
    if head_slices is None:
        slices["missing"] = "no_head"
    elif base_slices is None:
        slices["missing"] = "no_base"
    else:
        slices["metric"] = slice_metric or pick_slice_metric(head_slices)
        if slices["metric"] is None:
            slices["missing"] = "no_metric"
        else:
            slices["moves"] = slice_moves(base_slices, head_slices, slices["metric"], top)

    curves = {}
    for key, (file, x, y) in CURVE_FILES.items():
        sides = {
            "base": curve_points(_git_json(base, file, repo), x, y),
            "pr": curve_points(_read_json_file(repo / file), x, y),
        }
        if any(sides.values()):
            curves[key] = sides

    specs = plot_specs(_dvc_json(["plots", "diff", base], repo), plot_names)
    status = _run(["git", "status", "--porcelain", "--", *RESULT_FILES], repo).stdout
    raw = {
        "version": SCHEMA_VERSION,
        "base": {"rev": base, "sha": verify.stdout.strip()},
        "pipeline_failed": pipeline_failed,
        "uncommitted": sorted({line[3:].strip() for line in status.splitlines() if line.strip()}),
        "gate": normalise_gate(_read_json_file(repo / gate_file)),
        "params": [c.model_dump() for c in changes(_dvc_json(["params", "diff", base], repo), formatter=format_param)],
        "metrics": [c.model_dump() for c in changes(_dvc_json(["metrics", "diff", base], repo))],
        "slices": {**slices, "moves": [m.model_dump() for m in slices["moves"]]},
        "plots": list(specs),
        "curves": curves,
    }
    return validate_comment_data(raw, "the comment data this run built"), specs


def render_png(spec: Mapping[str, Any], scale: float = 1.5) -> bytes:
    """A Vega-Lite spec as PNG bytes, rendered in-process by vl-convert (no browser, no network)."""
    import vl_convert

    return vl_convert.vegalite_to_png(dict(spec), scale=scale)


def write(
    data: CommentData,
    specs: Mapping[str, Mapping[str, Any]],
    out_dir: Path,
    head_label: str = "workspace",
    run_url: str | None = None,
    scale: float = 1.5,
) -> Path:
    """Write comment-data.json, the preview, report.md and plots/*.png into out_dir. Returns the data file."""
    out_dir = Path(out_dir)
    (out_dir / "plots").mkdir(parents=True, exist_ok=True)
    for stale in (out_dir / "plots").glob("*.png"):
        stale.unlink()  # a plot that no longer exists must not be shown from an earlier run
    for title in data.plots:
        try:
            png = render_png(specs[title], scale)
        except Exception as exc:  # vl-convert raises plain ValueError/RuntimeError on a bad spec
            raise ReportError(f"cannot render plot {title!r}: {exc}") from exc
        with atomic_path(out_dir / plot_file(title)) as tmp:
            tmp.write_bytes(png)
    data_file = out_dir / DATA_FILE
    write_text(data_file, data.model_dump_json(indent=1) + "\n")
    write_text(out_dir / "report.md", render_markdown(data, head_label, run_url=run_url, inline_plots=True))
    write_text(out_dir / PREVIEW_FILE, render_markdown(data, head_label, run_url=run_url))
    log.info("wrote %s, %s, report.md and %d plot(s) into %s", DATA_FILE, PREVIEW_FILE, len(data.plots), out_dir)
    return data_file
