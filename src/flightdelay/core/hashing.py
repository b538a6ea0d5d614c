"""SHA-256 of bytes, of a file (read in blocks) and of a directory tree: the one place the package hashes content.

Package checksums, the gate's model identity and the stage log's input/output hashes all use these. DVC's own md5
hashes (dvc.lock) are DVC's format and are computed where they are compared (stages/package.py, release/registry.py).
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


def sha256_path(path: str | Path) -> str | None:
    """SHA-256 of a file, or of a directory's sorted (relative path, file hash) list; None if absent."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    if path.is_dir():
        digest = hashlib.sha256()
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f"{file.relative_to(path).as_posix()}\0{sha256_file(file)}\n".encode())
        return digest.hexdigest()
    return None
