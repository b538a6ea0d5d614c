"""The pull-request comment's pure parts: diff rows, precision, slice ranking, plot selection (pr_collect) and the
markdown rendered from validated data (pr_render)."""

from __future__ import annotations

import logging

import pytest

from flightdelay.prcomment import collect as pc
from flightdelay.prcomment import render as pr
from flightdelay.prcomment.data import Change, validate_comment_data

SPEC = {"data": {"values": [{"x": 1}]}, "mark": "line"}
BASE = {"rev": "main", "sha": "1234abcd" * 5}


def data(**overrides):
    return validate_comment_data({"version": 1, "base": BASE, **overrides})


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.706958, "0.7070"),
        (-0.0123456, "-0.0123"),
        (31.2345, "31.23"),
        (12345.6, "12,346"),
        (5147, "5,147"),
        (None, "—"),
        (float("nan"), "—"),
        (True, "true"),
        ("pass", "pass"),
    ],
)
def test_format_metric(value, text):
    assert pr.format_metric(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.05, "0.05"), (0.050001, "0.050001"), (42, "42"), ("hgb", "hgb"), (None, "—"), ([1, 2], "[1, 2]")],
)
def test_format_param_is_exact(value, text):
    assert pr.format_param(value) == text


@pytest.mark.parametrize(
    ("old", "new", "text"),
    [
        (0.7, 0.71234, "+0.0123"),
        (0.5, 0.4, "-0.1000"),
        (30.0, 31.5, "+1.50"),
        (3, 5, "+2"),
        (None, 0.5, ""),
        ("a", "b", ""),
    ],
)
def test_format_delta(old, new, text):
    assert pr.format_delta(old, new) == text


def test_changes_keep_only_rows_that_move_at_the_shown_precision():
    diff = {
        "reports/metrics.json": {
            "roc_auc": {"old": 0.7, "new": 0.71234, "diff": 0.01234},
            "brier": {"old": 0.16, "new": 0.1600001, "diff": 1e-7},  # invisible at 4 decimals
            "baseline.roc_auc": {"old": 0.5, "new": 0.5, "diff": 0.0},
            "new_metric": {"old": None, "new": 0.3},
        }
    }
    rows = pc.changes(diff)
    assert rows == [Change(name="new_metric", base=None, pr=0.3), Change(name="roc_auc", base=0.7, pr=0.71234)]


def test_param_changes_are_exact_and_carry_their_file_when_several_files_changed():
    diff = {
        "params.yaml": {"train.lr": {"old": 0.05, "new": 0.050001}, "train.seed": {"old": 42, "new": 42}},
        "config/other.yaml": {"a": {"old": "x", "new": "y"}, "grid": {"old": [1, 2], "new": [1, 3]}},
    }
    rows = pc.changes(diff, formatter=pr.format_param)
    assert [(row.file, row.name) for row in rows] == [
        ("config/other.yaml", "a"),
        ("config/other.yaml", "grid"),
        ("params.yaml", "train.lr"),
    ]
    assert rows[1].pr == "[1, 3]"  # a list travels as its JSON text


def test_changes_of_an_empty_diff_is_empty():
    assert pc.changes({}) == []
    assert pc.changes({"params.yaml": {}}) == []


def test_a_key_the_schema_refuses_is_a_clear_error_in_the_pr_job():
    with pytest.raises(pc.ReportError, match=r"params.yaml: key 'a b' cannot be reported: name: String should match"):
        pc.changes({"params.yaml": {"a b": {"old": 1, "new": 2}}})


SLICES_BASE = {
    "carrier": {
        "AA": {"rows": 500, "roc_auc": 0.70},
        "B6": {"rows": 900, "roc_auc": 0.71},
        "UA": {"rows": 800, "roc_auc": 0.72},
        "9E": {"rows": 300, "roc_auc": 0.60},
    },
    "origin": {"EWR": {"rows": 1000, "roc_auc": 0.70}},
}
SLICES_HEAD = {
    "carrier": {
        "AA": {"rows": 500, "roc_auc": 0.75},  # +0.05
        "B6": {"rows": 900, "roc_auc": 0.71},  # unchanged
        "UA": {"rows": 800, "roc_auc": 0.70},  # -0.02
        "XX": {"rows": 250, "roc_auc": 0.99},  # new slice: nothing to compare
    },
    "origin": {"EWR": {"rows": 1000, "roc_auc": 0.71}},  # +0.01
}


def test_slice_moves_rank_by_absolute_change():
    moves = pc.slice_moves(SLICES_BASE, SLICES_HEAD, "roc_auc", top=5)
    assert [(m.dimension, m.value) for m in moves] == [("carrier", "AA"), ("carrier", "UA"), ("origin", "EWR")]
    assert moves[0].rows == 500
    assert moves[1].pr - moves[1].base == pytest.approx(-0.02)


def test_slice_moves_keep_the_top_n_and_nothing_when_nothing_moved():
    assert len(pc.slice_moves(SLICES_BASE, SLICES_HEAD, "roc_auc", top=1)) == 1
    assert pc.slice_moves(SLICES_BASE, SLICES_BASE, "roc_auc") == []


def test_pick_slice_metric():
    assert pc.pick_slice_metric(SLICES_HEAD) == "roc_auc"
    assert pc.pick_slice_metric({"carrier": {"AA": {"rows": 3, "rmse": 1.0, "mae": 2.0}}}) == "mae"
    assert pc.pick_slice_metric({"carrier": {"AA": {"rows": 3}}}) is None


def test_plot_specs_skip_empty_plots_and_filter_by_title(caplog):
    plots = {
        "data": {
            "ROC": [{"type": "vega", "revisions": ["workspace", "main"], "content": SPEC}],
            "Residuals": [],
            "Empty": [{"type": "vega", "content": {"data": {"values": []}}}],
            "Image": [{"type": "image", "url": "x.png"}],
        }
    }
    assert list(pc.plot_specs(plots)) == ["ROC"]
    with caplog.at_level(logging.WARNING, logger="flightdelay.prcomment.collect"):
        assert list(pc.plot_specs(plots, ["Residuals", "ROC"])) == ["ROC"]
    assert "Residuals" in caplog.text


def test_plot_file_is_a_slug():
    assert pr.plot_file("Precision-recall") == "plots/precision_recall.png"
    assert pr.plot_file("Feature importance") == "plots/feature_importance.png"
    assert pr.plot_file("???") == "plots/plot.png"


def test_curve_points_keep_finite_unit_pairs_and_thin_long_curves():
    rows = [{"fpr": i / 999, "tpr": (i / 999) ** 0.5} for i in range(1000)]
    rows += [{"fpr": float("nan"), "tpr": 0.5}, {"fpr": 2.0, "tpr": 0.5}, {"fpr": "0.1", "tpr": 0.5}, "junk"]
    points = pc.curve_points(rows, "fpr", "tpr", limit=50)
    assert len(points) == 50
    assert points[0] == [0.0, 0.0] and points[-1] == [1.0, 1.0]
    assert pc.curve_points([{"fpr": 0.1, "tpr": 0.2}], "fpr", "tpr") is None  # one point is no curve
    assert pc.curve_points({"not": "a list"}, "fpr", "tpr") is None


def test_gate_missing_says_no_gate():
    assert pr.gate_lines(None) == ["**Gate:** no gate (no `reports/gate.json` in this run)."]


GATE = {  # the shape the gate stage writes
    "decision": "fail",
    "failed": ["min_metrics.roc_auc"],
    "override": None,
    "rules": [
        {
            "rule": "min_metrics.roc_auc",
            "value": 0.61234,
            "comparison": ">=",
            "threshold": 0.65,
            "outcome": "fail",
            "note": "",
        },
        {
            "rule": "max_drifted_features",
            "value": 4,
            "comparison": "<=",
            "threshold": 6,
            "outcome": "pass",
            "note": "over threshold: temp, dewp",
        },
        {
            "rule": "max_drop_vs_promoted.roc_auc",
            "value": None,
            "comparison": "<=",
            "threshold": 0.01,
            "outcome": "skipped",
            "note": "no model is promoted to prod: nothing to compare",
        },
    ],
}


def gate_text(gate) -> str:
    return "\n".join(pr.gate_lines(data(gate=pc.normalise_gate(gate)).gate))


def test_gate_decision_and_rules():
    text = gate_text(GATE)
    assert text.startswith("**Gate:** ❌ **fail**")
    assert "| `min_metrics.roc_auc` | ❌ fail | 0.6123 >= 0.6500 |" in text
    assert "| `max_drifted_features` | ✅ pass | 4 <= 6; over threshold: temp, dewp |" in text
    assert "| `max_drop_vs_promoted.roc_auc` | ⏭️ skipped | — <= 0.0100; no model is promoted to prod: nothing" in text
    assert "✅ **pass**" in gate_text({"decision": "pass", "rules": []})


def test_gate_override_is_shown():
    override = {"approved_by": "ana", "reason": "known drift in March", "applied": True, "note": ""}
    text = gate_text({**GATE, "decision": "overridden", "override": override})
    assert text.startswith("**Gate:** ⚠️ **overridden**")
    assert "Override by ana (applied): known drift in March" in text


def test_failed_pipeline_is_said_first():
    text = pr.render_markdown(data(pipeline_failed=True, gate=pc.normalise_gate(GATE)), "workspace")
    lines = text.splitlines()
    assert lines[0] == pr.MARKER
    assert lines[1] == "## flightdelay: `workspace` against `main @ 1234abcd`"
    assert lines[3].startswith("❌ **`dvc repro` failed in this run**")
    assert "**Gate:** ❌ **fail**" in text
    assert "failed in this run" not in pr.render_markdown(data(), "workspace")


def test_markdown_of_a_change():
    report = data(
        params=[{"name": "train.seed", "base": 42, "pr": 7}],
        metrics=[{"name": "roc_auc", "base": 0.7, "pr": 0.71234}],
        slices={
            "metric": "roc_auc",
            "moves": [{"dimension": "carrier", "value": "AA", "rows": 500, "base": 0.7, "pr": 0.75}],
        },
        plots=["ROC"],
    )
    text = pr.render_markdown(report, "workspace", inline_plots=True)
    assert text.startswith(pr.MARKER + "\n")
    assert "| `train.seed` | 42 | 7 |" in text
    assert "| `roc_auc` | 0.7000 | 0.7123 | +0.0123 |" in text
    assert "### Slices that moved most (`roc_auc`)" in text
    assert "| `carrier` = `AA` | 500 | 0.7000 | 0.7500 | +0.0500 |" in text
    assert "![ROC](plots/roc.png)" in text
    assert "No change." not in text


def test_markdown_says_no_change_for_each_empty_section():
    text = pr.render_markdown(data(slices={"metric": "roc_auc"}), "workspace")
    assert text.count("No change.") == 3
    assert "no gate" in text
    assert "No plots." in text
    assert "### Curves" not in text  # no curve data: no chart section


@pytest.mark.parametrize(
    ("missing", "sentence"),
    [
        ("no_head", "No `reports/slices.json` in this run."),
        ("no_base", "No `reports/slices.json` at the base: nothing to compare."),
        ("no_metric", "No known metric in `reports/slices.json`."),
    ],
)
def test_why_slices_are_missing_is_a_fixed_sentence(missing, sentence):
    assert sentence in pr.render_markdown(data(slices={"missing": missing}), "workspace")


def test_comment_points_to_the_run_and_never_shows_images():
    report = data(plots=["ROC", "Calibration"])
    linked = pr.render_markdown(report, "#5 @ abcd1234", run_url="https://ci.example/run/1")
    assert "![" not in linked
    assert "ROC, Calibration: rendered offline as PNG" in linked
    assert "`pr-report` artifact of [this workflow run](https://ci.example/run/1)" in linked
    assert linked.count("https://ci.example/run/1") == 1
    footer = pr.render_markdown(data(), "workspace", run_url="https://ci.example/run/1")
    assert "<sub>[workflow run](https://ci.example/run/1)</sub>" in footer


def test_markdown_warns_about_results_that_were_not_committed():
    text = pr.render_markdown(data(uncommitted=["dvc.lock", "reports/metrics.json"]), "workspace")
    assert "⚠️" in text
    assert "`dvc.lock`, `reports/metrics.json`" in text


def test_long_tables_are_cut():
    params = [{"name": f"p{i:03d}", "base": i, "pr": i + 1} for i in range(pr.MAX_ROWS + 3)]
    text = pr.render_markdown(data(params=params), "workspace")
    assert "…and 3 more." in text
    assert "`p039`" in text and "`p040`" not in text


def test_interpolation_onto_a_grid():
    points = [[0.0, 0.0], [0.5, 0.8], [1.0, 1.0]]
    assert pr.interpolate(points, [0.0, 0.25, 0.5, 0.75, 1.0]) == pytest.approx([0.0, 0.4, 0.8, 0.9, 1.0])
    assert pr.interpolate([[0.2, 0.3], [0.4, 0.5]], [0.0, 1.0]) == [0.3, 0.5]  # constant outside the points
