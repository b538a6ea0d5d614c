"""Promotion, history and rollback on a temporary git repository (GTO tags, registry/<stage>.json commits).

Each version is a commit holding a small real package (models/package/model-<hash>/, git-ignored as in the
project) and its reports/package.json pointer. GTO and DVC order a stage's tags by their time, which has
one-second resolution, so promotions here are a second apart, as a human's are (the tests that need several
are marked slow).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from flightdelay.cli import main
from flightdelay.release import record, registry
from flightdelay.release.package_format import MODEL_FILE, write_package
from flightdelay.release.registry import RegistryError
from flightdelay.stages.package import pointer
from tests.default_params import default_params, write_params
from tests.unit.test_packaging import manifest_for, tiny_model_bytes, tiny_state_bytes

WHO = "Jane Doe"
EMAIL = "jane@example.com"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    for var, value in (("NAME", WHO), ("EMAIL", EMAIL)):
        monkeypatch.setenv(f"GIT_AUTHOR_{var}", value)
        monkeypatch.setenv(f"GIT_COMMITTER_{var}", value)
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "--quiet", "-b", "main")
    (path / ".gto").write_text("stages: [staging, prod]\n")
    (path / ".gitignore").write_text("/models/package/\n/logs/\n")
    name_artifact(path, "flight-delay")
    (path / "registry").mkdir()
    for channel in record.CHANNELS:
        (path / "registry" / f"{channel}.json").write_text(json.dumps(record.empty_record("flight-delay", channel)))
    git(path, "add", "-A")
    git(path, "commit", "--quiet", "-m", "empty registry")
    return path


def name_artifact(repo: Path, artifact: str, declared: str | None = None) -> None:
    """params.yaml `dataset.artifact` and dvc.yaml's `artifacts:` entry (`declared`, the same unless given)."""
    write_params(repo / "params.yaml", default_params({"dataset.artifact": artifact}))
    entry = f"artifacts:\n  {declared or artifact}:\n    path: models/package\n    type: model\n"
    (repo / "dvc.yaml").write_text(entry)


def write_lock(repo: Path) -> None:
    """dvc.lock as `dvc repro` leaves it: the package stage's out is the DVC hash of models/package."""
    md5 = registry.dvc_dir_hash(repo / "models" / "package")
    lock = {"schema": "2.0", "stages": {"package": {"cmd": "x", "outs": [{"path": "models/package", "md5": md5}]}}}
    (repo / "dvc.lock").write_text(json.dumps(lock))  # JSON is YAML


def commit_model(repo: Path, seed: int, decision: str = "pass") -> dict:
    """A commit whose package was trained with `seed` (a different package per seed). Returns its pointer."""
    model_bytes = tiny_model_bytes()
    manifest = manifest_for(model_bytes, params={"train": {"seed": seed}})
    manifest["gate"] = {**manifest["gate"], "decision": decision}
    parent = repo / "models" / "package"
    if parent.exists():
        for old in parent.iterdir():
            for f in old.iterdir():
                f.unlink()
            old.rmdir()
    directory, full_hash = write_package(parent, model_bytes, manifest, tiny_state_bytes())
    package = pointer(manifest, "models/package", directory.name, full_hash)
    (repo / "reports").mkdir(exist_ok=True)
    (repo / "reports" / "package.json").write_text(json.dumps(package))
    (repo / "reports" / "gate.json").write_text(json.dumps(manifest["gate"]))  # a whole GateDecision
    write_lock(repo)
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", f"model seed {seed}")
    return package


def a_second_later() -> None:
    time.sleep(1.05)


def prod_record(repo: Path) -> dict:
    return json.loads((repo / "registry" / "prod.json").read_text())["promoted"]


@pytest.mark.slow  # promotions a second apart
def test_promote_history_and_rollback(repo):
    packages = {}
    for seed, version in ((1, "v0.0.1"), (2, "v0.0.2"), (3, "v0.0.3")):
        packages[version] = commit_model(repo, seed)["name"]
        record = registry.promote(repo, "prod", reason=f"release {seed}")
        assert record["promoted"]["version"] == version
        assert record["promoted"]["package"]["name"] == packages[version]
        assert prod_record(repo)["version"] == version  # registry/prod.json written ...
        assert git(repo, "status", "--porcelain") == ""  # ... and committed
        assert git(repo, "log", "-1", "--format=%s").startswith(f"promote flight-delay {version} (")
        a_second_later()
    assert len(set(packages.values())) == 3
    assert "flight-delay@v0.0.3" in git(repo, "tag").split()

    rows = registry.history(repo, "prod")
    assert [(r["action"], r["version"]) for r in rows] == [
        ("promote", "v0.0.3"),
        ("promote", "v0.0.2"),
        ("promote", "v0.0.1"),
    ]
    newest = rows[0]
    assert newest["current"] is True
    assert newest["who"] == f"{WHO} <{EMAIL}>"
    assert newest["package"] == packages["v0.0.3"]
    assert newest["package_hash"].startswith(packages["v0.0.3"][len("model-") :])
    assert newest["when"] >= rows[1]["when"] > rows[2]["when"]
    assert newest["message"].endswith(": release 3")

    # rollback: prod goes back to v0.0.2, in git tags, in GTO's own view and in registry/prod.json
    record = registry.rollback(repo, "prod", reason="v0.0.3 misbehaves")
    assert record["promoted"]["version"] == "v0.0.2"
    assert prod_record(repo)["package"]["name"] == packages["v0.0.2"]
    assert git(repo, "status", "--porcelain") == ""
    from gto import api

    assert [v.version for v in api.find_versions_in_stage(str(repo), "flight-delay", "prod")] == ["v0.0.2"]

    # a second rollback goes to v0.0.1, never back to the withdrawn v0.0.3
    a_second_later()
    assert registry.rollback(repo, "prod")["promoted"]["version"] == "v0.0.1"
    only_one = "nothing to roll back to: only v0.0.1 has been promoted to prod"
    with pytest.raises(RegistryError, match=re.escape(only_one)):
        registry.rollback(repo, "prod")

    rows = registry.history(repo, "prod")
    assert [(r["action"], r["version"]) for r in rows[:4]] == [
        ("rollback", "v0.0.1"),
        ("withdraw", "v0.0.2"),
        ("rollback", "v0.0.2"),
        ("withdraw", "v0.0.3"),
    ]
    assert rows[0].get("current") is True
    assert not any(r.get("current") for r in rows[1:])
    assert "v0.0.3 misbehaves" in rows[3]["message"]


@pytest.mark.slow  # promotions a second apart
def test_dvc_resolves_the_stage_to_the_rolled_back_version(repo):
    from dvc.repo import Repo

    commits = {}
    for seed in (1, 2):
        commit_model(repo, seed)
        commits[seed] = git(repo, "rev-parse", "HEAD").strip()
        registry.promote(repo, "prod")
        a_second_later()
    registry.rollback(repo, "prod")
    Repo.init(str(repo))
    with Repo(str(repo)) as dvc_repo:
        assert dvc_repo.artifacts.get_rev("flight-delay", stage="prod") == commits[1]


def test_promoting_the_same_package_again_reuses_its_version(repo):
    commit_model(repo, 1)
    registry.promote(repo, "prod")
    # HEAD is now the registry commit, which holds the same package: staging gets the same version
    record = registry.promote(repo, "staging")
    assert record["promoted"]["version"] == "v0.0.1"
    assert "flight-delay@v0.0.2" not in git(repo, "tag").split()
    with pytest.raises(RegistryError, match="already in prod"):
        registry.promote(repo, "prod")


def test_promotion_is_refused_when_it_should_be(repo):
    commit_model(repo, 1)
    (repo / "registry" / "prod.json").write_text("{}")
    with pytest.raises(RegistryError, match="uncommitted changes"):
        registry.promote(repo, "prod")
    git(repo, "checkout", "--", "registry/prod.json")
    with pytest.raises(RegistryError, match="unknown channel 'production'"):
        registry.promote(repo, "production")
    # a tampered package is verified and refused before anything is tagged
    package = next((repo / "models" / "package").iterdir())
    data = bytearray((package / MODEL_FILE).read_bytes())
    data[-10] ^= 1
    (package / MODEL_FILE).write_bytes(bytes(data))
    with pytest.raises(Exception, match="refusing to load it"):
        registry.promote(repo, "prod")
    assert git(repo, "tag") == ""
    # a commit whose gate failed is never promoted
    commit_model(repo, 2, decision="fail")
    with pytest.raises(RegistryError, match="the gate did not pass at HEAD"):
        registry.promote(repo, "prod")
    assert git(repo, "tag") == ""


def test_an_older_version_goes_back_by_rollback_not_promote(repo):
    commit_model(repo, 1)
    registry.promote(repo, "staging")
    a_second_later()
    commit_model(repo, 2)
    registry.promote(repo, "staging")
    with pytest.raises(RegistryError, match=re.escape("v0.0.1 is older than v0.0.2, which is in staging: use")):
        registry.promote(repo, "staging", version="v0.0.1")
    with pytest.raises(RegistryError, match=re.escape("has no version v9.9.9")):
        registry.promote(repo, "staging", version="v9.9.9")


def test_cli_promote_and_history(repo, capfd, monkeypatch):
    monkeypatch.chdir(repo)
    commit_model(repo, 1)
    assert main(["promote", "prod", "--reason", "first release"]) == 0
    assert "prod: v0.0.1 (model-" in capfd.readouterr().out
    assert main(["history", "prod"]) == 0
    out = capfd.readouterr().out
    assert out.startswith("flight-delay prod history, newest first:")
    assert "promote   v0.0.1    model-" in out
    assert f"by {WHO} <{EMAIL}>  <- current" in out
    assert main(["history", "prod", "--json"]) == 0
    assert json.loads(capfd.readouterr().out)[0]["version"] == "v0.0.1"
    assert main(["rollback", "prod"]) == 1
    assert "rollback failed: nothing to roll back to" in capfd.readouterr().err


def test_a_gate_file_of_another_shape_is_named_not_guessed(repo):
    from flightdelay.core.contracts import ContractError
    from flightdelay.release.registry import _check_gate

    commit_model(repo, seed=1)
    head = git(repo, "rev-parse", "HEAD").strip()
    _check_gate(repo, head, "HEAD")  # a whole, passing decision
    (repo / "reports" / "gate.json").write_text(json.dumps({"decision": "pass"}))
    git(repo, "commit", "--quiet", "-am", "a gate.json with only a decision")
    head = git(repo, "rev-parse", "HEAD").strip()
    with pytest.raises(ContractError, match=r"^reports/gate\.json at HEAD: not a GateDecision: missing key candidate"):
        _check_gate(repo, head, "HEAD")


def test_a_fork_promotes_under_its_own_artifact_name(repo, capfd, monkeypatch):
    """The name comes from params.yaml dataset.artifact (as new-dataset writes it), not from code."""
    name_artifact(repo, "rain-tomorrow")
    git(repo, "commit", "--quiet", "-am", "a fork: rain tomorrow")
    commit_model(repo, 1)
    promoted = registry.promote(repo, "prod")
    assert promoted["artifact"] == "rain-tomorrow"
    assert json.loads((repo / "registry" / "prod.json").read_text())["artifact"] == "rain-tomorrow"
    assert git(repo, "log", "-1", "--format=%s").startswith("promote rain-tomorrow v0.0.1 (")
    tags = git(repo, "tag").split()
    assert "rain-tomorrow@v0.0.1" in tags and not [t for t in tags if t.startswith("flight-delay")]
    monkeypatch.chdir(repo)
    assert main(["history", "prod"]) == 0
    assert capfd.readouterr().out.startswith("rain-tomorrow prod history, newest first:")


def test_params_and_dvc_yaml_naming_two_artifacts_are_refused(repo):
    name_artifact(repo, "rain-tomorrow", declared="flight-delay")
    git(repo, "commit", "--quiet", "-am", "a fork that renamed only params.yaml")
    commit_model(repo, 1)
    with pytest.raises(RegistryError, match=r"dvc\.yaml: `artifacts:` declares \['flight-delay'\], but params\.yaml "):
        registry.promote(repo, "prod")
    assert git(repo, "tag") == ""
