"""Content-addressed model packages: write them, verify them, load them safely.

A package is a directory `model-<hash>/` holding

- `model.skops`       the fitted scikit-learn pipeline (skops: state as data, no pickle);
- `manifest.json`     what the model is, what made it and how it was judged (see stages/package.py);
- `checksums.sha256`  the SHA-256 of every other file, in `sha256sum` format (`sha256sum -c` checks it).

`<hash>` is the first 16 hex digits of the SHA-256 of (the model file's SHA-256, the params, the data hashes),
all three also written in the manifest, so the name can be recomputed from the contents.

`load_package` verifies everything before it reads the model: the checksum file lists exactly the files
present, every checksum matches, the manifest's name and hash match the directory and its contents, and the
model file holds only scikit-learn, numpy and scipy types. Nothing in a package is ever executed or unpickled.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flightdelay.errors import PipelineError
from flightdelay.io import to_json

MODEL_FILE = "model.skops"
MANIFEST_FILE = "manifest.json"
CHECKSUM_FILE = "checksums.sha256"
NAME_DIGITS = 16
_LINE = re.compile(r"^([0-9a-f]{64})  ([A-Za-z0-9._-]+)$")
_NAME = re.compile(r"^model-([0-9a-f]{16})$")


class PackageError(PipelineError):
    """A package that fails verification: it is refused, never loaded."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _canonical(value: Any) -> bytes:
    """The JSON the manifest stores (floats rounded as written), with sorted keys and no whitespace."""
    stored = json.loads(to_json(value))
    return json.dumps(stored, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def package_hash(model_sha256: str, params: dict[str, Any], data: dict[str, Any]) -> str:
    """SHA-256 of (model file SHA-256, params, data hashes): the package's identity."""
    return sha256_bytes(_canonical({"model_sha256": model_sha256, "params": params, "data": data}))


def package_name(full_hash: str) -> str:
    return f"model-{full_hash[:NAME_DIGITS]}"


def render_checksums(files: dict[str, str]) -> str:
    """`sha256sum` format, one line per file, sorted by name."""
    return "".join(f"{sha}  {name}\n" for name, sha in sorted(files.items()))


def parse_checksums(text: str, where: str) -> dict[str, str]:
    files: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        match = _LINE.match(line)
        if not match:
            raise PackageError(f"{where}: line {number} is not '<sha256>  <file name>': {line[:80]!r}")
        sha, name = match.groups()
        if name in files or name == CHECKSUM_FILE:
            raise PackageError(f"{where}: line {number} lists {name} twice or lists the checksum file itself")
        files[name] = sha
    if not files:
        raise PackageError(f"{where}: lists no files")
    return files


def write_package_files(directory: Path, model_bytes: bytes, manifest: dict[str, Any]) -> None:
    """Write the three files of a package into `directory` (which the caller builds atomically)."""
    directory.mkdir(parents=True, exist_ok=True)
    manifest_text = to_json(manifest).encode()
    (directory / MODEL_FILE).write_bytes(model_bytes)
    (directory / MANIFEST_FILE).write_bytes(manifest_text)
    checksums = {MODEL_FILE: sha256_bytes(model_bytes), MANIFEST_FILE: sha256_bytes(manifest_text)}
    (directory / CHECKSUM_FILE).write_text(render_checksums(checksums), encoding="utf-8")


def verify_package(path: str | Path) -> dict[str, Any]:
    """Check a package without loading its model. Returns the manifest; raises PackageError on any mismatch."""
    path = Path(path)
    if not path.is_dir():
        raise PackageError(f"{path}: not a package directory")
    name_match = _NAME.match(path.name)
    if not name_match:
        raise PackageError(f"{path}: a package directory is named model-<16 hex digits>")
    checksum_path = path / CHECKSUM_FILE
    if not checksum_path.is_file():
        raise PackageError(f"{path}: no {CHECKSUM_FILE}; refusing an unverifiable package")
    listed = parse_checksums(checksum_path.read_text(encoding="utf-8"), str(checksum_path))
    present = {p.name for p in path.iterdir()} - {CHECKSUM_FILE}
    if present - set(listed):
        raise PackageError(f"{path}: files not covered by {CHECKSUM_FILE}: {sorted(present - set(listed))}")
    if set(listed) - present:
        raise PackageError(f"{path}: files listed in {CHECKSUM_FILE} are missing: {sorted(set(listed) - present)}")
    for name, expected in sorted(listed.items()):
        file = path / name
        if not file.is_file() or file.is_symlink():
            raise PackageError(f"{file}: not a regular file")
        actual = sha256_file(file)
        if actual != expected:
            raise PackageError(
                f"{file}: SHA-256 is {actual}, {CHECKSUM_FILE} says {expected}; the package was changed or damaged, "
                "refusing to load it"
            )
    for required in (MODEL_FILE, MANIFEST_FILE):
        if required not in listed:
            raise PackageError(f"{path}: {required} is not in the package")
    try:
        manifest = json.loads((path / MANIFEST_FILE).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PackageError(f"{path / MANIFEST_FILE}: not JSON ({exc})") from None
    model_sha = listed[MODEL_FILE]
    if manifest.get("model", {}).get("sha256") != model_sha:
        raise PackageError(f"{path}: the manifest names another model file than {MODEL_FILE}")
    expected_hash = package_hash(model_sha, manifest.get("params", {}), manifest.get("lineage", {}).get("data", {}))
    if manifest.get("hash") != expected_hash or manifest.get("name") != path.name:
        raise PackageError(
            f"{path}: the manifest's name/hash ({manifest.get('name')}, {manifest.get('hash')}) do not match its "
            f"contents ({package_name(expected_hash)}); refusing a package whose name does not match what it holds"
        )
    if name_match.group(1) != expected_hash[:NAME_DIGITS]:
        raise PackageError(f"{path}: the directory name does not match the content hash {expected_hash[:16]}")
    return manifest


@dataclass(frozen=True)
class LoadedPackage:
    path: Path
    manifest: dict[str, Any]
    model: Any


def load_package(path: str | Path) -> LoadedPackage:
    """Verify a package, then load its model (skops, scikit-learn/numpy/scipy types only)."""
    from flightdelay.model import load_model

    path = Path(path)
    manifest = verify_package(path)
    return LoadedPackage(path=path, manifest=manifest, model=load_model(path / MODEL_FILE))


def find_package(parent: str | Path) -> Path:
    """The one package directory under `parent` (models/package holds exactly one)."""
    found = sorted(p for p in Path(parent).iterdir() if p.is_dir()) if Path(parent).is_dir() else []
    if len(found) != 1:
        raise PackageError(f"{parent}: expected exactly one package directory, found {[p.name for p in found]}")
    return found[0]
