"""Content-addressed model packages: write them, verify them, load them safely (docs/security.md).

A package is a directory `model-<hash>/` holding

- `model.skops`       the fitted scikit-learn pipeline (skops: state as data, no pickle);
- `manifest.json`     what the model is, what made it and how it was judged (see stages/package.py);
- `feature_state.json` the feature builder's fitted state as data (history sums and counts, smoothing and prior,
                      reference tables: what its builder learned from the training months), so the package goes
                      from raw rows of the main table to a prediction (flightdelay.serving.predictor);
- `checksums.sha256`  the SHA-256 of the other files, in `sha256sum` format (`sha256sum -c` checks it).

The package hash is the SHA-256 of the bytes of `checksums.sha256`, and the name is `model-` and its first 16
hex digits. So the name covers every file: change a byte of the model or the manifest and its checksum
changes, so the checksum file changes, so the hash does. Nothing in a package holds the package's own hash or
name (a file cannot hold a hash of itself); the checksum file holds the hashes of the others, the name the
hash of the checksum file. `reports/package.json` (git-tracked) records the full hash, and `dvc.lock` the
DVC hash of the whole `models/package` directory, for promotion to compare with (flightdelay.release.registry).

`verify_package` checks, before reading further: the directory is a real directory named `model-<16 hex>`,
its checksum file is a regular file under its size limit, in canonical form, and hashes to the name; it lists
exactly the model, the manifest and the feature state, which are the only other files there; each is a regular
file under its limit (flightdelay.core.limits) whose SHA-256 matches. Then the manifest must be a JSON object of
this format that names this model file and records a gate decision of `pass` or `overridden`. `load_package`
then parses the feature state as JSON data and loads the model from the verified bytes
(flightdelay.modeling.model_audit refuses anything `build_pipeline` does not make).
Nothing in a package is ever executed or unpickled. The hash proves integrity, not who built the package.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flightdelay.core import limits
from flightdelay.core.errors import PipelineError
from flightdelay.core.files import to_json
from flightdelay.core.hashing import sha256_bytes

MODEL_FILE = "model.skops"
MANIFEST_FILE = "manifest.json"
STATE_FILE = "feature_state.json"
CHECKSUM_FILE = "checksums.sha256"
PACKAGE_FILES = frozenset({MODEL_FILE, MANIFEST_FILE, STATE_FILE})
# 2: the name is the hash of the checksum file, and the manifest holds neither; 3: the feature state file, and the
# manifest's example rows carry the model's recorded output (the canary)
MANIFEST_FORMAT = 3
ACCEPTED_GATE = ("pass", "overridden")
NAME_DIGITS = 16
_LINE = re.compile(r"([0-9a-f]{64})  ([A-Za-z0-9._-]+)")  # whole lines only: fullmatch
_NAME = re.compile(r"model-([0-9a-f]{16})")  # whole names only: fullmatch
# The manifest's fields that code reads (the predictor, its feature builders, the service's metadata, `verify`), and
# the JSON type each must have when it is there. A hashed but hostile manifest with another type (a list where an
# object is read) is refused here, naming the field, instead of failing inside its reader (an AttributeError).
MANIFEST_SHAPES: tuple[tuple[str, str], ...] = (
    ("model", "object"),
    ("model.task", "string"),
    ("model.kind", "string"),
    ("model.features", "object"),
    ("model.features.numeric", "list of strings"),
    ("model.features.categorical", "list of strings"),
    ("params", "object"),
    ("params.dataset", "object"),
    ("params.dataset.table", "string"),
    ("params.dataset.entity_keys", "list of strings"),
    ("params.dataset.target", "object"),
    ("params.features", "object"),
    ("params.features.builder", "string"),
    ("params.features.generic", "object or null"),  # null unless features.builder is generic
    ("params.features.split", "object"),
    ("params.ingest", "object"),
    ("params.evaluate", "object"),
    ("params.evaluate.threshold", "number"),
    ("metrics", "object"),
    ("gate", "object"),
    ("lineage", "object"),
    ("environment", "object"),
    ("environment.flightdelay", "string"),
    ("input_schema", "object"),
    ("reference", "object"),
    ("reference.features", "object"),
    ("reference.prediction", "object"),
    ("examples", "list of objects"),
    ("example_predictions", "list of strings"),  # each the repr of a float (stages/package.py)
    ("data_window", "object"),
)


class PackageError(PipelineError):
    """A package that fails verification: it is refused, never loaded."""


def package_hash(checksums_text: str) -> str:
    """The package's identity: the SHA-256 of its checksum file, which holds the SHA-256 of every other file."""
    return sha256_bytes(checksums_text.encode("utf-8"))


def package_name(full_hash: str) -> str:
    return f"model-{full_hash[:NAME_DIGITS]}"


def render_checksums(files: dict[str, str]) -> str:
    """`sha256sum` format, one line per file, sorted by name."""
    return "".join(f"{sha}  {name}\n" for name, sha in sorted(files.items()))


def parse_checksums(text: str, where: str) -> dict[str, str]:
    files: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        match = _LINE.fullmatch(line)
        if not match:
            raise PackageError(f"{where}: line {number} is not '<sha256>  <file name>': {line[:80]!r}")
        sha, name = match.groups()
        if name in (".", ".."):
            raise PackageError(f"{where}: line {number} names the directory {name!r}, not a file; refusing it")
        if name in files or name == CHECKSUM_FILE:
            raise PackageError(f"{where}: line {number} lists {name} twice or lists the checksum file itself")
        files[name] = sha
    if not files:
        raise PackageError(f"{where}: lists no files")
    return files


def write_package(parent: Path, model_bytes: bytes, manifest: dict[str, Any], state_bytes: bytes) -> tuple[Path, str]:
    """Write a package into `parent` (which the caller builds atomically). Returns its directory and hash."""
    files = {MODEL_FILE: model_bytes, MANIFEST_FILE: to_json(manifest).encode(), STATE_FILE: state_bytes}
    checksums = render_checksums({name: sha256_bytes(data) for name, data in files.items()})
    full_hash = package_hash(checksums)
    directory = Path(parent) / package_name(full_hash)
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (directory / name).write_bytes(data)
    (directory / CHECKSUM_FILE).write_text(checksums, encoding="utf-8")
    return directory, full_hash


@dataclass(frozen=True)
class VerifiedPackage:
    path: Path
    hash: str
    manifest: dict[str, Any]
    model_bytes: bytes
    state_bytes: bytes


def _read(path: Path, limit: int, name: str) -> bytes:
    return limits.read_capped(path, limit, name, PackageError)


def _check_file(path: Path, data: bytes, expected: str) -> None:
    actual = sha256_bytes(data)
    if actual != expected:
        raise PackageError(
            f"{path}: SHA-256 is {actual}, {CHECKSUM_FILE} says {expected}; the package was changed or damaged, "
            "refusing to load it"
        )


_KINDS: dict[str, Callable[[Any], bool]] = {
    "an object": lambda v: isinstance(v, dict),
    "a list": lambda v: isinstance(v, list),
    "a string": lambda v: isinstance(v, str),
    "a number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "a boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _json_kind(value: Any) -> str:
    """What a parsed JSON value is, in JSON's words ("a list", "null"), for a refusal."""
    return next((kind for kind, test in _KINDS.items() if test(value)), type(value).__name__)


def check_manifest_shapes(manifest: dict[str, Any], where: str | Path) -> None:
    """Refuse (PackageError) a manifest where a field of MANIFEST_SHAPES is there with another JSON type (or a list
    with an item of another type), naming the field, what it is and what is expected. A missing field is left to
    the code that needs it."""
    for dotted, expected in MANIFEST_SHAPES:
        value: Any = manifest
        for part in dotted.split("."):
            if not isinstance(value, dict) or part not in value:
                break  # absent (a parent of another type is refused on its own line, before this one)
            value = value[part]
        else:
            if value is None and expected.endswith(" or null"):
                continue
            kind, _, item = expected.removesuffix(" or null").partition(" of ")  # "list of strings": each a string
            wanted = {"object": "an object", "list": "a list", "string": "a string", "number": "a number"}
            if not _KINDS[wanted[kind]](value):
                raise PackageError(f"{where}: {dotted} is {_json_kind(value)}, expected {wanted[kind]}; refusing it")
            if item:
                want = wanted[item.removesuffix("s")]
                for i, x in enumerate(value):
                    if not _KINDS[want](x):
                        raise PackageError(f"{where}: {dotted}[{i}] is {_json_kind(x)}, expected {want}; refusing it")


def _manifest(path: Path, data: bytes, model_sha: str) -> dict[str, Any]:
    where = path / MANIFEST_FILE
    limits.check_containers(data, limits.MANIFEST_MAX_CONTAINERS, "MANIFEST_MAX_CONTAINERS", str(where), PackageError)
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise PackageError(f"{where}: not JSON ({type(exc).__name__}: {str(exc)[:120]}); refusing it") from None
    if not isinstance(manifest, dict):
        raise PackageError(f"{where}: not a JSON object (it is a {type(manifest).__name__}); refusing it")
    if manifest.get("format") != MANIFEST_FORMAT:
        raise PackageError(
            f"{where}: format {manifest.get('format')!r}, this version reads format {MANIFEST_FORMAT}; "
            "rebuild the package with `dvc repro`"
        )
    model = manifest.get("model")
    if not isinstance(model, dict) or model.get("sha256") != model_sha:
        raise PackageError(f"{where}: model.sha256 names another model file than {MODEL_FILE}; refusing it")
    gate = manifest.get("gate")
    decision = gate.get("decision") if isinstance(gate, dict) else None
    if decision not in ACCEPTED_GATE:
        raise PackageError(
            f"{where}: gate.decision is {decision!r}; only a package whose gate decision is 'pass' or 'overridden' "
            "is accepted"
        )
    check_manifest_shapes(manifest, where)
    return manifest


def verify(path: str | Path) -> VerifiedPackage:
    """Check a package without loading its model (see the module docstring); raises PackageError."""
    path = Path(path)
    if path.is_symlink():
        raise PackageError(f"{path}: a symbolic link; a package must be a real directory, refusing it")
    if not path.is_dir():
        raise PackageError(f"{path}: not a package directory")
    name_match = _NAME.fullmatch(path.name)
    if not name_match:
        raise PackageError(f"{str(path)!r}: a package directory is named model-<16 hex digits>")
    checksum_path = path / CHECKSUM_FILE
    if not os.path.lexists(checksum_path):
        raise PackageError(f"{path}: no {CHECKSUM_FILE}; refusing an unverifiable package")
    raw = _read(checksum_path, limits.CHECKSUM_FILE_MAX_BYTES, "CHECKSUM_FILE_MAX_BYTES")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PackageError(f"{checksum_path}: not UTF-8 text (byte {exc.start}); refusing it") from None
    full_hash = sha256_bytes(raw)  # = package_hash(text)
    if name_match.group(1) != full_hash[:NAME_DIGITS]:
        raise PackageError(
            f"{path}: its {CHECKSUM_FILE} hashes to {package_name(full_hash)}, which does not match its name: "
            "the package was changed after it was built, or renamed; refusing it"
        )
    listed = parse_checksums(text, str(checksum_path))
    if render_checksums(listed) != text:
        raise PackageError(f"{checksum_path}: not in canonical form (sorted lines '<sha256>  <name>'); refusing it")
    present = set(os.listdir(path)) - {CHECKSUM_FILE}
    if present - set(listed):
        raise PackageError(f"{path}: files not covered by {CHECKSUM_FILE}: {sorted(present - set(listed))}")
    if set(listed) - present:
        raise PackageError(f"{path}: files listed in {CHECKSUM_FILE} are missing: {sorted(set(listed) - present)}")
    if set(listed) != PACKAGE_FILES:
        raise PackageError(f"{path}: a package holds exactly {sorted(PACKAGE_FILES)}, not {sorted(listed)}")
    manifest_bytes = _read(path / MANIFEST_FILE, limits.MANIFEST_MAX_BYTES, "MANIFEST_MAX_BYTES")
    _check_file(path / MANIFEST_FILE, manifest_bytes, listed[MANIFEST_FILE])
    model_bytes = _read(path / MODEL_FILE, limits.MODEL_FILE_MAX_BYTES, "MODEL_FILE_MAX_BYTES")
    _check_file(path / MODEL_FILE, model_bytes, listed[MODEL_FILE])
    state_bytes = _read(path / STATE_FILE, limits.FEATURE_STATE_MAX_BYTES, "FEATURE_STATE_MAX_BYTES")
    _check_file(path / STATE_FILE, state_bytes, listed[STATE_FILE])
    manifest = _manifest(path, manifest_bytes, listed[MODEL_FILE])
    return VerifiedPackage(
        path=path, hash=full_hash, manifest=manifest, model_bytes=model_bytes, state_bytes=state_bytes
    )


def verify_package(path: str | Path) -> dict[str, Any]:
    """Check a package without loading its model. Returns the manifest; raises PackageError on any mismatch."""
    return verify(path).manifest


@dataclass(frozen=True)
class LoadedPackage:
    path: Path
    hash: str
    manifest: dict[str, Any]
    model: Any
    state: dict[str, Any]


def load_package(path: str | Path) -> LoadedPackage:
    """Verify a package, then load its model and feature state from the verified bytes (never re-read from disk).
    The state is parsed as JSON data only; the builder's serving module (serving/features_<builder>.py) reads it."""
    from flightdelay.modeling.model import loads_model

    checked = verify(path)
    where = checked.path / STATE_FILE
    limits.check_containers(
        checked.state_bytes,
        limits.FEATURE_STATE_MAX_CONTAINERS,
        "FEATURE_STATE_MAX_CONTAINERS",
        str(where),
        PackageError,
    )
    try:
        state = json.loads(checked.state_bytes.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise PackageError(f"{where}: not JSON ({type(exc).__name__}: {str(exc)[:120]}); refusing it") from None
    if not isinstance(state, dict):
        raise PackageError(f"{where}: not a JSON object (it is a {type(state).__name__}); refusing it")
    model = loads_model(checked.model_bytes, str(checked.path / MODEL_FILE))
    return LoadedPackage(path=checked.path, hash=checked.hash, manifest=checked.manifest, model=model, state=state)


def find_package(parent: str | Path) -> Path:
    """The one package directory under `parent` (models/package holds exactly one)."""
    found = sorted(p for p in Path(parent).iterdir() if p.is_dir()) if Path(parent).is_dir() else []
    if len(found) != 1:
        raise PackageError(f"{parent}: expected exactly one package directory, found {[p.name for p in found]}")
    return found[0]
