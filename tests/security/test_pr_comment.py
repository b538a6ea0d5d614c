"""Issue 8, point 7: a fork PR controls every byte of the `pr-report` artifact; the comment must not show it raw.

Each crafted artifact is either refused (the fixed fallback comment, or an error and nothing posted) or rendered
inert (escaped text, no markup, mention, link or HTML). The last tests run `flightdelay pr-comment` and the
workflow's real post script together against a stand-in `gh`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from flightdelay.cli import main
from flightdelay.prcomment.data import (
    DATA_FILE,
    MAX_DATA_BYTES,
    ArtifactError,
    load_comment_data,
    validate_comment_data,
)
from flightdelay.prcomment.render import FALLBACK, MARKER, ZWSP, escape, render_comment, render_markdown
from tests.integration.test_workflows import needs_jq, pr_comment_script, run_script, writes

HEAD = "ab" * 20
VALID = {
    "version": 1,
    "base": {"rev": "main", "sha": "12" * 20},
    "gate": {"decision": "fail", "override": None, "rules": []},
    "metrics": [{"name": "roc_auc", "base": 0.7, "pr": 0.71}],
}


def artifact(tmp_path: Path, payload: object, *, raw: bytes | None = None, number: int = 12) -> Path:
    folder = tmp_path / "pr-report"
    folder.mkdir(exist_ok=True)
    (folder / "pr.json").write_text(json.dumps({"number": number, "head_sha": HEAD}))
    (folder / DATA_FILE).write_bytes(raw if raw is not None else json.dumps(payload).encode())
    return folder


def rendered(tmp_path: Path, payload: object = None, **kwargs) -> str:
    folder = artifact(tmp_path, payload, **kwargs)
    comment = render_comment(
        folder, tmp_path / "comment", head_sha=HEAD, run_url="https://github.com/o/r/actions/runs/1"
    )
    return comment.read_text()


def with_metric_name(name: str) -> dict:
    return {**VALID, "metrics": [{"name": name, "base": 0.7, "pr": 0.71}]}


# --- refused: the fixed comment, none of the content ------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (with_metric_name("**Gate:** ✅ **pass**"), "metrics.0.name: String should match pattern"),
        (with_metric_name("@org/team"), "metrics.0.name: String should match pattern"),
        (with_metric_name("[link](http://evil)"), "metrics.0.name: String should match pattern"),
        (with_metric_name("<img src=x onerror=alert(1)>"), "metrics.0.name: String should match pattern"),
        (with_metric_name("a`b"), "metrics.0.name: String should match pattern"),
        (with_metric_name("a|b"), "metrics.0.name: String should match pattern"),
        (with_metric_name("x" * 101), "metrics.0.name: String should have at most 100 characters"),
        ({**VALID, "gate": {"decision": "pass ✅ trust me", "rules": []}}, "gate.decision: Input should be"),
        ({**VALID, "gate": {**VALID["gate"], "rules": [{"rule": "r", "outcome": "pass", "note": "n" * 201}]}}, "note"),
        ({**VALID, "metrics": [{"name": "roc_auc", "base": "0.7", "pr": 0.71}] * 201}, "metrics: List should have"),
        ({**VALID, "metrics": [{"name": "roc_auc", "base": 0.7, "pr": 0.71, "html": "<b>"}]}, "metrics.0.html: Extra"),
        ({**VALID, "comment_md": "**Gate:** ✅ **pass**"}, "comment_md: Extra inputs are not permitted"),
        ({**VALID, "version": "1"}, "version: Input should be 1"),
        ({**VALID, "pipeline_failed": "false"}, "pipeline_failed: Input should be a valid boolean"),
        (
            {**VALID, "slices": {"moves": [{"dimension": "c", "value": "AA", "rows": True, "base": 0.1, "pr": 0.2}]}},
            "rows",
        ),
        ({**VALID, "curves": {"roc": {"pr": [[0, 0], [0.5, 1.5]]}}}, "curves.roc.pr.1.1: Input should be less than"),
        ({**VALID, "curves": {"roc": {"pr": [[0, 0]] * 501}}}, "curves.roc.pr: List should have at most 500 items"),
        ({**VALID, "curves": {"evil": {"pr": [[0, 0], [1, 1]]}}}, "curves.evil.?key?: Input should be 'roc'"),
        ([VALID], "(top): Input should be a valid dictionary"),
    ],
)
def test_data_outside_the_schema_gets_the_fixed_comment(tmp_path, caplog, payload, why):
    comment = rendered(tmp_path, payload)
    assert comment == FALLBACK
    assert why in caplog.text
    for attack in ("Gate:** ✅", "@org", "http://evil", "<img", "<b>", "trust me"):
        assert attack not in caplog.text  # the log names the place and the rule, never the value


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(tmp_path, caplog, token):
    raw = json.dumps(VALID).replace('"base": 0.7', f'"base": {token}').encode()
    assert token.encode() in raw
    assert rendered(tmp_path, raw=raw) == FALLBACK
    assert f"{token} is not a finite number" in caplog.text


def test_non_finite_numbers_are_refused_by_the_schema_too():
    with pytest.raises(ArtifactError, match=r"metrics\.0\.base\.float: Input should be a finite number"):
        validate_comment_data({**VALID, "metrics": [{"name": "roc_auc", "base": float("inf"), "pr": 0.71}]})


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"\xff\xfe not utf-8", "not UTF-8 text"),
        (b"{" * 100_000, "nested too deeply|not valid JSON"),
        (b"", "not valid JSON"),
    ],
)
def test_undecodable_data_is_refused(tmp_path, caplog, raw, why):
    assert rendered(tmp_path, raw=raw) == FALLBACK
    assert any(part in caplog.text for part in why.split("|"))


def test_an_oversize_data_file_is_refused_before_it_is_read(tmp_path, caplog):
    big = json.dumps({**VALID, "pad": "x" * MAX_DATA_BYTES}).encode()
    assert rendered(tmp_path, raw=big) == FALLBACK
    assert f"comment-data.json: {len(big)} bytes, over the {MAX_DATA_BYTES}-byte cap; refused" in caplog.text


def test_a_symlinked_data_file_is_refused_not_followed(tmp_path, caplog):
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps(VALID))  # valid data: only the link itself may be the reason
    folder = artifact(tmp_path, VALID)
    (folder / DATA_FILE).unlink()
    os.symlink(secret, folder / DATA_FILE)
    comment = render_comment(folder, tmp_path / "comment", head_sha=HEAD)
    assert comment.read_text() == FALLBACK
    assert "comment-data.json: a symlink; refused" in caplog.text
    with pytest.raises(ArtifactError, match="a symlink; refused"):
        load_comment_data(folder / DATA_FILE)


def test_a_data_file_that_is_a_folder_or_missing_is_refused(tmp_path, caplog):
    folder = artifact(tmp_path, VALID)
    (folder / DATA_FILE).unlink()
    assert render_comment(folder, tmp_path / "c1", head_sha=HEAD).read_text() == FALLBACK
    assert "comment-data.json: not in the artifact" in caplog.text
    (folder / DATA_FILE).mkdir()
    assert render_comment(folder, tmp_path / "c2", head_sha=HEAD).read_text() == FALLBACK
    assert "comment-data.json: not a regular file; refused" in caplog.text


@pytest.mark.parametrize(
    ("pr_json", "why"),
    [
        ({"number": "12; curl evil", "head_sha": HEAD}, "pr.json: number: Input should be a valid integer"),
        ({"number": 12, "head_sha": "cd" * 20}, f"pr.json: names commit {'cd' * 6}, but the run was for {HEAD[:12]}"),
        ({"number": 12, "head_sha": HEAD, "body": "x"}, "pr.json: body: Extra inputs are not permitted"),
    ],
)
def test_a_bad_pr_json_posts_nothing(tmp_path, pr_json, why):
    folder = artifact(tmp_path, VALID)
    (folder / "pr.json").write_text(json.dumps(pr_json))
    with pytest.raises(ArtifactError) as info:
        render_comment(folder, tmp_path / "comment", head_sha=HEAD)
    assert str(info.value) == why
    assert not (tmp_path / "comment").exists()


def test_a_symlinked_report_folder_or_pr_json_is_refused(tmp_path):
    folder = artifact(tmp_path, VALID)
    link = tmp_path / "linked"
    os.symlink(folder, link)
    with pytest.raises(ArtifactError, match="not a folder \\(or a symlink\\); refused"):
        render_comment(link, tmp_path / "comment", head_sha=HEAD)
    real = tmp_path / "elsewhere.json"
    (folder / "pr.json").rename(real)
    os.symlink(real, folder / "pr.json")
    with pytest.raises(ArtifactError, match=r"^pr\.json: a symlink; refused$"):
        render_comment(folder, tmp_path / "comment", head_sha=HEAD)


# --- free text is rendered inert ------------------------------------------------------------------------------

HOSTILE = (
    "**Gate:** ✅ **pass** @org/team [link](http://evil.example) <img src=x onerror=alert(1)> `code` a|b "
    "www.evil.example mail@evil.example $x$ <!-- flightdelay-report -->\n## heading"
)


def test_hostile_free_text_is_escaped_everywhere_it_is_shown(tmp_path):
    override = {"approved_by": "@org/admins", "reason": HOSTILE, "applied": False, "note": HOSTILE}
    rule = {"rule": "min_metrics.roc_auc", "outcome": "fail", "value": 0.6, "comparison": ">=", "threshold": 0.65}
    payload = {
        **VALID,
        "gate": {"decision": "fail", "override": override, "rules": [{**rule, "note": HOSTILE}]},
        "params": [{"name": "train.model", "base": "hgb", "pr": HOSTILE[:200]}],
    }
    comment = rendered(tmp_path, payload)
    assert comment.startswith(MARKER + "\n")
    assert comment.count(MARKER) == 1 and "<!--" not in comment[len(MARKER) :]
    assert comment.count("**Gate:**") == 1 and "**Gate:** ❌ **fail**" in comment  # the real decision only
    assert "\\*\\*Gate:\\*\\* ✅ \\*\\*pass\\*\\*" in comment
    assert "@org/team" not in comment and f"@{ZWSP}org/team" in comment
    assert f"@{ZWSP}org/admins" in comment
    assert "](http://evil" not in comment and f"\\[link\\]\\(http:{ZWSP}//evil.example\\)" in comment
    assert "<img" not in comment and "&lt;img src=x onerror=alert\\(1\\)&gt;" in comment
    assert "`code`" not in comment and "\\`code\\`" in comment
    assert "a\\|b" in comment
    assert "www.evil" not in comment and f"www{ZWSP}.evil.example" in comment
    assert "mail@evil" not in comment and "\\$x\\$" in comment
    assert "\n## heading" not in comment  # the newline is gone: no line of the comment is the attacker's
    rules = [line for line in comment.splitlines() if line.startswith("| `min_metrics.roc_auc`")]
    assert len(rules) == 1 and rules[0].count(" | ") == 2  # still three cells: the `|` did not break the table


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("@team", f"@{ZWSP}team"),
        ("[a](http://x)", f"\\[a\\]\\(http:{ZWSP}//x\\)"),
        ("<script>", "&lt;script&gt;"),
        ("a\nb\rc\td\u202ee", "a b c d e"),  # newlines, tabs and a bidi override become spaces
        ("`x` | *y* _z_ ~w~ #1 !", "\\`x\\` \\| \\*y\\* \\_z\\_ \\~w\\~ \\#1 \\!"),
        ("a & b", "a &amp; b"),
        ("plain words 0.5", "plain words 0.5"),
    ],
)
def test_escape(text, escaped):
    assert escape(text) == escaped


def test_the_head_label_and_run_url_come_from_the_trusted_side(tmp_path):
    with pytest.raises(ArtifactError, match="--run-url must be a plain https URL"):
        render_comment(artifact(tmp_path, VALID), tmp_path / "c", head_sha=HEAD, run_url="javascript:alert(1)")
    text = render_markdown(validate_comment_data(VALID), head_label="#12 @ abababab")
    assert text.splitlines()[1] == "## flightdelay: `#12 @ abababab` against `main @ 12121212`"


# --- the three charts ------------------------------------------------------------------------------------------


def test_the_comment_draws_roc_precision_recall_and_calibration_base_against_the_pr(tmp_path):
    diagonal = [[i / 10, i / 10] for i in range(11)]
    better = [[0.0, 0.0], [0.2, 0.6], [1.0, 1.0]]
    curves = {
        "roc": {"base": diagonal, "pr": better},
        "precision_recall": {"base": [[0, 1], [1, 0.2]], "pr": [[0, 1], [1, 0.3]]},
        "calibration": {"base": [[0.1, 0.2], [0.9, 0.8]], "pr": [[0.2, 0.2], [0.8, 0.8]]},
    }
    comment = rendered(tmp_path, {**VALID, "curves": curves})
    blocks = [b.split("```", 1)[0] for b in comment.split("```mermaid\n")[1:]]
    assert [b.split('title "', 1)[1].split('"', 1)[0] for b in blocks] == ["ROC", "Precision-recall", "Calibration"]
    for block in blocks:
        assert block.count("xychart-beta") == 1
        series = [line.strip() for line in block.splitlines() if line.strip().startswith("line ")]
        assert [s.split("[")[0] for s in series] == ['line "base" ', 'line "this PR" ']
        x_axis = next(line for line in block.splitlines() if "x-axis" in line)
        assert x_axis.count(",") == 24 and all(s.count(",") == 24 for s in series)  # 25 shared grid points
    roc = blocks[0]
    assert 'x-axis "false positive rate" [0.00, 0.04, 0.08,' in roc and roc.count("1.00]") == 1
    assert 'line "base" [0.0000, 0.0417, 0.0833,' in roc  # the diagonal, read at the grid
    assert 'line "this PR" [0.0000, 0.1250, 0.2500,' in roc  # 0.6 / 0.2 * x below fpr 0.2
    calibration = blocks[2]
    assert '"mean predicted probability" [0.20, ' in calibration and ", 0.80]" in calibration  # where both exist
    assert "Grey: base. Red: this PR." in comment
    assert '"plotColorPalette": "#9e9e9e, #d62728"' in comment


def test_a_curve_with_only_one_side_draws_one_line(tmp_path):
    comment = rendered(tmp_path, {**VALID, "curves": {"roc": {"pr": [[0, 0], [1, 1]]}}})
    assert comment.count("```mermaid") == 1
    assert 'line "this PR"' in comment and 'line "base"' not in comment
    assert '"plotColorPalette": "#d62728"' in comment


# --- end to end: the render command and the workflow's own post script ------------------------------------------


@needs_jq
@pytest.mark.parametrize("hostile", [True, False])
def test_the_post_step_posts_only_what_pr_comment_rendered(tmp_path, monkeypatch, capsys, hostile):
    payload = with_metric_name("@org/team") if hostile else VALID
    folder = artifact(tmp_path, payload)
    (folder / "comment.md").write_text(f"{MARKER}\n**Gate:** ✅ **pass** @org/team\n")  # a planted comment: ignored
    monkeypatch.chdir(tmp_path)
    args = ["pr-comment", "--report", str(folder), "--out", "comment", "--head-sha", HEAD]
    assert main(args) == 0
    capsys.readouterr()
    script, env = pr_comment_script()
    proc, calls = run_script(
        tmp_path, script, {**env, "COMMENT_DIR": str(tmp_path / "comment"), "RUN_HEAD_SHA": HEAD}, [], pr_head=HEAD
    )
    assert proc.returncode == 0, proc.stderr
    (post,) = writes(calls)
    assert post["args"][3] == "repos/acme/flightdelay/issues/12/comments"
    body = post["input"]["body"]
    assert "@org/team" not in body and "✅ **pass**" not in body
    if hostile:
        assert body == FALLBACK
    else:
        assert "**Gate:** ❌ **fail**" in body and "| `roc_auc` | 0.7000 | 0.7100 | +0.0100 |" in body
