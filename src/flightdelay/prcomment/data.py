"""The data of the pull-request comment: the schema both sides agree on, and the safe reading of artifact files.

The untrusted PR job (`flightdelay pr-report`) writes `comment-data.json` and `pr.json`; the trusted comment job
(`flightdelay pr-comment`, default branch's code) reads them with `load_comment_data` / `load_pr_info`, which
refuse a file that is not a regular file (a symlink, a folder, a FIFO) or is larger than its cap, JSON with
NaN/Infinity, and anything the schema does not allow: unknown keys, wrong types (strict: no "0.5" for 0.5, no
true for 1), non-finite numbers, names outside `[A-Za-z0-9_.=-]`, strings and lists over their caps.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from flightdelay.core.errors import PipelineError

DATA_FILE = "comment-data.json"
PR_FILE = "pr.json"
SCHEMA_VERSION = 1

# Caps (bytes, characters, items). A real report is a few kB; these leave room and bound the comment's size.
MAX_DATA_BYTES = 512 * 1024
MAX_PR_BYTES = 1024
MAX_NAME = 100
MAX_TEXT = 200
MAX_CHANGES = 200
MAX_RULES = 30
MAX_SLICES = 50
MAX_FILES = 50
MAX_PLOTS = 20
MAX_POINTS = 500

NAME_PATTERN = r"^[A-Za-z0-9_.=-]+$"
PATH_PATTERN = r"^[A-Za-z0-9_.=-]+(/[A-Za-z0-9_.=-]+)*$"
REV_PATTERN = r"^[A-Za-z0-9_.=/~^-]+$"  # a git revision as given: main, origin/main, HEAD~1, a SHA
TITLE_PATTERN = r"^[A-Za-z0-9_.=-]+( [A-Za-z0-9_.=-]+)*$"  # a plot title: words separated by single spaces
SHA_PATTERN = r"^[0-9a-f]{7,40}$"
CURVES = ("roc", "precision_recall", "calibration")

Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN)]
FilePath = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME, pattern=PATH_PATTERN)]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT)]
Number = int | float  # strict: a JSON number, never a string or a bool; finite (allow_inf_nan=False)
Value = bool | int | float | Text | None
Unit = Annotated[float, Field(ge=0.0, le=1.0)]


class ArtifactError(PipelineError):
    """An artifact file cannot be used: the message says which file and why, never what it holds."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class Change(_Strict):
    """One params or metrics key whose value differs between the base and the PR."""

    file: FilePath | None = None  # set when more than one file changed
    name: Name
    base: Value
    pr: Value


class Rule(_Strict):
    rule: Name
    outcome: Literal["pass", "fail", "skipped"]
    value: Number | None = None
    comparison: Literal[">=", "<=", ">", "<", "==", "vs"] | None = None
    threshold: Number | None = None
    note: Text = ""


class Override(_Strict):
    approved_by: Text
    reason: Text
    applied: bool
    note: Text = ""


class Gate(_Strict):
    decision: Literal["pass", "fail", "overridden", "skipped"]
    override: Override | None = None
    rules: Annotated[list[Rule], Field(max_length=MAX_RULES)] = []


class SliceMove(_Strict):
    """One slice (a value of a slice column, e.g. month = 11) whose metric moved."""

    dimension: Name
    value: Name
    rows: Annotated[int, Field(ge=0)] | None
    base: float
    pr: float


class Slices(_Strict):
    metric: Name | None = None
    # Why there is nothing to compare, as a code the renderer turns into a fixed sentence.
    missing: Literal["no_head", "no_base", "no_metric"] | None = None
    moves: Annotated[list[SliceMove], Field(max_length=MAX_SLICES)] = []


Point = Annotated[list[Unit], Field(min_length=2, max_length=2)]  # [x, y]
Points = Annotated[list[Point], Field(min_length=2, max_length=MAX_POINTS)]


class Curve(_Strict):
    """(x, y) points of one curve at the base and in the PR; either may be absent."""

    base: Points | None = None
    pr: Points | None = None


class Base(_Strict):
    rev: Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME, pattern=REV_PATTERN)]
    sha: Annotated[str, StringConstraints(pattern=SHA_PATTERN)]


class CommentData(_Strict):
    version: Literal[1]
    base: Base
    pipeline_failed: bool = False
    uncommitted: Annotated[list[FilePath], Field(max_length=MAX_FILES)] = []
    gate: Gate | None = None
    params: Annotated[list[Change], Field(max_length=MAX_CHANGES)] = []
    metrics: Annotated[list[Change], Field(max_length=MAX_CHANGES)] = []
    slices: Slices = Slices()
    plots: Annotated[
        list[Annotated[str, StringConstraints(max_length=60, pattern=TITLE_PATTERN)]], Field(max_length=MAX_PLOTS)
    ] = []
    curves: dict[Literal["roc", "precision_recall", "calibration"], Curve] = {}


class PrInfo(_Strict):
    number: Annotated[int, Field(ge=1, le=9_999_999_999)]
    head_sha: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{40}$")]


# --- reading untrusted files -----------------------------------------------------------------------------------


def _safe(part: object) -> str:
    """A piece of an error location, reduced to harmless characters (it may be a key the attacker chose)."""
    return re.sub(r"[^A-Za-z0-9_.=-]", "?", str(part))[:40]


def describe(exc: ValidationError, limit: int = 3) -> str:
    """The schema errors in one line: where and what rule, never the offending value."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    parts = [f"{'.'.join(_safe(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in errors[:limit]]
    more = f" (and {len(errors) - limit} more)" if len(errors) > limit else ""
    return "; ".join(parts) + more


def read_artifact_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most max_bytes. Symlinks are refused, not followed (O_NOFOLLOW)."""
    name = path.name
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise ArtifactError(f"{name}: not in the artifact") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a symlink" if stat.S_ISLNK(info.st_mode) else "not a regular file"
        raise ArtifactError(f"{name}: {kind}; refused")
    if info.st_size > max_bytes:
        raise ArtifactError(f"{name}: {info.st_size} bytes, over the {max_bytes}-byte cap; refused")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:  # swapped for a symlink between lstat and open (ELOOP), or unreadable
        raise ArtifactError(f"{name}: cannot be opened ({exc.strerror}); refused") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):  # swapped between lstat and open
            raise ArtifactError(f"{name}: not a regular file; refused")
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ArtifactError(f"{name}: over the {max_bytes}-byte cap; refused")
    return data


def _reject_constant(token: str) -> None:
    raise ValueError(f"{token} is not a finite number")


def parse_json(data: bytes, name: str) -> object:
    """Strict JSON: UTF-8, no NaN/Infinity, no absurd nesting."""
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise ArtifactError(f"{name}: not UTF-8 text") from None
    except RecursionError:
        raise ArtifactError(f"{name}: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError is a ValueError; its message holds no content, only a position
        raise ArtifactError(f"{name}: not valid JSON ({_safe_message(exc)})") from None


def _safe_message(exc: Exception) -> str:
    return re.sub(r"[^A-Za-z0-9_.,:() -]", "?", str(exc))[:120]


def validate_comment_data(raw: object, name: str = DATA_FILE) -> CommentData:
    try:
        return CommentData.model_validate(raw)
    except ValidationError as exc:
        raise ArtifactError(f"{name}: {describe(exc)}") from None


def load_comment_data(path: Path) -> CommentData:
    return validate_comment_data(parse_json(read_artifact_file(path, MAX_DATA_BYTES), path.name), path.name)


def load_pr_info(path: Path) -> PrInfo:
    raw = parse_json(read_artifact_file(path, MAX_PR_BYTES), path.name)
    try:
        return PrInfo.model_validate(raw)
    except ValidationError as exc:
        raise ArtifactError(f"{path.name}: {describe(exc)}") from None
