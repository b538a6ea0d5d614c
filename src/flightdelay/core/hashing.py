"""SHA-256 of bytes and of a file (read in blocks): the one place the package hashes content.

Package checksums and the gate's model identity use these. DVC's own md5 hashes (dvc.lock) are DVC's format and
are computed where they are compared (stages/package.py, release/registry.py).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

BLOCK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read a block at a time (model files and data partitions can be large)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()
