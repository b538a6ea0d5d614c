"""Logging for stage entry points: readable lines on the console, JSON lines in logs/<stage>.log.

Logs are not pipeline outputs (logs/ is git-ignored and not declared in dvc.yaml), so the times and hashes in
them never change an output hash.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from pathlib import Path
from typing import Any

CONSOLE = "%(levelname)s %(message)s"
VERBOSE = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class JsonLines(logging.Formatter):
    """One JSON object per record; fields passed as `extra={"event": {...}}` are merged in."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "event", {}) or {})
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(stage: str, log_dir: str | Path = "logs", verbose: bool = False) -> Path:
    """Send records to stderr (readable) and to `log_dir/<stage>.log` (JSON lines, appended)."""
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"{stage}.log"
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        if isinstance(handler, logging.FileHandler):  # a previous configure's log file: release it
            handler.close()
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter(VERBOSE if verbose else CONSOLE))
    console.setLevel(logging.DEBUG if verbose else logging.INFO)
    file_handler = logging.FileHandler(log_file, encoding="utf-8")
    file_handler.setFormatter(JsonLines())
    file_handler.setLevel(logging.DEBUG)
    root.addHandler(console)
    root.addHandler(file_handler)
    root.setLevel(logging.DEBUG)
    # Libraries' DEBUG chatter would bury ours; numba logs ~12,000 DEBUG records compiling the serving kernel.
    for noisy in ("fsspec", "asyncio", "botocore", "s3fs", "urllib3", "matplotlib", "numba"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return log_file
