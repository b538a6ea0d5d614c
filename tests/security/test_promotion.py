"""promote takes the package in the workspace only if it is the one dvc.lock records (issue 8, point 2)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from flightdelay.core.hashing import sha256_bytes
from flightdelay.release import registry
from flightdelay.release.package_format import (
    CHECKSUM_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    STATE_FILE,
    package_name,
    render_checksums,
)
from flightdelay.release.registry import RegistryError
from tests.conftest import BIN, run
from tests.integration.test_registry import commit_model, git


def state(repo: Path) -> tuple[str, str, str]:
    """Tags, the registry record and HEAD: what a promotion would change."""
    return git(repo, "tag"), (repo / "registry" / "prod.json").read_text(), git(repo, "rev-parse", "HEAD")


@pytest.mark.slow  # runs dvc
def test_the_dvc_hash_is_the_one_dvc_itself_records(tmp_path):
    repo = tmp_path / "dvc-repo"
    package = repo / "models" / "package" / "model-0123456789abcdef"
    package.mkdir(parents=True)
    (package / "a.json").write_text('{"a": 1}\n')
    (package / "b.bin").write_bytes(bytes(range(256)))
    run(["git", "init", "--quiet"], cwd=repo)
    run([str(BIN / "dvc"), "init", "--quiet"], cwd=repo)
    run([str(BIN / "dvc"), "add", "--quiet", "models/package"], cwd=repo)
    recorded = (repo / "models" / "package.dvc").read_text()
    assert f"md5: {registry.dvc_dir_hash(repo / 'models' / 'package')}\n" in recorded


def test_a_package_rewritten_after_dvc_repro_is_not_promoted(repo):
    pointer = commit_model(repo, 1)
    # Someone edits the manifest, recomputes its checksum, renames the folder to its new hash and commits a
    # pointer naming it: verify accepts that self-consistent package, but dvc.lock still records the old one.
    old = repo / "models" / "package" / pointer["name"]
    manifest = json.loads((old / MANIFEST_FILE).read_text())
    manifest["metrics"]["roc_auc"] = 0.99
    text = json.dumps(manifest).encode()
    (old / MANIFEST_FILE).write_bytes(text)
    sums = render_checksums(
        {
            MODEL_FILE: sha256_bytes((old / MODEL_FILE).read_bytes()),
            MANIFEST_FILE: sha256_bytes(text),
            STATE_FILE: sha256_bytes((old / STATE_FILE).read_bytes()),
        }
    )
    (old / CHECKSUM_FILE).write_text(sums)
    full_hash = sha256_bytes(sums.encode())
    old.rename(old.with_name(package_name(full_hash)))
    forged = {**pointer, "name": package_name(full_hash), "hash": full_hash, "metrics": manifest["metrics"]}
    forged["path"] = f"models/package/{forged['name']}"
    (repo / "reports" / "package.json").write_text(json.dumps(forged))
    git(repo, "commit", "--quiet", "-am", "better metrics")
    before = state(repo)
    with pytest.raises(RegistryError, match=r"models/package in the workspace .* is not what dvc\.lock records at"):
        registry.promote(repo, "prod")
    assert state(repo) == before
    assert git(repo, "status", "--porcelain") == ""


def test_a_file_added_to_models_package_after_dvc_repro_is_not_promoted(repo):
    commit_model(repo, 1)
    (repo / "models" / "package" / "run_me.py").write_text("open('ran', 'w')\n")
    before = state(repo)
    with pytest.raises(RegistryError, match="it was changed after `dvc repro`; run `dvc checkout models/package`"):
        registry.promote(repo, "prod")
    assert state(repo) == before
    assert not (repo / "ran").exists()


def test_a_pointer_whose_hash_is_not_the_packages_is_not_promoted(repo):
    pointer = commit_model(repo, 1)
    (repo / "reports" / "package.json").write_text(json.dumps({**pointer, "hash": "0" * 64}))
    git(repo, "commit", "--quiet", "-am", "another hash")
    before = state(repo)
    with pytest.raises(RegistryError, match=r"its hash [0-9a-f]{64} is not the one reports/package\.json records"):
        registry.promote(repo, "prod")
    assert state(repo) == before


def test_a_commit_without_a_package_entry_in_dvc_lock_is_not_promoted(repo):
    commit_model(repo, 1)
    (repo / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    git(repo, "commit", "--quiet", "-am", "lock without the package stage")
    before = state(repo)
    with pytest.raises(RegistryError, match=r"dvc\.lock at [0-9a-f]{12} records no models/package output"):
        registry.promote(repo, "prod")
    assert state(repo) == before


def test_the_lock_check_passes_for_the_package_dvc_repro_left(repo):
    commit_model(repo, 1)
    head = git(repo, "rev-parse", "HEAD").strip()
    registry.check_package_matches_lock(repo, head)  # raises if not
    assert subprocess.run(["git", "tag"], cwd=repo, capture_output=True, text=True).stdout == ""
