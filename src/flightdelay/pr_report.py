"""The pull-request comment: what a change did to the gate, params, metrics, slices and plots, against a base.

`flightdelay pr-report --base origin/main` compares the workspace (after `dvc repro`) with a base revision and
writes a folder:

    pr-report/comment.md     the PR comment body (starts with MARKER, so the bot can find and update it)
    pr-report/report.md      the same report with the plots inline, referenced relatively (plots/*.png)
    pr-report/plots/*.png    the plots of `dvc plots diff`, rendered offline from their Vega-Lite specs

It is a tool, not a pipeline stage: it reads what the pipeline wrote and what git holds at the base.

The pure functions turn the JSON of `dvc params diff --json`, `dvc metrics diff --json`, `dvc plots diff --json`
and `reports/*.json` into a `Report` and the report into markdown. `collect` (subprocesses) and `write` (files,
PNG rendering) are the I/O edges.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flightdelay.errors import PipelineError
from flightdelay.io import atomic_path, write_text

log = logging.getLogger(__name__)

MARKER = "<!-- flightdelay-report -->"
GATE_FILE = "reports/gate.json"
SLICES_FILE = "reports/slices.json"
# Slice metric compared when none is asked for: the first one the slices hold.
SLICE_METRICS = ("roc_auc", "mae", "rmse", "pr_auc", "brier")
# Files `dvc repro` rewrites; a difference from the commit means the PR did not commit its own results.
RESULT_FILES = ("dvc.lock", "reports")
MAX_ROWS = 40  # per table, so a sweeping change still fits in a comment (GitHub's limit is 65,536 characters)
NO_VALUE = "—"


class ReportError(PipelineError):
    """The report cannot be built: the message names the command or file and what to do."""


@dataclass(frozen=True)
class Change:
    """One params or metrics key whose value differs between the base and the workspace."""

    name: str
    old: Any
    new: Any


@dataclass(frozen=True)
class SliceMove:
    """One slice (e.g. carrier = AA) whose metric moved."""

    dimension: str
    value: str
    rows: int | None
    old: float
    new: float

    @property
    def delta(self) -> float:
        return self.new - self.old


@dataclass(frozen=True)
class Plot:
    title: str
    file: str  # relative to the output folder, e.g. plots/roc.png


@dataclass(frozen=True)
class Report:
    base: str
    head: str
    gate: Mapping[str, Any] | None
    params: list[Change]
    metrics: list[Change]
    slice_metric: str | None = None
    slices: list[SliceMove] = field(default_factory=list)
    slices_note: str | None = None
    plots: list[Plot] = field(default_factory=list)
    uncommitted: list[str] = field(default_factory=list)
    run_url: str | None = None
    pipeline_failed: bool = False


# --- formatting ------------------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _decimals(value: float) -> int:
    """Digits after the point: 4 for scores in [0, 1], fewer for minutes or counts."""
    size = abs(value)
    if size >= 1000:
        return 0
    if size >= 10:
        return 2
    return 4


def format_metric(value: Any) -> str:
    """A metric for a table: floats at a precision that fits their size, None as a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NO_VALUE
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{_decimals(value)}f}"
    return str(value)


def format_param(value: Any) -> str:
    """A param exactly as configured (no rounding: 0.05 and 0.050001 are different settings)."""
    if value is None:
        return NO_VALUE
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return value
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(", ", ": "))
    return repr(value)


def format_delta(old: Any, new: Any) -> str:
    """Signed change at the precision of the larger value; empty when either side is not a number."""
    if not (_is_number(old) and _is_number(new)):
        return ""
    delta = new - old
    if isinstance(old, int) and isinstance(new, int):
        return f"{delta:+,}"
    digits = _decimals(max(abs(old), abs(new)))
    return f"{delta:+,.{digits}f}"


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


# --- pure core -------------------------------------------------------------------------------------------------


def changes(diff: Mapping[str, Mapping[str, Mapping[str, Any]]], formatter=format_metric) -> list[Change]:
    """Rows of `dvc params diff --json` / `dvc metrics diff --json` that changed at the displayed precision.

    Keys are prefixed with their file only when more than one file has changes.
    """
    files = [name for name, rows in diff.items() if rows]
    out = []
    for file in files:
        for key, row in diff[file].items():
            old, new = row.get("old"), row.get("new")
            if formatter(old) == formatter(new):
                continue  # unchanged, or a change below the precision shown
            name = key if len(files) == 1 else f"{file}:{key}"
            out.append(Change(name, old, new))
    return sorted(out, key=lambda c: c.name)


def pick_slice_metric(slices: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str | None:
    present = {metric for values in slices.values() for row in values.values() for metric in row}
    return next((metric for metric in SLICE_METRICS if metric in present), None)


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
            if not (_is_number(old) and _is_number(new)) or format_metric(old) == format_metric(new):
                continue
            moves.append(SliceMove(dimension, value, row.get("rows"), float(old), float(new)))
    moves.sort(key=lambda m: (-abs(m.delta), m.dimension, m.value))
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


def plot_file(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_") or "plot"
    return f"plots/{slug}.png"


# --- markdown --------------------------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]], align: list[str]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    shown = rows[:MAX_ROWS]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in shown]
    if len(rows) > len(shown):
        lines.append(f"\n…and {len(rows) - len(shown)} more.")
    return lines


GATE_ICONS = {"pass": "✅", "fail": "❌", "overridden": "⚠️", "skipped": "⏭️"}


def gate_lines(gate: Mapping[str, Any] | None) -> list[str]:
    """The gate decision (reports/gate.json of the gate stage) with its rules and any override."""
    if gate is None:
        return ["**Gate:** no gate (no `reports/gate.json` in this run)."]
    decision = str(gate.get("decision", "unknown")).lower()
    lines = [f"**Gate:** {GATE_ICONS.get(decision, '❔')} **{decision}**"]
    override = gate.get("override")
    if isinstance(override, Mapping):
        applied = "applied" if override.get("applied") else "not applied"
        note = f": {override['note']}" if override.get("note") else ""
        lines.append(
            f"Override by {override.get('approved_by', '?')} ({applied}{note}): {override.get('reason', '')}".rstrip()
        )
    rules = gate.get("rules") or []
    if rules:
        rows = [_rule_row(rule) for rule in rules]
        lines += ["", *_table(["rule", "result", "detail"], rows, [":---", ":---", ":---"])]
    return lines


def _rule_row(rule: Any) -> list[str]:
    """A gate rule as (name, result, detail).

    The gate stage writes {rule, value, comparison, threshold, outcome, note}; other shapes (name/passed/message,
    free text) are shown as well as they can be.
    """
    if not isinstance(rule, Mapping):
        return [str(rule), "", ""]
    name = next((str(rule[k]) for k in ("rule", "name", "id", "check") if k in rule), "rule")
    if "passed" in rule:
        result = "pass" if rule["passed"] else "fail"
    else:
        result = str(next((rule[k] for k in ("outcome", "result", "status", "decision") if k in rule), ""))
    result = f"{GATE_ICONS.get(result.lower(), '')} {result}".strip()
    note = next((str(rule[k]) for k in ("note", "message", "detail", "reason") if rule.get(k)), "")
    if "value" in rule and "threshold" in rule:
        detail = f"{format_metric(rule['value'])} {rule.get('comparison') or 'vs'} {format_metric(rule['threshold'])}"
        detail = f"{detail}; {note}" if note else detail
    elif note:
        detail = note
    else:
        used = {"name", "rule", "id", "check", "passed", "outcome", "result", "status", "decision"}
        detail = ", ".join(f"{k}={format_metric(v)}" for k, v in rule.items() if k not in used)
    return [name, result, detail]


def render_markdown(report: Report, image_base: str | None = "", artifact: str = "pr-report") -> str:
    """The report as markdown.

    image_base: "" shows plots inline by relative path (plots/roc.png, for report.md next to its images);
    a URL shows them inline from that URL (an image host you chose); None lists them and points to the
    workflow run's artifact instead (the default PR comment: no image leaves the CI run).
    """
    lines = [MARKER, f"## flightdelay: `{report.head}` against `{report.base}`", ""]
    if report.pipeline_failed:
        lines += [
            "❌ **`dvc repro` failed in this run** (a failed gate stops it before `package`): the check fails, "
            "and the numbers below are those of the stages that ran. The run's log says why.",
            "",
        ]
    lines += gate_lines(report.gate)
    if report.uncommitted:
        files = ", ".join(f"`{f}`" for f in report.uncommitted)
        lines += [
            "",
            f"⚠️ `dvc repro` changed committed results ({files}): the numbers below are this run's; "
            "run `dvc repro` and commit `dvc.lock` and `reports/`.",
        ]

    lines += ["", "### Params", ""]
    if report.params:
        rows = [[f"`{c.name}`", format_param(c.old), format_param(c.new)] for c in report.params]
        lines += _table(["param", "base", "this PR"], rows, [":---", "---:", "---:"])
    else:
        lines.append("No change.")

    lines += ["", "### Metrics", ""]
    if report.metrics:
        rows = [
            [f"`{c.name}`", format_metric(c.old), format_metric(c.new), format_delta(c.old, c.new)]
            for c in report.metrics
        ]
        lines += _table(["metric", "base", "this PR", "change"], rows, [":---", "---:", "---:", "---:"])
    else:
        lines.append("No change.")

    by = f" ({report.slice_metric})" if report.slice_metric else ""
    lines += ["", f"### Slices that moved most{by}", ""]
    if report.slices_note:
        lines.append(report.slices_note)
    elif report.slices:
        rows = [
            [
                f"{m.dimension} = {m.value}",
                format_metric(m.rows),
                format_metric(m.old),
                format_metric(m.new),
                format_delta(m.old, m.new),
            ]
            for m in report.slices
        ]
        lines += _table(["slice", "rows", "base", "this PR", "change"], rows, [":---", "---:", "---:", "---:", "---:"])
    else:
        lines.append("No change.")

    lines += ["", "### Plots", ""]
    if not report.plots:
        lines.append("No plots.")
    elif image_base is None:
        names = ", ".join(p.title for p in report.plots)
        where = f"[this workflow run]({report.run_url})" if report.run_url else "this workflow run"
        lines.append(f"{names}: rendered offline, base against this PR, in the `{artifact}` artifact of {where}.")
    else:
        prefix = f"{image_base.rstrip('/')}/" if image_base else ""
        for plot in report.plots:
            lines += [f"**{plot.title}**", "", f"![{plot.title}]({prefix}{plot.file})", ""]
        lines.pop()
    if report.run_url and not (report.plots and image_base is None):  # else the plots line links the run
        lines += ["", f"<sub>[workflow run]({report.run_url})</sub>"]
    return "\n".join(lines) + "\n"


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
    head_label: str = "workspace",
    run_url: str | None = None,
    pipeline_failed: bool = False,
) -> tuple[Report, dict[str, dict[str, Any]]]:
    """Ask git and dvc what changed between `base` and the workspace. Returns the report and the plot specs."""
    repo = Path(repo)
    verify = _run(["git", "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}"], repo, ok_codes=(0, 1, 128))
    if verify.returncode != 0:
        raise ReportError(
            f"base revision {base!r} not found in {repo.resolve()}; fetch it first "
            "(in GitHub Actions: actions/checkout with fetch-depth: 0)"
        )
    short = verify.stdout.strip()[:8]
    base_label = short if verify.stdout.startswith(base) else f"{base} @ {short}"

    params = changes(_dvc_json(["params", "diff", base], repo), formatter=format_param)
    metrics = changes(_dvc_json(["metrics", "diff", base], repo))

    head_slices = _read_json_file(repo / slices_file)
    base_slices = _git_json(base, slices_file, repo)
    moves: list[SliceMove] = []
    note = None
    metric = slice_metric
    if head_slices is None:
        note = f"No `{slices_file}` in this run."
    elif base_slices is None:
        note = f"No `{slices_file}` at the base: nothing to compare."
    else:
        metric = metric or pick_slice_metric(head_slices)
        if metric is None:
            note = f"No known metric in `{slices_file}` (looked for {', '.join(SLICE_METRICS)})."
        else:
            moves = slice_moves(base_slices, head_slices, metric, top)

    specs = plot_specs(_dvc_json(["plots", "diff", base], repo), plot_names)
    plots = [Plot(title, plot_file(title)) for title in specs]

    status = _run(["git", "status", "--porcelain", "--", *RESULT_FILES], repo).stdout
    uncommitted = sorted({line[3:].strip() for line in status.splitlines() if line.strip()})

    report = Report(
        base=base_label,
        head=head_label,
        gate=_read_json_file(repo / gate_file),
        params=params,
        metrics=metrics,
        slice_metric=metric,
        slices=moves,
        slices_note=note,
        plots=plots,
        uncommitted=uncommitted,
        run_url=run_url,
        pipeline_failed=pipeline_failed,
    )
    return report, specs


def render_png(spec: Mapping[str, Any], scale: float = 1.5) -> bytes:
    """A Vega-Lite spec as PNG bytes, rendered in-process by vl-convert (no browser, no network)."""
    import vl_convert

    return vl_convert.vegalite_to_png(dict(spec), scale=scale)


def write(
    report: Report,
    specs: Mapping[str, Mapping[str, Any]],
    out_dir: Path,
    image_base_url: str | None = None,
    artifact: str = "pr-report",
    scale: float = 1.5,
) -> Path:
    """Render the plots and write comment.md, report.md and plots/*.png into out_dir. Returns comment.md."""
    out_dir = Path(out_dir)
    (out_dir / "plots").mkdir(parents=True, exist_ok=True)
    for stale in (out_dir / "plots").glob("*.png"):
        stale.unlink()  # a plot that no longer exists must not be shown from an earlier run
    for plot in report.plots:
        try:
            png = render_png(specs[plot.title], scale)
        except Exception as exc:  # vl-convert raises plain ValueError/RuntimeError on a bad spec
            raise ReportError(f"cannot render plot {plot.title!r}: {exc}") from exc
        with atomic_path(out_dir / plot.file) as tmp:
            tmp.write_bytes(png)
    write_text(out_dir / "report.md", render_markdown(report, image_base=""))
    comment = out_dir / "comment.md"
    write_text(comment, render_markdown(report, image_base=image_base_url, artifact=artifact))
    log.info("wrote %s, report.md and %d plot(s) into %s", comment.name, len(report.plots), out_dir)
    return comment


# --- command line ----------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", required=True, help="git revision to compare with, e.g. origin/main or a SHA")
    parser.add_argument("--out", default="pr-report", type=Path, help="output folder (default: %(default)s)")
    parser.add_argument("--repo", default=".", type=Path, help="repository root (default: %(default)s)")
    parser.add_argument("--gate", default=GATE_FILE, help="gate decision file (default: %(default)s)")
    parser.add_argument("--slices", default=SLICES_FILE, help="slice metrics file (default: %(default)s)")
    parser.add_argument(
        "--slice-metric", help=f"slice metric to rank by (default: the first of {', '.join(SLICE_METRICS)})"
    )
    parser.add_argument("--top", type=int, default=5, help="slices to show (default: %(default)s)")
    parser.add_argument(
        "--plot", action="append", dest="plots", metavar="TITLE", help="plot to render (repeat; default: all with data)"
    )
    parser.add_argument("--head-label", default="workspace", help="name of the compared state (default: %(default)s)")
    parser.add_argument("--run-url", help="link to the CI run, shown in the comment")
    parser.add_argument(
        "--pipeline-failed", action="store_true", help="say in the report that `dvc repro` failed in this run"
    )
    parser.add_argument("--artifact", default="pr-report", help="artifact name the comment points to for plots")
    parser.add_argument(
        "--image-base-url",
        help="show plots inline in comment.md from this URL (an image host you run); default: link the artifact",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging with timestamps")


def run(args: argparse.Namespace) -> Path:
    if args.top < 0:
        raise ReportError(f"--top must be 0 or more, got {args.top}")
    report, specs = collect(
        args.base,
        repo=args.repo,
        gate_file=args.gate,
        slices_file=args.slices,
        plot_names=args.plots,
        slice_metric=args.slice_metric,
        top=args.top,
        head_label=args.head_label,
        run_url=args.run_url,
        pipeline_failed=args.pipeline_failed,
    )
    return write(report, specs, args.out, image_base_url=args.image_base_url, artifact=args.artifact)
