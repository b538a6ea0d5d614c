"""The package name proves the whole package; malformed package files get a one-line refusal (issue 8, 2 and 4).

Each case changes a package as an attacker (or an accident) would, recomputing whatever checksums it can, and
asserts that `verify_package` and `flightdelay verify` refuse it with one line, and that nothing changed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from flightdelay.cli import main
from flightdelay.core import limits
from flightdelay.core.errors import PipelineError
from flightdelay.core.hashing import sha256_bytes
from flightdelay.release import package_format
from flightdelay.release.package_format import (
    CHECKSUM_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    STATE_FILE,
    PackageError,
    load_package,
    package_name,
    render_checksums,
    verify,
    write_package,
)
from flightdelay.serving.predictor import Predictor
from tests.unit.test_packaging import manifest_for, tiny_model_bytes, tiny_state_bytes


@pytest.fixture
def package(tmp_path) -> Path:
    model_bytes = tiny_model_bytes()
    path, _ = write_package(tmp_path / "packages", model_bytes, manifest_for(model_bytes), tiny_state_bytes())
    return path


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every path under `root` and its bytes (or what a link points to): to show verification changed nothing."""
    out: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                out[key] = f"-> {os.readlink(path)}"
            elif path.is_file():
                out[key] = path.read_bytes()
            else:
                out[key] = "dir" if path.is_dir() else "other"
    return out


def rewrite_manifest(package: Path, change: Callable[[dict], None]) -> dict:
    """Edit the manifest and recompute its checksum, as someone who can write the files would."""
    manifest = json.loads((package / MANIFEST_FILE).read_text())
    change(manifest)
    text = json.dumps(manifest).encode()
    (package / MANIFEST_FILE).write_bytes(text)
    sums = {MODEL_FILE: sha256_bytes((package / MODEL_FILE).read_bytes()), MANIFEST_FILE: sha256_bytes(text)}
    sums[STATE_FILE] = sha256_bytes((package / STATE_FILE).read_bytes())
    (package / CHECKSUM_FILE).write_text(render_checksums(sums))
    return manifest


def rename_to_its_hash(package: Path) -> Path:
    new = package.with_name(package_name(sha256_bytes((package / CHECKSUM_FILE).read_bytes())))
    package.rename(new)
    return new


def assert_refused(path: Path, pattern: str, tmp_path: Path, monkeypatch, capfd) -> None:
    before = snapshot(tmp_path / "packages")
    with pytest.raises(PackageError, match=pattern) as refused:
        verify(path)
    assert "\n" not in str(refused.value)
    monkeypatch.chdir(tmp_path)
    assert main(["verify", str(path)]) == 1  # 1: a refusal; 2 would be an unexpected error
    err = capfd.readouterr().err
    assert [line for line in err.splitlines() if "verify failed:" in line], err
    assert "Traceback" not in err and "unexpectedly" not in err
    assert snapshot(tmp_path / "packages") == before


# ------------------------------------------------------------------------------------------------ the name


def test_a_manifest_claiming_other_metrics_does_not_verify_after_checksums_are_recomputed(
    package, tmp_path, monkeypatch, capfd
):
    rewrite_manifest(package, lambda m: m["metrics"].update(roc_auc=0.99))
    assert_refused(package, "hashes to model-.*which does not match its name", tmp_path, monkeypatch, capfd)


def test_a_manifest_claiming_a_passed_gate_does_not_verify_after_checksums_are_recomputed(
    package, tmp_path, monkeypatch, capfd
):
    rewrite_manifest(package, lambda m: m["gate"].update(decision="overridden", failed=[]))
    assert_refused(package, "does not match its name", tmp_path, monkeypatch, capfd)


def test_a_failed_gate_is_refused_even_when_everything_else_is_consistent(tmp_path, monkeypatch, capfd):
    model_bytes = tiny_model_bytes()
    manifest = manifest_for(model_bytes)
    manifest["gate"] = {**manifest["gate"], "decision": "fail"}
    path, _ = write_package(tmp_path / "packages", model_bytes, manifest, tiny_state_bytes())
    pattern = "gate.decision is 'fail'; only a package whose gate decision is 'pass' or 'overridden'"
    assert_refused(path, pattern, tmp_path, monkeypatch, capfd)


def test_a_failed_gate_rewritten_renamed_and_rehashed_is_still_refused(package, tmp_path, monkeypatch, capfd):
    rewrite_manifest(package, lambda m: m["gate"].update(decision="fail"))
    assert_refused(rename_to_its_hash(package), "gate.decision is 'fail'", tmp_path, monkeypatch, capfd)


def test_a_rewritten_and_renamed_package_is_another_package(package):
    # Checksums prove integrity, not who built it: a consistent rewrite is a different package, with a
    # different name, which no pointer or dvc.lock names (see test_promotion.py for how promote refuses it).
    original = verify(package)
    rewrite_manifest(package, lambda m: m["metrics"].update(roc_auc=0.99))
    other = verify(rename_to_its_hash(package))
    assert other.hash != original.hash
    assert other.path.name != original.path.name


def test_a_manifest_of_the_old_format_is_refused(tmp_path, monkeypatch, capfd):
    model_bytes = tiny_model_bytes()
    path, _ = write_package(
        tmp_path / "packages", model_bytes, {**manifest_for(model_bytes), "format": 1}, tiny_state_bytes()
    )
    assert_refused(path, "format 1, this version reads format 3", tmp_path, monkeypatch, capfd)


def test_a_manifest_naming_another_model_is_refused(tmp_path, monkeypatch, capfd):
    model_bytes = tiny_model_bytes()
    manifest = manifest_for(model_bytes)
    manifest["model"]["sha256"] = "0" * 64
    path, _ = write_package(tmp_path / "packages", model_bytes, manifest, tiny_state_bytes())
    assert_refused(path, "model.sha256 names another model file", tmp_path, monkeypatch, capfd)


# ------------------------------------------------------------------------------------------------ malformed files


def consistent_package(tmp_path: Path, manifest_bytes: bytes) -> Path:
    """A package whose checksums and name match a manifest of any bytes."""
    model_bytes, state_bytes = tiny_model_bytes(), tiny_state_bytes()
    sums = render_checksums(
        {
            MODEL_FILE: sha256_bytes(model_bytes),
            MANIFEST_FILE: sha256_bytes(manifest_bytes),
            STATE_FILE: sha256_bytes(state_bytes),
        }
    )
    path = tmp_path / "packages" / package_name(sha256_bytes(sums.encode()))
    path.mkdir(parents=True)
    (path / MODEL_FILE).write_bytes(model_bytes)
    (path / MANIFEST_FILE).write_bytes(manifest_bytes)
    (path / STATE_FILE).write_bytes(state_bytes)
    (path / CHECKSUM_FILE).write_text(sums)
    return path


@pytest.mark.parametrize(
    ("manifest", "pattern"),
    [
        (b"[1, 2, 3]", r"manifest\.json: not a JSON object \(it is a list\)"),
        (b'"a string"', r"not a JSON object \(it is a str\)"),
        (b"{not json", r"manifest\.json: not JSON \(JSONDecodeError"),
        (b"\xff\xfe{}", r"manifest\.json: not JSON \(UnicodeDecodeError"),
        (b"[" * 100_000 + b"]" * 100_000, r"manifest\.json: not JSON \(RecursionError"),
        (b'{"format": 3, "model": [], "gate": {"decision": "pass"}}', "model.sha256 names another model file"),
        (b'{"format": 3, "model": {}, "gate": "pass"}', "model.sha256 names another model file"),
    ],
    ids=["list", "string", "not-json", "not-utf8", "nested-too-deep", "model-is-a-list", "gate-is-a-string"],
)
def test_a_malformed_manifest_is_refused(tmp_path, monkeypatch, capfd, manifest, pattern):
    path = consistent_package(tmp_path, manifest)
    assert_refused(path, pattern, tmp_path, monkeypatch, capfd)


def test_a_non_utf8_checksum_file_is_refused(package, tmp_path, monkeypatch, capfd):
    (package / CHECKSUM_FILE).write_bytes(b"\xff" * 64 + b"  model.skops\n")
    assert_refused(package, r"checksums\.sha256: not UTF-8 text", tmp_path, monkeypatch, capfd)


def test_a_checksum_file_not_in_canonical_form_is_refused(package, tmp_path, monkeypatch, capfd):
    text = (package / CHECKSUM_FILE).read_text()
    lines = text.splitlines(keepends=True)
    (package / CHECKSUM_FILE).write_text("".join(reversed(lines)))
    assert_refused(rename_to_its_hash(package), "not in canonical form", tmp_path, monkeypatch, capfd)


def test_a_symlinked_checksum_file_is_refused(package, tmp_path, monkeypatch, capfd):
    real = tmp_path / "packages" / "elsewhere.sha256"
    shutil.move(package / CHECKSUM_FILE, real)
    (package / CHECKSUM_FILE).symlink_to(real)
    assert_refused(package, r"checksums\.sha256: a symbolic link", tmp_path, monkeypatch, capfd)


def test_a_symlinked_manifest_is_refused(package, tmp_path, monkeypatch, capfd):
    real = tmp_path / "packages" / "elsewhere.json"
    shutil.move(package / MANIFEST_FILE, real)
    (package / MANIFEST_FILE).symlink_to(real)
    assert_refused(package, r"manifest\.json: a symbolic link", tmp_path, monkeypatch, capfd)


def test_a_symlinked_package_folder_is_refused(package, tmp_path, monkeypatch, capfd):
    real = package.with_name("real-folder")
    package.rename(real)
    package.symlink_to(real, target_is_directory=True)
    assert_refused(package, "a symbolic link; a package must be a real directory", tmp_path, monkeypatch, capfd)


@pytest.mark.parametrize("name", [CHECKSUM_FILE, MANIFEST_FILE, MODEL_FILE, STATE_FILE])
def test_a_directory_where_a_file_is_expected_is_refused(package, tmp_path, monkeypatch, capfd, name):
    (package / name).unlink()
    (package / name).mkdir()
    (package / name / "inside").write_text("x")
    assert_refused(package, rf"{name}: not a regular file", tmp_path, monkeypatch, capfd)


def test_a_fifo_where_a_file_is_expected_is_refused_without_blocking(package, tmp_path, monkeypatch, capfd):
    (package / MANIFEST_FILE).unlink()
    os.mkfifo(package / MANIFEST_FILE)
    assert_refused(package, r"manifest\.json: not a regular file", tmp_path, monkeypatch, capfd)


def test_an_extra_file_listed_in_the_checksums_is_refused(package, tmp_path, monkeypatch, capfd):
    (package / "run_me.py").write_text("open('ran', 'w')\n")
    sums = {p.name: sha256_bytes(p.read_bytes()) for p in package.iterdir() if p.name != CHECKSUM_FILE}
    (package / CHECKSUM_FILE).write_text(render_checksums(sums))
    path = rename_to_its_hash(package)
    assert_refused(
        path,
        r"a package holds exactly \['feature_state.json', 'manifest.json', 'model.skops'\]",
        tmp_path,
        monkeypatch,
        capfd,
    )
    assert not (tmp_path / "ran").exists()


# ------------------------------------------------------------------------------------------------ the feature state


def test_an_edited_feature_state_is_refused(package, tmp_path, monkeypatch, capfd):
    state = json.loads((package / STATE_FILE).read_text())
    state["history_smoothing"] = 0.0  # sharper history rates: a different model, silently
    (package / STATE_FILE).write_text(json.dumps(state))
    assert_refused(package, r"feature_state\.json: SHA-256 is .* refusing to load it", tmp_path, monkeypatch, capfd)


def test_an_edited_feature_state_with_recomputed_checksums_is_refused(package, tmp_path, monkeypatch, capfd):
    text = (package / STATE_FILE).read_bytes().replace(b'"history_smoothing":50.0', b'"history_smoothing":0.0')
    assert text != (package / STATE_FILE).read_bytes()
    (package / STATE_FILE).write_bytes(text)
    sums = {p.name: sha256_bytes(p.read_bytes()) for p in package.iterdir() if p.name != CHECKSUM_FILE}
    (package / CHECKSUM_FILE).write_text(render_checksums(sums))
    assert_refused(package, "does not match its name", tmp_path, monkeypatch, capfd)


def test_a_package_without_its_feature_state_is_refused(package, tmp_path, monkeypatch, capfd):
    (package / STATE_FILE).unlink()
    assert_refused(package, r"missing: \['feature_state\.json'\]", tmp_path, monkeypatch, capfd)


@pytest.mark.parametrize(
    ("state", "pattern"),
    [
        (b"[1, 2]", r"feature_state\.json: not a JSON object \(it is a list\)"),
        (b"{not json", r"feature_state\.json: not JSON \(JSONDecodeError"),
        (b"[" * 100_000 + b"]" * 100_000, r"feature_state\.json: not JSON \(RecursionError"),
    ],
)
def test_a_malformed_feature_state_is_refused_at_load_without_running_anything(tmp_path, state, pattern):
    model_bytes = tiny_model_bytes()
    path, _ = write_package(tmp_path / "packages", model_bytes, manifest_for(model_bytes), state)
    verify(path)  # the bytes are what the checksums say: only reading them as data refuses them
    with pytest.raises(PackageError, match=pattern):
        load_package(path)


def test_a_feature_state_that_is_data_of_another_shape_is_refused_by_the_predictor(tmp_path):
    model_bytes = tiny_model_bytes()
    hostile = json.dumps({"format": 1, "__reduce__": ["os.system", ["touch ran"]]}).encode()
    path, _ = write_package(tmp_path / "packages", model_bytes, manifest_for(model_bytes), hostile)
    with pytest.raises(PackageError, match=r"feature_state\.json: not a feature state \(KeyError"):
        Predictor.load(path)
    assert not (tmp_path / "ran").exists()


# ------------------------------------------------------------------------------------------------ names


def test_a_package_directory_named_with_a_trailing_newline_is_refused(package, tmp_path, monkeypatch, capfd):
    # `$` in a pattern also matches before a final newline: model-<hex>\n verified and loaded
    renamed = package.rename(package.with_name(package.name + "\n"))
    assert_refused(renamed, "a package directory is named model-<16 hex digits>", tmp_path, monkeypatch, capfd)


@pytest.mark.parametrize("name", ["..", "."])
def test_a_checksum_line_naming_a_directory_is_refused(package, name, tmp_path, monkeypatch, capfd):
    sums = {n: sha256_bytes((package / n).read_bytes()) for n in (MODEL_FILE, MANIFEST_FILE, STATE_FILE)}
    (package / CHECKSUM_FILE).write_text(render_checksums({**sums, name: "0" * 64}))
    renamed = rename_to_its_hash(package)
    assert_refused(
        renamed, rf"line 1 names the directory '{re.escape(name)}', not a file", tmp_path, monkeypatch, capfd
    )


# ------------------------------------------------------------------------------------------- shapes and sizes


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (lambda m: m.update(params=[]), r"params is a list, expected an object"),
        (lambda m: m["params"].update(features=[]), r"params\.features is a list, expected an object"),
        (lambda m: m["params"].update(dataset="x"), r"params\.dataset is a string, expected an object"),
        (lambda m: m.update(input_schema=[]), r"input_schema is a list, expected an object"),
        (lambda m: m.update(environment=[]), r"environment is a list, expected an object"),
        (lambda m: m.update(reference="x"), r"reference is a string, expected an object"),
        (lambda m: m.update(reference=7), r"reference is a number, expected an object"),
        (lambda m: m["model"]["features"].update(numeric=5), r"model\.features\.numeric is a number, expected a list"),
        (lambda m: m.update(examples=[1]), r"examples\[0\] is a number, expected an object"),
        (
            lambda m: m["params"].update(evaluate={"threshold": "0.5"}),
            r"params\.evaluate\.threshold is a string, expected a number",
        ),
    ],
)
def test_a_manifest_field_of_another_json_type_is_refused_naming_it(
    package, tmp_path, monkeypatch, capfd, change, pattern
):
    # Predictor.load called `.get` on whatever the field held: an AttributeError (a 500 in the service, "failed
    # unexpectedly" in the CLI) instead of a refusal naming the field
    rewrite_manifest(package, lambda m: (m["params"].setdefault("evaluate", {"threshold": 0.35}), change(m)))
    path = rename_to_its_hash(package)
    assert_refused(path, r"manifest\.json: " + pattern, tmp_path, monkeypatch, capfd)
    with pytest.raises(PackageError, match=pattern):
        Predictor.load(path)


def test_the_package_fixture_with_its_threshold_loads(package):
    """The control of the cases above: the same package, only the threshold added, loads and passes its canary."""
    rewrite_manifest(package, lambda m: m["params"].setdefault("evaluate", {"threshold": 0.35}))
    Predictor.load(rename_to_its_hash(package)).canary()


def empty_lists(size: int) -> bytes:
    return b'{"a": [' + b"[]," * (size // 3) + b"[]]}"


def test_a_feature_state_of_many_empty_lists_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    # under FEATURE_STATE_MAX_BYTES, 64 MiB of "[]," parsed into 1.97 GB of lists before the model was audited
    model_bytes = tiny_model_bytes()
    limit = limits.FEATURE_STATE_MAX_CONTAINERS
    path, _ = write_package(tmp_path / "packages", model_bytes, manifest_for(model_bytes), empty_lists(3 * limit))
    parsed: list[int] = []
    loads = json.loads
    monkeypatch.setattr(package_format.json, "loads", lambda text, **kw: parsed.append(len(text)) or loads(text, **kw))
    with pytest.raises(
        PackageError,
        match=rf"feature_state\.json holds {limit + 3:,} JSON lists and objects .*"
        r"over the limit of 100,000 \(FEATURE_STATE_MAX_CONTAINERS in flightdelay/core/limits\.py\)",
    ):
        load_package(path)
    assert parsed and max(parsed) < 3 * limit  # the manifest was parsed, the state was refused on its bytes


def test_a_manifest_of_many_empty_lists_is_refused_before_it_is_parsed(package, tmp_path, monkeypatch, capfd):
    manifest = json.loads((package / MANIFEST_FILE).read_text())
    text = json.dumps(manifest)[:-1].encode() + b', "x": ' + empty_lists(3 * limits.MANIFEST_MAX_CONTAINERS) + b"}"
    path = consistent_package(tmp_path, text)
    assert_refused(path, r"manifest\.json holds .* \(MANIFEST_MAX_CONTAINERS in flightdelay/core/limits\.py\)",
                   tmp_path, monkeypatch, capfd)  # fmt: skip


def test_a_schema_json_of_many_empty_lists_is_refused_before_it_is_parsed(tmp_path):
    import io
    import zipfile

    source = zipfile.ZipFile(io.BytesIO(tiny_model_bytes()))
    junk = empty_lists(3 * limits.MODEL_SCHEMA_MAX_CONTAINERS)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:  # stored: no zip-bomb ratio
        for name in source.namelist():
            body = source.read(name)
            archive.writestr(name, body[:-1] + b', "junk": ' + junk + b"}" if name == "schema.json" else body)
    model_bytes = out.getvalue()
    path, _ = write_package(tmp_path / "packages", model_bytes, manifest_for(model_bytes), tiny_state_bytes())
    with pytest.raises(PipelineError, match=r"schema\.json holds .* \(MODEL_SCHEMA_MAX_CONTAINERS in flightdelay/"):
        load_package(path)


def test_the_real_files_are_far_under_their_container_limits(package):
    """The limits leave room: the test package's files hold a small share of what their limit allows."""
    import zipfile

    for data, limit in (
        ((package / STATE_FILE).read_bytes(), limits.FEATURE_STATE_MAX_CONTAINERS),
        ((package / MANIFEST_FILE).read_bytes(), limits.MANIFEST_MAX_CONTAINERS),
        (zipfile.ZipFile(package / MODEL_FILE).read("schema.json"), limits.MODEL_SCHEMA_MAX_CONTAINERS),
    ):
        assert (data.count(b"[") + data.count(b"{")) * 100 < limit


def test_an_npy_entry_holding_an_npz_is_refused_by_load_or_canary_never_an_unexpected_error(tmp_path):
    """An array entry replaced by an .npz once passed the audit and skops (np.load gives an NpzFile), then failed in
    the canary with AttributeError or ValueError. Each entry in turn is now a refusal (PipelineError), never an
    unexpected error: the audit refuses an array entry that is not a plain .npy file before skops reads it."""
    import io
    import zipfile

    import numpy as np

    base = tiny_model_bytes()
    source = zipfile.ZipFile(io.BytesIO(base))
    npz = io.BytesIO()
    np.savez(npz, x=np.arange(3))
    outcomes = []
    for target in [n for n in source.namelist() if n.endswith(".npy")]:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name in source.namelist():
                archive.writestr(name, npz.getvalue() if name == target else source.read(name))
        model_bytes = out.getvalue()
        manifest = manifest_for(model_bytes, {"evaluate": {"threshold": 0.35}})
        path, _ = write_package(tmp_path / target, model_bytes, manifest, tiny_state_bytes())
        try:
            Predictor.load(path).canary()
            outcomes.append("works")
        except PipelineError as exc:  # anything else fails the test
            assert "\n" not in str(exc)
            outcomes.append(type(exc).__name__)
    assert outcomes and "works" not in outcomes
