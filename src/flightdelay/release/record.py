"""The registry record: `registry/<channel>.json` says which package version a release channel holds.

`promote` and `rollback` (release/registry.py, with GTO) write it; the gate and report stages read it. This module
imports nothing from GTO or the promotion code, so a change there reruns no pipeline stage.

A channel (staging, prod) is what GTO calls a stage; the record keeps GTO's key name `stage`, like the tags.
The artifact a record names is params.yaml's `dataset.artifact` (release/registry.py `artifact_name` reads it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flightdelay.core.errors import PipelineError
from flightdelay.core.files import read_json
from flightdelay.core.layout import RECORD_DIR

CHANNELS = ("staging", "prod")  # also in .gto (GTO's stages), which makes GTO refuse any other channel name


class RegistryError(PipelineError):
    """A promotion or rollback that cannot be done, or a record that cannot be read; the message says what to do."""


def record_file(channel: str, root: str | Path = ".") -> Path:
    return Path(root) / RECORD_DIR / f"{channel}.json"


def empty_record(artifact: str, channel: str) -> dict[str, Any]:
    return {"artifact": artifact, "stage": channel, "promoted": None}


def make_record(
    artifact: str, channel: str, version: str, commit: str, tag: str, package: dict[str, Any]
) -> dict[str, Any]:
    return {
        "artifact": artifact,
        "stage": channel,
        "promoted": {"stage": channel, "version": version, "commit": commit, "tag": tag, "package": package},
    }


def record_artifact(path: str | Path) -> str:
    """The artifact name registry/<channel>.json records (what `dvc artifacts get` fetches)."""
    read_record(path)  # a missing or malformed record is refused as read_record refuses it
    return str(read_json(Path(path))["artifact"])


def read_record(path: str | Path) -> dict[str, Any] | None:
    """The promoted version of registry/<channel>.json, or None when nothing is promoted."""
    path = Path(path)
    if not path.exists():
        raise RegistryError(f"{path}: missing; restore it with `git checkout -- {path}` (it says what is promoted)")
    record = read_json(path)
    if not isinstance(record, dict) or set(record) != {"artifact", "stage", "promoted"}:
        raise RegistryError(f"{path}: not a registry record (keys artifact, stage, promoted)")
    return record["promoted"]
