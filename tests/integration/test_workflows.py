"""The GitHub Actions workflows, checked offline: schema, actionlint + shellcheck, and the security structure.

There is no GitHub here, so the workflows are checked three ways: the JSON schema of workflow files, actionlint
(with shellcheck on every `run:` script), and structural rules read with PyYAML (triggers, least-privilege
permissions, fork safety, trusted-only pushes, no `${{ }}` expression inside a script). The comment-posting
scripts are run for real with bash against a stand-in `gh` that records the API calls.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.default_params import load_yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))
BIN = Path(sys.executable).parent

TRUSTED = (
    "(github.event_name == 'push' && github.ref == 'refs/heads/main') "
    "|| github.event.pull_request.head.repo.full_name == github.repository"
)


def load(name: str) -> dict:
    workflow = load_yaml((WORKFLOWS / name).read_text())
    if True in workflow:  # YAML 1.1 reads the key `on` as a boolean
        workflow["on"] = workflow.pop(True)
    return workflow


def steps(workflow: dict):
    for job_id, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, step


def step_named(workflow: dict, name: str) -> dict:
    found = [step for _, step in steps(workflow) if step.get("name") == name]
    assert len(found) == 1, f"expected one step named {name!r}"
    return found[0]


def test_the_four_workflows_exist():
    assert {f.name for f in FILES} == {"pipeline.yml", "pr-comment.yml", "experiments.yml", "python-versions.yml"}


# --- linters ---------------------------------------------------------------------------------------------------


def test_workflows_match_the_github_workflow_schema():
    proc = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, FILES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok -- validation done" in proc.stdout


def actionlint(*files: Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "actionlint"), "-oneline", "-shellcheck", str(BIN / "shellcheck"), *map(str, files)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


def test_actionlint_with_shellcheck_finds_nothing():
    proc = actionlint(*FILES)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_really_runs_shellcheck(tmp_path):
    """Guards the test above: an unquoted variable must be reported, so shellcheck is wired in."""
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo $FOO\n")
    proc = actionlint(bad, cwd=tmp_path)
    assert proc.returncode == 1
    assert "SC2086" in proc.stdout


# --- structure -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_permissions_are_declared_and_least_privilege(path):
    workflow = load(path.name)
    assert workflow.get("permissions") in ({}, {"contents": "read"}), "top-level permissions must be (almost) none"
    for job_id, job in workflow["jobs"].items():
        perms = job.get("permissions")
        assert isinstance(perms, dict), f"{path.name}:{job_id} declares no permissions"
        assert set(perms.values()) <= {"read", "write", "none"}, perms
        writes = {scope for scope, level in perms.items() if level == "write"}
        assert writes <= {"pull-requests"}, f"{path.name}:{job_id} writes {writes}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_expression_is_interpolated_into_a_script(path):
    """Untrusted text (branch names, titles, inputs) reaches scripts only through env, never via ${{ }}."""
    for job_id, step in steps(load(path.name)):
        script = step.get("run", "")
        assert "${{" not in script, f"{path.name}:{job_id}:{step.get('name')} interpolates into its script"


USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?P<rest>.*)$")
PINNED = re.compile(r"^(?P<action>[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+)@(?P<sha>[0-9a-f]{40})$")
TAG_COMMENT = re.compile(r"^\s+# (?P<tag>v\d+(?:\.\d+){0,2})$")


def pinned_uses(path: Path) -> list[tuple[str, str, str]]:
    """(action, sha, tag) of every `uses:` line; fails on one that is not a 40-hex SHA with a `# vX.Y.Z` comment."""
    found = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        match = USES.match(line)
        if not match or match["ref"].startswith("./"):  # a local action is this repository's own code
            continue
        pin, tag = PINNED.match(match["ref"]), TAG_COMMENT.match(match["rest"])
        assert pin, f"{path.name}:{number}: {match['ref']} is not pinned to a full commit SHA"
        assert tag, f"{path.name}:{number}: {match['ref']} has no `# vX.Y.Z` tag comment"
        found.append((pin["action"], pin["sha"], tag["tag"]))
    return found


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit_sha_with_its_tag(path):
    pins = pinned_uses(path)
    used = [step["uses"] for _, step in steps(load(path.name)) if "uses" in step]
    assert used and len(pins) == len(used)  # every `uses:` the YAML holds was checked as a line
    assert [f"{action}@{sha}" for action, sha, _ in pins] == used


def test_an_action_has_one_pin_across_the_workflows():
    seen: dict[str, set[tuple[str, str]]] = {}
    for path in FILES:
        for action, sha, tag in pinned_uses(path):
            seen.setdefault(action, set()).add((sha, tag))
    assert seen and all(len(pins) == 1 for pins in seen.values()), seen


@pytest.mark.parametrize(
    "line",
    [
        "      - uses: actions/checkout@v5",
        "      - uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8",
        "      - uses: actions/checkout@08c6903 # v5.0.0",
        "        uses: someone/action@main # v1",
    ],
)
def test_the_pin_check_refuses_tags_branches_short_shas_and_missing_comments(tmp_path, line):
    bad = tmp_path / "bad.yml"
    bad.write_text(f"on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n{line}\n")
    with pytest.raises(AssertionError):
        pinned_uses(bad)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_pull_request_target(path):
    assert "pull_request_target" not in load(path.name)["on"]


def test_pr_pipeline_triggers_on_pipeline_changes_and_pushes_to_main():
    on = load("pipeline.yml")["on"]
    assert set(on) == {"pull_request", "push"}
    assert on["push"]["branches"] == ["main"]
    for trigger in ("pull_request", "push"):
        paths = on[trigger]["paths"]
        for needed in (
            "src/**",
            "params.yaml",
            "dvc.yaml",
            "dvc.lock",
            "requirements-uv.lock",
            "requirements.lock",
            "pyproject.toml",
        ):
            assert needed in paths, (trigger, needed)


def test_pr_pipeline_job_is_read_only_and_installs_from_the_lock():
    workflow = load("pipeline.yml")
    assert workflow["permissions"] == {"contents": "read"}
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"contents": "read"}
    assert "secrets." not in json.dumps(workflow.get("env", {})) + json.dumps(job.get("env", {}))
    install = step_named(workflow, "Install from the lock file")["run"]
    assert install.startswith("make venv\n")
    assert '"${GITHUB_WORKSPACE}/.venv/bin" >> "${GITHUB_PATH}"' in install  # stages call `python`
    checkout = next(step for step in job["steps"] if step.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["persist-credentials"] is False  # PR code must not find the token in .git/config
    assert checkout["with"]["fetch-depth"] == 0  # the base revision for the comparison


def test_secrets_and_the_push_reach_trusted_code_only():
    workflow = load("pipeline.yml")
    pushes = 0
    for _, step in steps(workflow):
        text = json.dumps(step)
        if "secrets." in text or "dvc push" in step.get("run", ""):
            gate = step.get("if", "")
            # Exactly the trusted condition, or it AND something more: never something that widens it.
            assert gate == TRUSTED or gate.startswith(f"({TRUSTED}) && "), f"{step.get('name')!r} is not gated"
            assert gate.count("||") == TRUSTED.count("||"), gate
        pushes += "dvc push --run-cache" in step.get("run", "")
    assert pushes == 1
    push = next(step for _, step in steps(workflow) if "dvc push" in step.get("run", ""))
    assert push["if"] == f"({TRUSTED}) && steps.repro.outcome == 'success'"  # only results of a whole run


def test_a_failed_pipeline_still_reports_and_then_fails_the_job():
    """A failed gate stops `dvc repro` on purpose; the PR must still get the comment saying so."""
    workflow = load("pipeline.yml")
    for name in ("Reproduce, restoring unchanged stages from the remote", "Reproduce without the remote (fork PR)"):
        assert step_named(workflow, name)["continue-on-error"] is True
    build = step_named(workflow, "Build the report")
    assert build["if"] == "${{ !cancelled() }}"
    assert "--pipeline-failed" in build["run"]
    assert build["env"]["REPRO_OUTCOME"] == "${{ steps.repro.outcome }}"
    upload = step_named(workflow, "Upload the report data (the comment job renders and posts the comment)")
    assert upload["if"] == "${{ !cancelled() }}"
    last = workflow["jobs"]["pipeline"]["steps"][-1]
    assert last["if"] == "steps.repro.outcome == 'failure' || steps.repro_fork.outcome == 'failure'"
    assert "exit 1" in last["run"]
    comment_job = load("pr-comment.yml")["jobs"]["comment"]
    assert "github.event.workflow_run.conclusion == 'failure'" in comment_job["if"]
    assert step_named(load("pr-comment.yml"), "Post or update the comment")["if"] == (
        "steps.download.outcome == 'success'"
    )


def test_fork_prs_still_run_the_pipeline():
    workflow = load("pipeline.yml")
    fork = step_named(workflow, "Reproduce without the remote (fork PR)")
    assert fork["if"] == "${{ !(" + TRUSTED + ") }}"
    assert fork["run"].strip() == "dvc repro"
    assert "secrets." not in json.dumps(fork)
    trusted = step_named(workflow, "Reproduce, restoring unchanged stages from the remote")
    assert "dvc repro --pull" in trusted["run"]
    assert "  dvc repro\n" in trusted["run"]  # and without credentials it runs without the remote


def test_pr_pipeline_builds_the_comment_and_uploads_it():
    workflow = load("pipeline.yml")
    build = step_named(workflow, "Build the report")
    assert "flightdelay pr-report --base" in build["run"]
    assert build["env"]["BASE_SHA"] == "${{ github.event.pull_request.base.sha || github.event.before }}"
    assert "pr-report/pr.json" in build["run"]
    assert "comment-preview.md" in build["run"]  # the run summary only; nothing the PR job writes is posted
    upload = next(step for _, step in steps(workflow) if step.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["with"]["name"] == "pr-report"


def test_comment_workflow_is_trusted_and_runs_only_the_default_branchs_code():
    workflow = load("pr-comment.yml")
    assert workflow["on"] == {"workflow_run": {"workflows": [load("pipeline.yml")["name"]], "types": ["completed"]}}
    assert workflow["permissions"] == {}
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"actions": "read", "contents": "read", "pull-requests": "write"}
    assert "github.event.workflow_run.event == 'pull_request'" in job["if"]
    (checkout,) = [step for step in job["steps"] if step.get("uses", "").startswith("actions/checkout@")]
    assert checkout["with"] == {"ref": "${{ github.event.repository.default_branch }}", "persist-credentials": False}
    text = json.dumps(workflow)
    for pr_side in ("head_branch", "head_repository", "pull_requests", "github.head_ref"):
        assert pr_side not in text, f"the comment job refers to the PR's {pr_side}"
    names = [step.get("name", "") for step in job["steps"]]
    download_at = next(i for i, step in enumerate(job["steps"]) if "download-artifact@" in step.get("uses", ""))
    assert names.index(checkout["name"]) < download_at  # a checkout after the download could clean it away
    download = job["steps"][download_at]
    assert download["with"]["name"] == "pr-report"
    assert download["with"]["run-id"] == "${{ github.event.workflow_run.id }}"
    assert download["with"]["path"].startswith("${{ runner.temp }}/")  # outside the checked-out code
    render = step_named(workflow, "Validate the data and render the comment")
    assert render["run"].startswith(".venv/bin/flightdelay pr-comment --report")
    assert render["env"]["RUN_HEAD_SHA"] == "${{ github.event.workflow_run.head_sha }}"
    post = step_named(workflow, "Post or update the comment")
    assert "${COMMENT_DIR}/comment.md" in post["run"] and post["env"]["COMMENT_DIR"] == render["env"]["COMMENT_DIR"]
    assert "REPORT_DIR" not in json.dumps(post)  # the artifact's own files are never posted


def test_experiment_workflow_queues_a_grid_and_publishes_the_table():
    workflow = load("experiments.yml")
    assert set(workflow["on"]) == {"schedule", "workflow_dispatch"}
    scripts = "\n".join(step.get("run", "") for _, step in steps(workflow))
    for command in ("dvc exp run --queue", "dvc queue start", "dvc queue status", "dvc exp show --md"):
        assert command in scripts, command
    assert workflow["jobs"]["grid"]["permissions"] == {"contents": "read"}
    assert workflow["jobs"]["comment"]["permissions"] == {"pull-requests": "write"}
    assert "checkout" not in json.dumps(workflow["jobs"]["comment"])
    push = next(step for _, step in steps(workflow) if "dvc push" in step.get("run", ""))
    assert push["if"] == "github.ref == 'refs/heads/main'"


def lock_python() -> str:
    """The lock's reference interpreter, as the Makefile's `make lock` resolves for it."""
    return re.search(r"^LOCK_PYTHON := (\S+)$", (REPO / "Makefile").read_text(), re.M).group(1)


def test_pipelines_run_on_the_locks_reference_python():
    assert lock_python() == "3.11"
    for name in ("pipeline.yml", "experiments.yml"):
        (setup,) = [step for _, step in steps(load(name)) if step.get("uses", "").startswith("actions/setup-python@")]
        assert setup["with"]["python-version"] == lock_python(), name


def test_fast_tests_run_on_every_supported_python():
    workflow = load("python-versions.yml")
    (job,) = workflow["jobs"].values()
    supported = re.search(r"^SUPPORTED\s*:= (.+)$", (REPO / "Makefile").read_text(), re.M).group(1).split()
    assert job["strategy"]["matrix"]["python"] == supported == ["3.11", "3.12", "3.13"]
    assert job["permissions"] == {"contents": "read"}
    assert "secrets." not in json.dumps(workflow)
    setup = step_named(workflow, "Set up Python")
    assert setup["with"]["python-version"] == "${{ matrix.python }}"
    test = step_named(workflow, "Unit and data tests")
    assert test["run"].strip() == "make test-fast"
    assert test["env"]["PYTHON"] == "${{ steps.python.outputs.python-path }}"  # the matrix's, not the first found
    on = workflow["on"]
    for needed in (
        "src/**",
        "tests/**",
        "requirements-uv.lock",
        "requirements.lock",
        "requirements-dev.lock",
        "Makefile",
    ):
        assert needed in on["pull_request"]["paths"], needed


# --- the comment scripts, run against a stand-in gh ------------------------------------------------------------

FAKE_GH = """#!{python}
import json, os, subprocess, sys
args = sys.argv[1:]
with open(os.environ["GH_LOG"], "a") as log:
    entry = {{"args": args}}
    if "--input" in args:
        with open(args[args.index("--input") + 1]) as fh:
            entry["input"] = json.load(fh)
    log.write(json.dumps(entry) + "\\n")
path = next(a for a in args if a.startswith("repos/"))
jq = args[args.index("--jq") + 1] if "--jq" in args else "."
if path.endswith("/comments") and "--method" not in args:
    data = os.environ["FAKE_COMMENTS"]
elif "/pulls/" in path:
    data = json.dumps({{"head": {{"sha": os.environ["FAKE_PR_HEAD"]}}}})
else:
    data = "{{}}"
out = subprocess.run(["jq", "-r", jq], input=data, capture_output=True, text=True, check=True).stdout
sys.stdout.write(out)
"""

BOT = "github-actions[bot]"
MARKER = "<!-- flightdelay-report -->"


def run_script(tmp_path: Path, script: str, env: dict[str, str], comments: list[dict], pr_head: str = "abc123"):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir(exist_ok=True)
    gh = fake_bin / "gh"
    gh.write_text(FAKE_GH.format(python=sys.executable))
    gh.chmod(0o755)
    log = tmp_path / "gh.log"
    log.write_text("")
    (tmp_path / "script.sh").write_text(script)
    full_env = {
        "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}",
        "GH_LOG": str(log),
        "FAKE_COMMENTS": json.dumps(comments),
        "FAKE_PR_HEAD": pr_head,
        "GH_TOKEN": "fake",
        "REPO": "acme/flightdelay",
        **env,
    }
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "script.sh"],
        cwd=tmp_path,
        env=full_env,
        capture_output=True,
        text=True,
        check=False,
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    return proc, calls


def pr_comment_script() -> tuple[str, dict[str, str]]:
    step = step_named(load("pr-comment.yml"), "Post or update the comment")
    env = {k: v for k, v in step["env"].items() if "${{" not in v}
    return step["run"], env


needs_jq = pytest.mark.skipif(shutil.which("jq") is None, reason="jq is on GitHub's runners but not on this machine")


def write_rendered(tmp_path: Path, number, body: str) -> dict[str, str]:
    """What `flightdelay pr-comment` leaves for the post step; returns the env that points the step at it."""
    (tmp_path / "comment").mkdir(exist_ok=True)
    (tmp_path / "comment" / "pr-number").write_text(f"{number}\n")
    (tmp_path / "comment" / "comment.md").write_text(body)
    return {"COMMENT_DIR": str(tmp_path / "comment")}


def writes(calls: list[dict]) -> list[dict]:
    return [call for call in calls if "--method" in call["args"]]


@needs_jq
def test_first_report_posts_a_new_comment(tmp_path):
    script, env = pr_comment_script()
    where = write_rendered(tmp_path, 12, f"{MARKER}\n## flightdelay\nbody\n")
    proc, calls = run_script(tmp_path, script, {**env, **where, "RUN_HEAD_SHA": "abc123"}, comments=[])
    assert proc.returncode == 0, proc.stderr
    (post,) = writes(calls)
    assert post["args"][:4] == ["api", "--method", "POST", "repos/acme/flightdelay/issues/12/comments"]
    assert post["input"]["body"] == f"{MARKER}\n## flightdelay\nbody\n"  # the marker once, first


@needs_jq
def test_later_reports_update_the_bots_comment_in_place(tmp_path):
    script, env = pr_comment_script()
    where = write_rendered(tmp_path, 12, "## flightdelay\nnew numbers\n")  # no marker: it is added
    comments = [
        {"id": 111, "user": {"login": "alice"}, "body": "looks good"},
        {"id": 444, "user": {"login": "mallory"}, "body": f"{MARKER}\nfake"},  # not ours: never edited
        {"id": 555, "user": {"login": BOT}, "body": f"{MARKER}\nold numbers"},
    ]
    proc, calls = run_script(tmp_path, script, {**env, **where, "RUN_HEAD_SHA": "abc123"}, comments)
    assert proc.returncode == 0, proc.stderr
    (patch,) = writes(calls)
    assert patch["args"][:4] == ["api", "--method", "PATCH", "repos/acme/flightdelay/issues/comments/555"]
    assert patch["input"]["body"] == f"{MARKER}\n## flightdelay\nnew numbers\n"
    assert "Updated comment 555 on PR #12" in proc.stdout


@needs_jq
def test_a_report_for_an_older_commit_is_not_posted(tmp_path):
    script, env = pr_comment_script()
    where = write_rendered(tmp_path, 12, "body\n")
    proc, calls = run_script(tmp_path, script, {**env, **where, "RUN_HEAD_SHA": "abc123"}, [], pr_head="def456")
    assert proc.returncode == 0
    assert writes(calls) == []
    assert "not posted" in proc.stdout


@needs_jq
@pytest.mark.parametrize("number", ["12; curl evil", "abc", 0, None, "$(touch pwned)"])
def test_a_pr_number_that_is_not_a_number_stops_the_job(tmp_path, number):
    script, env = pr_comment_script()
    where = write_rendered(tmp_path, number, "body\n")
    proc, calls = run_script(tmp_path, script, {**env, **where, "RUN_HEAD_SHA": "abc123"}, [])
    assert proc.returncode == 1
    assert calls == []
    assert "no valid PR number" in proc.stdout


@needs_jq
def test_experiment_table_comment_is_updated_in_place(tmp_path):
    step = step_named(load("experiments.yml"), "Post or update the comment")
    env = {k: v for k, v in step["env"].items() if "${{" not in v}
    (tmp_path / "exp-report").mkdir()
    (tmp_path / "exp-report" / "comment.md").write_text(f"{env['MARKER']}\n| Experiment | roc_auc |\n")
    comments = [{"id": 9, "user": {"login": BOT}, "body": f"{env['MARKER']}\nold"}]
    proc, calls = run_script(tmp_path, step["run"], {**env, "PR": "7"}, comments)
    assert proc.returncode == 0, proc.stderr
    (patch,) = writes(calls)
    assert patch["args"][3] == "repos/acme/flightdelay/issues/comments/9"
    assert "| Experiment | roc_auc |" in patch["input"]["body"]
    proc, calls = run_script(tmp_path, step["run"], {**env, "PR": "7 && true"}, comments)
    assert proc.returncode == 1
    assert calls == []
