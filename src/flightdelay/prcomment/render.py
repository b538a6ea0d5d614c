"""The pull-request comment, rendered from validated comment data (see prcomment.data). Runs in the trusted job.

Nothing from the data reaches the markdown unescaped: names are schema-checked and shown in code spans, free
text (gate notes, the override's reason) goes through `escape`, numbers are formatted here, and the gate's
decision is one of four fixed words. The curves are drawn as Mermaid `xychart-beta` line charts from the
validated points, interpolated onto one grid of x values (the x axis is categorical: both lines share it).
"""

from __future__ import annotations

import bisect
import json
import logging
import re
from pathlib import Path

from flightdelay.core.files import write_text
from flightdelay.core.layout import SLICES_FILE
from flightdelay.core.tables import markdown_table
from flightdelay.prcomment.data import (
    DATA_FILE,
    PR_FILE,
    ArtifactError,
    CommentData,
    Curve,
    Gate,
    load_comment_data,
    load_pr_info,
)

log = logging.getLogger(__name__)

MARKER = "<!-- flightdelay-report -->"
MAX_ROWS = 40  # per table, so a sweeping change still fits in a comment (GitHub's limit is 65,536 characters)
MAX_CHARS = 60_000
GRID_POINTS = 25
NO_VALUE = "—"
GATE_ICONS = {"pass": "✅", "fail": "❌", "overridden": "⚠️", "skipped": "⏭️"}
# Curve key -> (title, x label, y label); the points come from reports/plots/<file> of the evaluate stage.
CHARTS = {
    "roc": ("ROC", "false positive rate", "true positive rate"),
    "precision_recall": ("Precision-recall", "recall", "precision"),
    "calibration": ("Calibration", "mean predicted probability", "observed share of class 1"),
}
BASE_COLOUR, PR_COLOUR = "#9e9e9e", "#d62728"
FALLBACK = (
    f"{MARKER}\n## flightdelay\n\n"
    "⚠️ The report data of this run could not be validated, so no report is shown. "
    "The workflow run's log of the PR comment job says why.\n"
)

# --- escaping --------------------------------------------------------------------------------------------------

_MARKDOWN = set("\\`*_{}[]()#+!|~$")
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}
ZWSP = "\u200b"  # breaks @mentions, autolinks and e-mail links without changing what a reader sees


def escape(text: str) -> str:
    """Plain, inert text for markdown (a table cell included): no markup, HTML, mention, link or line break."""
    text = "".join(ch if ch.isprintable() else " " for ch in text)  # newlines, controls, bidi overrides
    out = []
    for ch in text:
        if ch in _HTML:
            out.append(_HTML[ch])
        elif ch in _MARKDOWN:
            out.append("\\" + ch)
        elif ch == "@":
            out.append("@" + ZWSP)
        else:
            out.append(ch)
    escaped = "".join(out).replace("://", ":" + ZWSP + "//")
    return re.sub(r"(?i)\bwww\.", lambda m: m.group(0)[:3] + ZWSP + ".", escaped)


def code(name: str) -> str:
    """A schema-checked name in a code span (nothing inside a code span is markup, a mention or a link)."""
    return "`" + re.sub(r"[^A-Za-z0-9_.=/:~^#@ -]", "?", name) + "`"


# --- formatting ------------------------------------------------------------------------------------------------


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _decimals(value: float) -> int:
    """Digits after the point: 4 for scores in [0, 1], fewer for minutes or counts."""
    size = abs(value)
    if size >= 1000:
        return 0
    if size >= 10:
        return 2
    return 4


def format_metric(value: object) -> str:
    """A metric for a table: floats at a precision that fits their size, None as a dash."""
    if value is None or (isinstance(value, float) and value != value):
        return NO_VALUE
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{_decimals(value)}f}"
    return str(value)


def format_param(value: object) -> str:
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


def format_delta(old: object, new: object) -> str:
    """Signed change at the precision of the larger value; empty when either side is not a number."""
    if not (_is_number(old) and _is_number(new)):
        return ""
    delta = new - old  # type: ignore[operator]
    if isinstance(old, int) and isinstance(new, int):
        return f"{delta:+,}"
    digits = _decimals(max(abs(old), abs(new)))  # type: ignore[arg-type]
    return f"{delta:+,.{digits}f}"


def plot_file(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_") or "plot"
    return f"plots/{slug}.png"


# --- markdown --------------------------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    """Cells must already be escaped (or be code spans of checked names); at most MAX_ROWS rows are shown."""
    shown = rows[:MAX_ROWS]
    lines = markdown_table(header, shown, align)
    if len(rows) > len(shown):
        lines.append(f"\n…and {len(rows) - len(shown)} more.")
    return lines


def gate_lines(gate: Gate | None) -> list[str]:
    """The gate decision (reports/gate.json of the gate stage) with its rules and any override."""
    if gate is None:
        return ["**Gate:** no gate (no `reports/gate.json` in this run)."]
    lines = [f"**Gate:** {GATE_ICONS[gate.decision]} **{gate.decision}**"]
    if gate.override is not None:
        o = gate.override
        applied = "applied" if o.applied else "not applied"
        note = f": {escape(o.note)}" if o.note else ""
        lines.append(f"Override by {escape(o.approved_by)} ({applied}{note}): {escape(o.reason)}".rstrip())
    if gate.rules:
        rows = []
        for rule in gate.rules:
            if rule.value is not None or rule.threshold is not None:
                detail = f"{format_metric(rule.value)} {rule.comparison or 'vs'} {format_metric(rule.threshold)}"
                detail = f"{detail}; {escape(rule.note)}" if rule.note else detail
            else:
                detail = escape(rule.note)
            rows.append([code(rule.rule), f"{GATE_ICONS[rule.outcome]} {rule.outcome}", detail])
        lines += ["", *_table(["rule", "result", "detail"], rows, "<<<")]
    return lines


def _change_name(change) -> str:
    return code(f"{change.file}:{change.name}" if change.file else change.name)


def interpolate(points: list[list[float]], grid: list[float]) -> list[float]:
    """y at each grid x, linear between the neighbouring points (points sorted by x; constant outside them)."""
    pts = sorted((p[0], p[1]) for p in points)
    xs = [x for x, _ in pts]
    out = []
    for g in grid:
        i = bisect.bisect_right(xs, g)
        if i == 0:
            out.append(pts[0][1])
        elif i == len(pts):
            out.append(pts[-1][1])
        else:
            (x0, y0), (x1, y1) = pts[i - 1], pts[i]
            out.append(y0 + (y1 - y0) * (g - x0) / (x1 - x0))
    return out


def chart_grid(curve: Curve, n: int = GRID_POINTS) -> list[float] | None:
    """n evenly spaced x values over the range both curves cover; None when they do not overlap."""
    series = [s for s in (curve.base, curve.pr) if s]
    if not series:
        return None
    lo = max(min(p[0] for p in s) for s in series)
    hi = min(max(p[0] for p in s) for s in series)
    if hi <= lo:
        return None
    return [lo + (hi - lo) * i / (n - 1) for i in range(n)]


def mermaid_chart(key: str, curve: Curve, n: int = GRID_POINTS) -> list[str]:
    """A Mermaid xychart-beta block: base (grey) and this PR (red) interpolated onto a shared grid."""
    title, x_label, y_label = CHARTS[key]
    grid = chart_grid(curve, n)
    if grid is None:
        return [f"**{title}:** no curve to draw."]
    palette = ", ".join(c for c, s in ((BASE_COLOUR, curve.base), (PR_COLOUR, curve.pr)) if s)
    init = {"themeVariables": {"xyChart": {"plotColorPalette": palette}}}
    lines = [
        "```mermaid",
        f"%%{{init: {json.dumps(init)}}}%%",
        "xychart-beta",
        f'    title "{title}"',
        f'    x-axis "{x_label}" [{", ".join(f"{x:.2f}" for x in grid)}]',
        f'    y-axis "{y_label}" 0 --> 1',
    ]
    for name, points in (("base", curve.base), ("this PR", curve.pr)):
        if points:
            lines.append(f'    line "{name}" [{", ".join(f"{y:.4f}" for y in interpolate(points, grid))}]')
    lines.append("```")
    return lines


def _curve_lines(data: CommentData) -> list[str]:
    drawn = [key for key in CHARTS if key in data.curves]
    if not drawn:
        return []
    lines = ["", "### Curves", "", "Grey: base. Red: this PR.", ""]
    for key in drawn:
        lines += [*mermaid_chart(key, data.curves[key]), ""]
    return lines[:-1]


def render_markdown(
    data: CommentData,
    head_label: str,
    run_url: str | None = None,
    inline_plots: bool = False,
    artifact: str = "pr-report",
) -> str:
    """The comment. inline_plots: show the PNGs by relative path (report.md beside plots/), else point to the run.

    head_label and run_url come from the caller (the trusted job's own event), never from the data.
    """
    base = data.base.rev if data.base.sha.startswith(data.base.rev) else f"{data.base.rev} @ {data.base.sha[:8]}"
    lines = [MARKER, f"## flightdelay: {code(head_label)} against {code(base)}", ""]
    if data.pipeline_failed:
        lines += [
            "❌ **`dvc repro` failed in this run** (a failed gate stops it before `package`): the check fails, "
            "and the numbers below are those of the stages that ran. The run's log says why.",
            "",
        ]
    lines += gate_lines(data.gate)
    if data.uncommitted:
        files = ", ".join(code(f) for f in data.uncommitted)
        lines += [
            "",
            f"⚠️ `dvc repro` changed committed results ({files}): the numbers below are this run's; "
            "run `dvc repro` and commit `dvc.lock` and `reports/`.",
        ]

    lines += ["", "### Params", ""]
    if data.params:
        rows = [[_change_name(c), escape(format_param(c.base)), escape(format_param(c.pr))] for c in data.params]
        lines += _table(["param", "base", "this PR"], rows, "<>>")
    else:
        lines.append("No change.")

    lines += ["", "### Metrics", ""]
    if data.metrics:
        rows = [
            [_change_name(c), escape(format_metric(c.base)), escape(format_metric(c.pr)), format_delta(c.base, c.pr)]
            for c in data.metrics
        ]
        lines += _table(["metric", "base", "this PR", "change"], rows, "<>>>")
    else:
        lines.append("No change.")

    s = data.slices
    lines += ["", f"### Slices that moved most{f' ({code(s.metric)})' if s.metric else ''}", ""]
    if s.missing == "no_head":
        lines.append(f"No `{SLICES_FILE}` in this run.")
    elif s.missing == "no_base":
        lines.append(f"No `{SLICES_FILE}` at the base: nothing to compare.")
    elif s.missing == "no_metric":
        lines.append(f"No known metric in `{SLICES_FILE}`.")
    elif s.moves:
        rows = [
            [
                f"{code(m.dimension)} = {code(m.value)}",
                format_metric(m.rows),
                format_metric(m.base),
                format_metric(m.pr),
                format_delta(m.base, m.pr),
            ]
            for m in s.moves
        ]
        lines += _table(["slice", "rows", "base", "this PR", "change"], rows, "<>>>>")
    else:
        lines.append("No change.")

    lines += _curve_lines(data)

    lines += ["", "### Plots", ""]
    if not data.plots:
        lines.append("No plots.")
    elif inline_plots:
        for title in data.plots:
            lines += [f"**{escape(title)}**", "", f"![{escape(title)}]({plot_file(title)})", ""]
        lines.pop()
    else:
        names = ", ".join(escape(t) for t in data.plots)
        where = f"[this workflow run]({run_url})" if run_url else "this workflow run"
        lines.append(
            f"{names}: rendered offline as PNG, base against this PR, in the `{artifact}` artifact of {where}."
        )
    if run_url and (inline_plots or not data.plots):  # else the plots line links the run
        lines += ["", f"<sub>[workflow run]({run_url})</sub>"]
    return _cap("\n".join(lines) + "\n")


def _cap(text: str, limit: int = MAX_CHARS) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit("\n", 1)[0]
    return f"{cut}\n\n…the report was cut to fit in a comment.\n"


# --- the trusted entry point -----------------------------------------------------------------------------------

RUN_URL = re.compile(r"^https://[A-Za-z0-9.-]+(/[A-Za-z0-9_.~%-]+)*\Z")


def render_comment(report_dir: Path, out_dir: Path, head_sha: str, run_url: str | None = None) -> Path:
    """Validate the artifact in report_dir and write out_dir/comment.md and out_dir/pr-number.

    A pr.json that is unusable (or names another commit) is an error: nothing to post to. Comment data that
    fails validation gives the fixed FALLBACK comment, never any of its content.
    """
    report_dir, out_dir = Path(report_dir), Path(out_dir)
    if report_dir.is_symlink() or not report_dir.is_dir():
        raise ArtifactError(f"{report_dir}: not a folder (or a symlink); refused")
    if run_url is not None and not RUN_URL.match(run_url):
        raise ArtifactError("--run-url must be a plain https URL")
    pr = load_pr_info(report_dir / PR_FILE)
    if pr.head_sha != head_sha:
        raise ArtifactError(f"{PR_FILE}: names commit {pr.head_sha[:12]}, but the run was for {head_sha[:12]}")
    try:
        data = load_comment_data(report_dir / DATA_FILE)
    except ArtifactError as exc:
        log.warning("%s: the report data is refused, posting the fixed comment instead", exc)
        body = FALLBACK
    else:
        body = render_markdown(data, head_label=f"#{pr.number} @ {head_sha[:8]}", run_url=run_url)
    write_text(out_dir / "pr-number", f"{pr.number}\n")
    comment = out_dir / "comment.md"
    write_text(comment, body)
    log.info("wrote %s for PR #%d", comment, pr.number)
    return comment
