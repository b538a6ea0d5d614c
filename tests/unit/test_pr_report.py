"""flightdelay.pr_report: the pure parts (diff rows, precision, slice ranking, plot selection, markdown)."""

from __future__ import annotations

import logging

import pytest

from flightdelay import pr_report as pr
from flightdelay.pr_report import Change, Plot, Report, SliceMove

SPEC = {"data": {"values": [{"x": 1}]}, "mark": "line"}


def empty_report(**overrides) -> Report:
    fields = {"base": "main @ 1234abcd", "head": "workspace", "gate": None, "params": [], "metrics": []}
    return Report(**{**fields, **overrides})


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
    rows = pr.changes(diff)
    assert rows == [Change("new_metric", None, 0.3), Change("roc_auc", 0.7, 0.71234)]


def test_param_changes_are_exact_and_file_prefixed_when_several_files_changed():
    diff = {
        "params.yaml": {"train.lr": {"old": 0.05, "new": 0.050001}, "train.seed": {"old": 42, "new": 42}},
        "other.yaml": {"a": {"old": "x", "new": "y"}},
    }
    rows = pr.changes(diff, formatter=pr.format_param)
    assert [row.name for row in rows] == ["other.yaml:a", "params.yaml:train.lr"]


def test_changes_of_an_empty_diff_is_empty():
    assert pr.changes({}) == []
    assert pr.changes({"params.yaml": {}}) == []


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
    moves = pr.slice_moves(SLICES_BASE, SLICES_HEAD, "roc_auc", top=5)
    assert [(m.dimension, m.value) for m in moves] == [("carrier", "AA"), ("carrier", "UA"), ("origin", "EWR")]
    assert moves[0].rows == 500
    assert moves[1].delta == pytest.approx(-0.02)


def test_slice_moves_keep_the_top_n_and_nothing_when_nothing_moved():
    assert len(pr.slice_moves(SLICES_BASE, SLICES_HEAD, "roc_auc", top=1)) == 1
    assert pr.slice_moves(SLICES_BASE, SLICES_BASE, "roc_auc") == []


def test_pick_slice_metric():
    assert pr.pick_slice_metric(SLICES_HEAD) == "roc_auc"
    assert pr.pick_slice_metric({"carrier": {"AA": {"rows": 3, "rmse": 1.0, "mae": 2.0}}}) == "mae"
    assert pr.pick_slice_metric({"carrier": {"AA": {"rows": 3}}}) is None


def test_plot_specs_skip_empty_plots_and_filter_by_title(caplog):
    plots = {
        "data": {
            "ROC": [{"type": "vega", "revisions": ["workspace", "main"], "content": SPEC}],
            "Residuals": [],
            "Empty": [{"type": "vega", "content": {"data": {"values": []}}}],
            "Image": [{"type": "image", "url": "x.png"}],
        }
    }
    assert list(pr.plot_specs(plots)) == ["ROC"]
    with caplog.at_level(logging.WARNING, logger="flightdelay.pr_report"):
        assert list(pr.plot_specs(plots, ["Residuals", "ROC"])) == ["ROC"]
    assert "Residuals" in caplog.text


def test_plot_file_is_a_slug():
    assert pr.plot_file("Precision-recall") == "plots/precision_recall.png"
    assert pr.plot_file("Feature importance") == "plots/feature_importance.png"
    assert pr.plot_file("???") == "plots/plot.png"


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


def test_gate_decision_and_rules():
    text = "\n".join(pr.gate_lines(GATE))
    assert text.startswith("**Gate:** ❌ **fail**")
    assert "| min_metrics.roc_auc | ❌ fail | 0.6123 >= 0.6500 |" in text
    assert "| max_drifted_features | ✅ pass | 4 <= 6; over threshold: temp, dewp |" in text
    assert "| max_drop_vs_promoted.roc_auc | ⏭️ skipped | — <= 0.0100; no model is promoted to prod: nothing" in text
    assert "✅ **pass**" in "\n".join(pr.gate_lines({"decision": "pass", "rules": []}))


def test_gate_override_is_shown():
    override = {"approved_by": "ana", "reason": "known drift in March", "applied": True, "note": ""}
    text = "\n".join(pr.gate_lines({**GATE, "decision": "overridden", "override": override}))
    assert text.startswith("**Gate:** ⚠️ **overridden**")
    assert "Override by ana (applied): known drift in March" in text


def test_gate_rules_of_other_shapes():
    rules = [
        {"name": "roc_auc_min", "passed": False, "message": "roc_auc 0.61 < 0.65"},
        {"check": "beats_baseline", "status": "pass", "margin": 0.2},
        "free text rule",
    ]
    text = "\n".join(pr.gate_lines({"decision": "pass", "rules": rules}))
    assert "| roc_auc_min | ❌ fail | roc_auc 0.61 < 0.65 |" in text
    assert "| beats_baseline | ✅ pass | margin=0.2000 |" in text
    assert "| free text rule |  |  |" in text


def test_failed_pipeline_is_said_first():
    text = pr.render_markdown(empty_report(pipeline_failed=True, gate=GATE))
    lines = text.splitlines()
    assert lines[0] == pr.MARKER
    assert lines[3].startswith("❌ **`dvc repro` failed in this run**")
    assert "**Gate:** ❌ **fail**" in text
    assert "failed in this run" not in pr.render_markdown(empty_report())


def test_markdown_of_a_change():
    report = empty_report(
        params=[Change("train.seed", 42, 7)],
        metrics=[Change("roc_auc", 0.7, 0.71234)],
        slice_metric="roc_auc",
        slices=[SliceMove("carrier", "AA", 500, 0.70, 0.75)],
        plots=[Plot("ROC", "plots/roc.png")],
    )
    text = pr.render_markdown(report, image_base="")
    assert text.startswith(pr.MARKER + "\n")
    assert "| `train.seed` | 42 | 7 |" in text
    assert "| `roc_auc` | 0.7000 | 0.7123 | +0.0123 |" in text
    assert "### Slices that moved most (roc_auc)" in text
    assert "| carrier = AA | 500 | 0.7000 | 0.7500 | +0.0500 |" in text
    assert "![ROC](plots/roc.png)" in text
    assert "No change." not in text


def test_markdown_says_no_change_for_each_empty_section():
    text = pr.render_markdown(empty_report(slice_metric="roc_auc"), image_base="")
    assert text.count("No change.") == 3
    assert "no gate" in text
    assert "No plots." in text


def test_comment_points_to_the_artifact_unless_an_image_host_is_given():
    report = empty_report(plots=[Plot("ROC", "plots/roc.png"), Plot("Calibration", "plots/calibration.png")])
    linked = pr.render_markdown(
        empty_report(plots=report.plots, run_url="https://ci.example/run/1"), image_base=None, artifact="pr-report"
    )
    assert "![" not in linked
    assert "ROC, Calibration" in linked
    assert "`pr-report` artifact of [this workflow run](https://ci.example/run/1)" in linked
    hosted = pr.render_markdown(report, image_base="https://img.example/pr/5/")
    assert "![ROC](https://img.example/pr/5/plots/roc.png)" in hosted
    assert linked.count("https://ci.example/run/1") == 1
    footer = pr.render_markdown(empty_report(run_url="https://ci.example/run/1"), image_base=None)
    assert "<sub>[workflow run](https://ci.example/run/1)</sub>" in footer


def test_markdown_warns_about_results_that_were_not_committed():
    text = pr.render_markdown(empty_report(uncommitted=["dvc.lock", "reports/metrics.json"]))
    assert "⚠️" in text
    assert "`dvc.lock`, `reports/metrics.json`" in text


def test_long_tables_are_cut_and_cells_escaped():
    params = [Change(f"p{i:03d}", i, i + 1) for i in range(pr.MAX_ROWS + 3)]
    text = pr.render_markdown(empty_report(params=params, metrics=[Change("a|b", 1, 2)]))
    assert "…and 3 more." in text
    assert "`p039`" in text and "`p040`" not in text
    assert "`a\\|b`" in text
