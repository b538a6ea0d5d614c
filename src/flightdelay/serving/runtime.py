"""What the service serves: a verified, canary-checked predictor in a slot that is swapped atomically.

`Deployed` is one loaded package (its Predictor, where it came from, when). `Slot` holds the one being served; a
request reads `slot.current` once when it starts and uses that object to the end, so a swap (deploy, rollback)
never changes the model under a request being answered. `deploy_into` loads a new package beside the serving one, runs
its canary and swaps only if it passes; otherwise the old model stays and the reason is returned. The deploy history
(JSON lines: time, package, hash, version, outcome, reason) is appended on every attempt, and `good_stack` replays it
so `rollback` knows the previous good package. An attempt that fails writes an alert file.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from flightdelay.core.errors import PipelineError
from flightdelay.core.files import to_json, write_json
from flightdelay.release.package_format import verify
from flightdelay.release.record import read_record, record_artifact, record_file

log = logging.getLogger(__name__)


OUTCOMES = ("started", "deployed", "rolled_back", "refused")
# Control characters (C0, DEL, C1) and the Unicode line and paragraph separators: what could start a forged line.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_FILE_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def printable(text: object) -> str:
    """`text` on one line for the text log: each control character escaped as Python writes it ("\\n", "\\x1b"),
    so a caller's package path in a reload request cannot start a forged log line or move the terminal."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))


class DeployError(PipelineError):
    """A deploy, rollback or package lookup that cannot be done; the message says why and what to do."""


class ReferenceLike(Protocol):
    columns: list[str]  # the model inputs it holds a training distribution of, and "prediction"

    def psi(self, column: str, values: pd.Series) -> float: ...


class PredictorLike(Protocol):
    """What the service uses of `flightdelay.serving.predictor.Predictor` (the shared contract of issue 10)."""

    name: str
    package_hash: str
    manifest: dict[str, Any]
    input_schema: Any  # list[InputField]
    table: str  # the main table (dataset.table): the request body's key for the list of rows
    threshold: float

    @property
    def reference(self) -> ReferenceLike: ...  # read-only here, so the predictor's own Reference type fits

    def predict(self, rows: pd.DataFrame) -> pd.DataFrame: ...
    def predict_records(self, records: list[dict[str, Any]], *, checked: bool = False) -> Any: ...  # Scores
    def inline_scores(self, records: list[dict[str, Any]]) -> Any: ...  # Scores, or None: score in the pool
    def features(self, rows: pd.DataFrame) -> pd.DataFrame: ...
    def canary(self) -> None: ...


Loader = Callable[[Path], PredictorLike]


def load_predictor(path: Path, context: Any = None) -> PredictorLike:
    """The real loader: verify the package, then load it safely (a tampered package raises PackageError), scoring
    with `context` (load_context's; None: no context, every row gets the fallback)."""
    verify(path)  # refused here, before the predictor's (heavier) imports; Predictor.load verifies again
    from flightdelay.serving.predictor import Predictor

    predictor: PredictorLike = Predictor.load(path, context)
    return predictor


def load_context(location: str | None) -> Any:
    """The context the service scores with: the validated partitions at `location` (a path or fsspec URL), read
    as each package's feature builder needs them (predictor.ValidatedContext), or None for no context."""
    if not location or location == "none":
        return None
    from flightdelay.serving.predictor import ValidatedContext

    return ValidatedContext(location)


def version_of(predictor: PredictorLike) -> str | None:
    """The package's version: the predictor's own `version` if it has one, else the manifest's."""
    version = getattr(predictor, "version", None) or predictor.manifest.get("version")
    return None if version is None else str(version)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Deployed:
    predictor: PredictorLike
    path: Path
    channel: str | None
    loaded_at: str

    @property
    def version(self) -> str | None:
        return version_of(self.predictor)

    def ref(self) -> dict[str, Any]:
        return {"name": self.predictor.name, "hash": self.predictor.package_hash, "version": self.version}


@dataclass
class Slot:
    """The model being served. `ready` is true once its canary passed; `reason` says why not otherwise."""

    current: Deployed | None = None
    ready: bool = False
    reason: str = "the model is loading"
    lock: threading.Lock = field(default_factory=threading.Lock)  # one deploy at a time


def resolve_package(package: str | None, channel: str | None, root: str | Path = ".") -> Path:
    """The package directory to serve: `package` as given, or the one the release channel's record names. Made
    absolute without following symbolic links: a link is handed on as the link, which verification refuses (as
    `score` and `/admin/reload` refuse it), never swapped for the directory it points to."""
    if package:
        return Path(os.path.abspath(package))
    if not channel:
        raise DeployError("give --package PATH or --stage prod (or staging)")
    promoted = read_record(record_file(channel, root))
    if promoted is None:
        raise DeployError(
            f"{record_file(channel, root)}: nothing is promoted to {channel}; promote a package "
            f"(`flightdelay promote {channel}`) or pass --package models/package/model-<hash>"
        )
    name = promoted["package"]["name"]
    path = Path(os.path.abspath(Path(root, "models", "package", name)))
    if not path.is_dir():
        artifact = record_artifact(record_file(channel, root))
        raise DeployError(
            f"{path}: {channel} holds {name} (version {promoted['version']}), which is not in the workspace; "
            f"check out its commit's package (`dvc artifacts get . {artifact} --stage {channel}`) "
            "or pass --package"
        )
    return path


def refusal_reason(exc: Exception) -> str:
    """Why a package was refused, on one line. A PipelineError (PackageError, CanaryError) says it itself; anything
    else (a package whose data breaks a reader the checks did not foresee) is named by its type, and its traceback
    goes to the log: the package is refused all the same, never served and never a 500."""
    if isinstance(exc, PipelineError):
        return printable(str(exc).strip())
    log.error("loading the package failed unexpectedly", exc_info=exc)
    return printable(f"the package could not be loaded or its canary run ({type(exc).__name__}: {str(exc)[:200]})")


def load_and_check(loader: Loader, path: Path, channel: str | None) -> Deployed:
    """Load a package (verified by the loader) and run its canary; raises PipelineError (PackageError, CanaryError),
    or whatever a package the checks did not foresee makes its readers raise (deploy_into refuses either)."""
    predictor = loader(path)
    predictor.canary()
    return Deployed(predictor=predictor, path=path, channel=channel, loaded_at=now_iso())


# ----------------------------------------------------------------------------------------------------- history


def history_entry(
    outcome: str, path: Path, predictor: PredictorLike | None, reason: str = "", previous: Deployed | None = None
) -> dict[str, Any]:
    return {
        "time": now_iso(),
        "outcome": outcome,
        "package": predictor.name if predictor else path.name,
        "hash": predictor.package_hash if predictor else None,
        "version": None if predictor is None else version_of(predictor),
        "path": str(path),
        "reason": reason,
        "previous": previous.predictor.name if previous else None,
    }


def append_history(path: Path, entry: dict[str, Any]) -> None:
    """One JSON line appended and flushed to disk (a history line is never half-written by a crash mid-line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_history(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            raise DeployError(f"{path}: line {number} is not JSON; fix or remove that line") from None
        if not isinstance(entry, dict) or entry.get("outcome") not in OUTCOMES:
            raise DeployError(f"{path}: line {number} is not a deploy history entry (outcome one of {OUTCOMES})")
        entries.append(entry)
    return entries


def good_stack(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The packages served in turn, oldest first: a start or deploy pushes (unless it is already on top), a
    rollback pops the withdrawn one. A refused attempt changes nothing. The top is what is served now."""
    stack: list[dict[str, Any]] = []
    for entry in entries:
        if entry["outcome"] in ("started", "deployed"):
            if not stack or stack[-1]["hash"] != entry["hash"]:
                stack.append(entry)
        elif entry["outcome"] == "rolled_back":
            if stack:
                stack.pop()
            if not stack or stack[-1]["hash"] != entry["hash"]:
                stack.append(entry)
    return stack


def render_history(entries: list[dict[str, Any]]) -> str:
    if not entries:
        return "no deploys yet\n"
    lines = [f"{'time':<24}  {'outcome':<11}  {'package':<22}  {'version':<8}  reason"]
    for e in entries:
        version = e.get("version") or "-"
        lines.append(f"{e['time']:<24}  {e['outcome']:<11}  {e['package']:<22}  {version:<8}  {e.get('reason', '')}")
    return "\n".join(lines) + "\n"


def write_alert(alerts_dir: Path, entry: dict[str, Any], serving: Deployed | None) -> Path:
    """An alert file for a refused deploy: what was refused, why, and what keeps serving."""
    stamp = entry["time"].replace(":", "").replace("-", "").replace(".", "")
    path = alerts_dir / f"deploy-{stamp}-{_FILE_NAME_UNSAFE.sub('_', entry['package'][:40])}.json"
    alert = {
        "alert": "deploy refused",
        **entry,
        "serving": serving.ref() if serving else None,
        "action": "the service kept its model; fix the package (or its context) and deploy again",
    }
    write_json(path, alert)
    log.error("deploy of %s refused: %s (alert %s)", printable(entry["package"]), printable(entry["reason"]), path)
    return path


@dataclass(frozen=True)
class DeployResult:
    ok: bool
    outcome: str
    entry: dict[str, Any]
    alert: Path | None = None

    def to_json(self) -> str:
        return to_json({"ok": self.ok, "outcome": self.outcome, **self.entry})


def deploy_into(
    slot: Slot,
    loader: Loader,
    path: Path,
    channel: str | None,
    history: Path,
    alerts_dir: Path,
    outcome: str = "deployed",
    expected_hash: str | None = None,
) -> DeployResult:
    """Load `path` beside the serving model, run its canary, swap only if it passes. Blocking (run it in a thread);
    the caller holds `slot.lock`. A refused package (any exception while loading it or running its canary) leaves the
    slot as it was, writes history and an alert.
    `expected_hash` (a rollback: the hash the history recorded) must be the loaded package's full hash."""
    previous = slot.current
    try:
        candidate = load_and_check(loader, path, channel)
        found = candidate.predictor.package_hash
        if expected_hash is not None and found != expected_hash:
            raise DeployError(
                f"{path}: the package there hashes to {found}, the deploy history recorded {expected_hash}; "
                "it is not the package that was served, refusing to roll back to it"
            )
    except Exception as exc:  # the message may hold the caller's path: escaped, never cut at a newline in it
        entry = history_entry("refused", path, None, reason=refusal_reason(exc), previous=previous)
        append_history(history, entry)
        return DeployResult(False, "refused", entry, write_alert(alerts_dir, entry, previous))
    slot.current = candidate  # one reference assignment: requests being answered keep the Deployed they read
    slot.ready, slot.reason = True, ""
    entry = history_entry(outcome, path, candidate.predictor, previous=previous)
    append_history(history, entry)
    was = printable(previous.predictor.name) if previous else None
    log.info("%s %s (was %s)", outcome, printable(candidate.predictor.name), was)
    return DeployResult(True, outcome, entry)


def rollback_target(history: Path) -> dict[str, Any]:
    stack = good_stack(read_history(history))
    if len(stack) < 2:
        raise DeployError(f"{history}: no previous good package to roll back to (the history holds {len(stack)})")
    return stack[-2]
