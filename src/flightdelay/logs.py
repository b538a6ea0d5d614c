"""Logging for stage entry points: a console line per event and the same lines in logs/<stage>.log.

Logs are not pipeline outputs (logs/ is git-ignored and not declared in dvc.yaml), so timings in them never
change an output hash.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure(stage: str, log_dir: str | Path = "logs", verbose: bool = False) -> Path:
    """Send log records to stderr and to `log_dir/<stage>.log` (appended). Returns the log file path."""
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"{stage}.log"
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        if isinstance(handler, logging.FileHandler):  # a previous configure's log file: release it
            handler.close()
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(levelname)s %(message)s" if not verbose else FORMAT))
    file_handler = logging.FileHandler(log_file, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(console)
    root.addHandler(file_handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    return log_file


@contextmanager
def timed(logger: logging.Logger, what: str) -> Iterator[None]:
    """Log how long the block took."""
    start = time.perf_counter()
    yield
    logger.info("%s in %.1fs", what, time.perf_counter() - start)
