"""Promotion and rollback of model packages, recorded in git with GTO tags.

dvc.yaml's `artifacts:` section declares the artifact (params.yaml `dataset.artifact`, here `flight-delay`, the
`models/package` directory; `artifact_name` reads it and checks that dvc.yaml declares the same);
versions and stages are annotated git tags written by GTO, which DVC itself reads
(`dvc artifacts get . flight-delay --stage prod`):

- `flight-delay@v0.0.3`    registers the commit that holds a package as a version;
- `flight-delay#prod#7`    assigns the stage `prod` to a version (a promotion);
- `flight-delay#prod!#8`   withdraws a version from a stage (the first half of a rollback).

Each tag records who (the git identity of the person who ran the command) and when. Exactly one version holds
a stage at a time, so `gto show`, `dvc artifacts get --stage` and `python -m flightdelay history` agree.

Rollback withdraws the current version and assigns the stage again to the version before it. Promotions
stack up and rollbacks pop them: after v1, v2, v3 and two rollbacks, prod is v1 (never the withdrawn v3).

The gate compares new models with the one in prod. Tags are not files, so DVC cannot see them change: each
promotion and rollback also writes `registry/<stage>.json` (the version, its commit and the package summary
from `reports/package.json` at that commit) and commits it. That file is the gate stage's dependency.

Promotions and rollbacks hold a lock (`flightdelay-registry.lock` in the repository's common git directory, so
every worktree shares it) from their first check to their commit: a second one at the same time is refused
before it checks anything. If a step fails midway, what was done (new tags, the record file) is undone.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import logging
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec

import yaml

from flightdelay.core.config import load_params
from flightdelay.core.contracts import GateDecision
from flightdelay.core.files import to_json
from flightdelay.core.layout import DVC_LOCK, GATE_FILE, PACKAGE_POINTER, PARAMS_FILE
from flightdelay.core.layout import PACKAGE_DIR as PACKAGE_PARENT
from flightdelay.release.record import CHANNELS, RegistryError, make_record, record_file

log = logging.getLogger(__name__)

_COUNTER = re.compile(r"#(\d+)\Z")
LOCK_FILE = "flightdelay-registry.lock"
_P = ParamSpec("_P")


@contextlib.contextmanager
def _gto_errors() -> Iterator[None]:
    """GTO's own errors (unknown stage, tag exists, ...) as a message rather than a traceback."""
    from gto.exceptions import GTOException

    try:
        yield
    except GTOException as exc:
        raise RegistryError(f"gto: {exc}") from None


# ------------------------------------------------------------------------------------------------ git


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RegistryError(f"git {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def show_json(repo: Path, commit: str, path: str) -> dict[str, Any] | None:
    """A JSON file as committed at `commit`, or None when it is not there."""
    proc = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=repo, capture_output=True, text=True, check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


# ------------------------------------------------------------------------------------------------ lock


def lock_path(repo: Path) -> Path:
    """The registry lock: in the common git directory, shared by every worktree of the repository."""
    common = Path(_git(repo, "rev-parse", "--git-common-dir").strip())
    return (common if common.is_absolute() else repo / common) / LOCK_FILE


def _holder(fd: int) -> str:
    """Who holds the lock, from what the holder wrote in the lock file."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return f"pid {int(info['pid'])} since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that is starting"


@contextlib.contextmanager
def registry_lock(repo: Path) -> Iterator[None]:
    """Hold the registry lock, or refuse at once if another promotion or rollback holds it.

    An advisory `flock` on the lock file: the system releases it when its holder exits, killed or not, so a
    lock is never stale. The file stays (removing a locked file would let two processes lock two files); the
    holder writes its pid and start time in it for the message the loser gets.
    """
    import fcntl  # POSIX only, like the rest of the toolchain here (git hooks, make)

    path = lock_path(repo)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RegistryError(
                f"another promotion is running (lock {path} held by {_holder(fd)}); try again when it finishes"
            ) from None
        since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "since": since}).encode("utf-8"), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock


def _tags(repo: Path) -> set[str]:
    return set(_git(repo, "tag", "--list").split())


@contextlib.contextmanager
def _undo_on_failure(repo: Path, channel: str) -> Iterator[None]:
    """If the operation fails before its commit, delete the tags it made and restore the channel's record file."""
    tags = _tags(repo)
    head = _git(repo, "rev-parse", "HEAD").strip()
    path = record_file(channel, repo)

    def content() -> bytes | None:
        return path.read_bytes() if path.exists() else None

    saved = content()
    try:
        yield
    except BaseException:
        new_tags = sorted(_tags(repo) - tags)
        if _git(repo, "rev-parse", "HEAD").strip() != head or (not new_tags and content() == saved):
            raise  # the commit, the last step, was made (the change is whole), or nothing was changed yet
        with contextlib.suppress(RegistryError, OSError):  # never hide the error that made us undo
            for tag in new_tags:
                _git(repo, "tag", "--delete", tag)
            if saved is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(saved)
            _git(repo, "reset", "--quiet", "--", str(path.relative_to(repo)))  # the checks found the index clean
        log.warning("undid the unfinished change: deleted tags %s, restored %s", new_tags or "(none)", path)
        raise


def _locked(
    operation: Callable[Concatenate[str | Path, str, _P], dict[str, Any]],
) -> Callable[Concatenate[str | Path, str, _P], dict[str, Any]]:
    """Run a registry change under the registry lock, undoing it if it fails midway."""

    @functools.wraps(operation)
    def locked(repo: str | Path, channel: str, *args: _P.args, **kwargs: _P.kwargs) -> dict[str, Any]:
        with registry_lock(Path(repo)), _undo_on_failure(Path(repo), channel):
            return operation(repo, channel, *args, **kwargs)

    return locked


# ------------------------------------------------------------------------------------------------ events


@dataclass(frozen=True)
class Event:
    """One GTO stage tag (GTO's word for a channel): an assignment (promotion) or an unassignment (withdrawal)."""

    number: int
    tag: str
    kind: str  # "assignment" | "unassignment"
    channel: str
    version: str
    commit: str
    author: str
    author_email: str
    timestamp: str
    message: str


def artifact_name(repo: Path) -> str:
    """The artifact GTO tags and DVC fetches: params.yaml `dataset.artifact`, which dvc.yaml's `artifacts:` must
    declare (its one entry; `new-dataset` renames both), so a fork's tags carry its own name."""
    artifact = load_params(repo / PARAMS_FILE).dataset.artifact
    dvc_file = repo / "dvc.yaml"
    try:
        declared = list((yaml.safe_load(dvc_file.read_text(encoding="utf-8")) or {}).get("artifacts") or {})
    except (OSError, yaml.YAMLError) as exc:
        raise RegistryError(f"{dvc_file}: cannot read its `artifacts:` section ({exc})") from None
    if declared != [artifact]:
        raise RegistryError(
            f"{dvc_file}: `artifacts:` declares {declared or 'nothing'}, but {PARAMS_FILE} dataset.artifact is "
            f"{artifact!r}: name the one entry under `artifacts:` {artifact} (`dvc artifacts get` reads it)"
        )
    return artifact


def _gto_events(repo: Path, artifact: str) -> list[dict[str, Any]]:
    from gto import api

    with _gto_errors():
        return list(api.history(str(repo), artifact))


def events_of(raw: list[dict[str, Any]], channel: str) -> list[Event]:
    """The channel's assignments and unassignments, oldest first (by the tag's counter, which GTO increments)."""
    out = []
    for e in raw:
        if e["event"] not in ("assignment", "unassignment") or e["stage"] != channel:
            continue
        match = _COUNTER.search(e["ref"])
        if not match:
            continue
        out.append(
            Event(
                number=int(match.group(1)),
                tag=e["ref"],
                kind=e["event"],
                channel=channel,
                version=e["version"],
                commit=e["commit"],
                author=e["author"] or "",
                author_email=e["author_email"] or "",
                timestamp=e["timestamp"].isoformat(),
                message=(e["message"] or "").strip(),
            )
        )
    return sorted(out, key=lambda ev: ev.number)


def stack(events: list[Event]) -> list[str]:
    """Versions that held the channel, oldest first; the last is current. A promotion pushes, a withdrawal
    removes the withdrawn version, so rolling back never returns to a version that was rolled back."""
    versions: list[str] = []
    for ev in events:
        if ev.kind == "assignment":
            if not versions or versions[-1] != ev.version:
                versions.append(ev.version)
        elif ev.version in versions:
            del versions[len(versions) - 1 - versions[::-1].index(ev.version)]
    return versions


def _semver(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))


def registered(raw: list[dict[str, Any]]) -> dict[str, str]:
    """Registered version -> commit."""
    return {e["version"]: e["commit"] for e in raw if e["event"] == "registration"}


# ------------------------------------------------------------------------------------------------ operations


def _package_at(repo: Path, commit: str) -> dict[str, Any]:
    package = show_json(repo, commit, PACKAGE_POINTER)
    if package is None:
        raise RegistryError(f"commit {commit[:12]} has no {PACKAGE_POINTER}: it holds no model package")
    return package


def _verify_workspace_package(repo: Path, package: dict[str, Any], commit: str) -> None:
    from flightdelay.release.package_format import verify

    path = repo / PACKAGE_PARENT / package["name"]
    if not path.is_dir():
        raise RegistryError(
            f"{path}: the package named in {PACKAGE_POINTER} is not in the workspace; run `dvc checkout` "
            "(or `dvc pull`) first, so it can be verified before promotion"
        )
    verified = verify(path)
    if verified.hash != package.get("hash"):
        raise RegistryError(
            f"{path}: its hash {verified.hash} is not the one {PACKAGE_POINTER} records at {commit[:12]} "
            f"({package.get('hash')}); refusing it"
        )
    check_package_matches_lock(repo, commit)


def dvc_dir_hash(path: Path) -> str:
    """The hash DVC gives a directory (`<md5>.dir`), computed by DVC's own library, writing nothing."""
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db import HashFileDB
    from dvc_objects.fs import MemoryFileSystem
    from dvc_objects.fs.local import LocalFileSystem

    odb = HashFileDB(MemoryFileSystem(), "/flightdelay-promote")
    _, _, obj = build(odb, str(path), LocalFileSystem(), "md5", dry_run=True)
    return str(obj.hash_info.value)


def check_package_matches_lock(repo: Path, commit: str) -> None:
    """Refuse a workspace `models/package` that is not the one `dvc.lock` records at `commit`: a package
    changed after `dvc repro` (even into another self-consistent package) is never promoted."""
    proc = subprocess.run(
        ["git", "show", f"{commit}:{DVC_LOCK}"], cwd=repo, capture_output=True, text=True, check=False
    )
    try:
        lock = yaml.safe_load(proc.stdout) if proc.returncode == 0 else None
    except yaml.YAMLError:
        lock = None
    channels = lock.get("stages") if isinstance(lock, dict) else None
    outs = (channels or {}).get("package", {}).get("outs", []) if isinstance(channels, dict) else []
    recorded = next((o.get("md5") for o in outs if isinstance(o, dict) and o.get("path") == PACKAGE_PARENT), None)
    if not recorded:
        raise RegistryError(
            f"{DVC_LOCK} at {commit[:12]} records no {PACKAGE_PARENT} output of the package stage, so the package "
            "cannot be matched with the run that made it; run `dvc repro` and commit dvc.lock"
        )
    actual = dvc_dir_hash(repo / PACKAGE_PARENT)
    if actual != recorded:
        raise RegistryError(
            f"{PACKAGE_PARENT} in the workspace (DVC hash {actual}) is not what {DVC_LOCK} records at {commit[:12]} "
            f"({recorded}): it was changed after `dvc repro`; run `dvc checkout {PACKAGE_PARENT}` and try again"
        )


def _check_gate(repo: Path, commit: str, label: str) -> None:
    raw = show_json(repo, commit, GATE_FILE)
    if raw is None or not GateDecision.from_json(raw, f"{GATE_FILE} at {label}").packageable:
        raise RegistryError(f"the gate did not pass at {label} ({GATE_FILE}): a failed model is never promoted")


def _find_version_of(repo: Path, raw: list[dict[str, Any]], package_name: str) -> str | None:
    for version, commit in sorted(registered(raw).items(), key=lambda kv: _semver(kv[0])):
        found = show_json(repo, commit, PACKAGE_POINTER)
        if found is not None and found.get("name") == package_name:
            return version
    return None


def _check_channel(channel: str) -> None:
    if channel not in CHANNELS:
        raise RegistryError(f"unknown channel {channel!r}; the channels are {list(CHANNELS)} (.gto)")


def _write_and_commit(repo: Path, record: dict[str, Any], subject: str) -> None:
    path = record_file(record["stage"], repo)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_json(record), encoding="utf-8")
    rel = str(path.relative_to(repo))
    _git(repo, "add", "--", rel)
    _git(repo, "commit", "--quiet", "-m", subject, "--", rel)


def _next_second() -> None:
    """Tag times have one-second resolution and DVC orders a channel's tags by time: make the next tag later."""
    time.sleep(1.0 - (time.time() % 1.0) + 0.01)


@_locked
def promote(repo: str | Path, channel: str, version: str | None = None, reason: str = "") -> dict[str, Any]:
    """Assign `channel` to a version: the package committed at HEAD (registered as a new version if needed),
    or an already registered `version`. Returns the registry record written and committed."""
    from gto import api

    repo = Path(repo)
    _check_channel(channel)
    if _git(repo, "status", "--porcelain", "--untracked-files=no").strip():
        raise RegistryError("the working tree has uncommitted changes: commit them first (a version is a commit)")
    artifact = artifact_name(repo)
    raw = _gto_events(repo, artifact)
    if version is None:
        head = _git(repo, "rev-parse", "HEAD").strip()
        package = _package_at(repo, head)
        _check_gate(repo, head, "HEAD")
        _verify_workspace_package(repo, package, head)
        version = _find_version_of(repo, raw, package["name"])
        if version is None:
            message = f"register {artifact} {package['name']} (gate: {package['gate']['decision']})"
            with _gto_errors():
                version = api.register(str(repo), artifact, "HEAD", message=message).version
            raw = _gto_events(repo, artifact)
            log.info("registered %s as %s at %s", package["name"], version, head[:12])
    versions = registered(raw)
    if version not in versions:
        raise RegistryError(f"{artifact} has no version {version}; registered: {sorted(versions, key=_semver)}")
    commit = versions[version]
    package = _package_at(repo, commit)
    _check_gate(repo, commit, version)
    if (repo / PACKAGE_PARENT / package["name"]).is_dir():  # a version's files are verified whenever present
        _verify_workspace_package(repo, package, commit)
    current = stack(events_of(raw, channel))
    if current and current[-1] == version:
        raise RegistryError(f"{version} ({package['name']}) is already in {channel}")
    if current and _semver(version) < _semver(current[-1]):
        raise RegistryError(
            f"{version} is older than {current[-1]}, which is in {channel}: "
            f"use `python -m flightdelay rollback {channel}`"
        )
    text = f"promote {artifact} {version} ({package['name']}) to {channel}" + (f": {reason}" if reason else "")
    with _gto_errors():
        api.assign(str(repo), artifact, channel, version=version, message=text, force=True)
    tag = _latest_tag(repo, artifact, channel, version)
    record = make_record(artifact, channel, version, commit, tag, package)
    _write_and_commit(repo, record, text)
    log.info("%s (%s) is now in %s (tag %s)", version, package["name"], channel, tag)
    return record


def _latest_tag(repo: Path, artifact: str, channel: str, version: str) -> str:
    events = [
        e for e in events_of(_gto_events(repo, artifact), channel) if e.kind == "assignment" and e.version == version
    ]
    return events[-1].tag


@_locked
def rollback(repo: str | Path, channel: str, reason: str = "") -> dict[str, Any]:
    """Withdraw the version in `channel` and assign the channel again to the version before it."""
    from gto import api

    repo = Path(repo)
    _check_channel(channel)
    if _git(repo, "status", "--porcelain", "--untracked-files=no").strip():
        raise RegistryError("the working tree has uncommitted changes: commit them first")
    artifact = artifact_name(repo)
    raw = _gto_events(repo, artifact)
    current = stack(events_of(raw, channel))
    if len(current) < 2:
        what = f"only {current[-1]} has been" if current else "nothing has been"
        raise RegistryError(f"nothing to roll back to: {what} promoted to {channel}")
    bad, target = current[-1], current[-2]
    commit = registered(raw)[target]
    package = _package_at(repo, commit)
    why = f": {reason}" if reason else ""
    text = f"rollback {artifact} {channel} from {bad} to {target} ({package['name']}){why}"
    with _gto_errors():
        api.unassign(  # GTO's word for a channel is stage
            str(repo), artifact, stage=channel, version=bad, message=f"rollback {channel}: withdraw {bad}{why}"
        )
        _next_second()
        api.assign(str(repo), artifact, channel, version=target, message=text, force=True)
    record = make_record(artifact, channel, target, commit, _latest_tag(repo, artifact, channel, target), package)
    _write_and_commit(repo, record, text)
    log.info("%s rolled back from %s to %s (%s)", channel, bad, target, package["name"])
    return record


def history(repo: str | Path, channel: str) -> list[dict[str, Any]]:
    """Every promotion, rollback and withdrawal of `channel`, newest first: when, who, what and which package."""
    repo = Path(repo)
    _check_channel(channel)
    events = events_of(_gto_events(repo, artifact_name(repo)), channel)
    current = stack(events)
    rows = []
    for ev in reversed(events):
        package = show_json(repo, ev.commit, PACKAGE_POINTER) or {}
        if ev.kind == "unassignment":
            action = "withdraw"
        else:
            action = "rollback" if ev.message.startswith("rollback") else "promote"
        rows.append(
            {
                "when": ev.timestamp,
                "who": f"{ev.author} <{ev.author_email}>",
                "action": action,
                "version": ev.version,
                "package": package.get("name"),
                "package_hash": package.get("hash"),
                "commit": ev.commit,
                "tag": ev.tag,
                "message": ev.message,
            }
        )
    if rows and current:
        for row in rows:
            if row["action"] != "withdraw" and row["version"] == current[-1]:
                row["current"] = True
                break
    return rows


def render_history(artifact: str, channel: str, rows: list[dict[str, Any]]) -> str:
    if not rows:
        return f"nothing has been promoted to {channel}\n"
    lines = [f"{artifact} {channel} history, newest first:"]
    for r in rows:
        mark = "  <- current" if r.get("current") else ""
        lines.append(
            f"  {r['when']}  {r['action']:<8}  {r['version']:<8}  {r['package'] or '?'}  commit {r['commit'][:12]}  "
            f"by {r['who']}{mark}"
        )
    return "\n".join(lines) + "\n"
