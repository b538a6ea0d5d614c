"""Size limits for the files `verify`, `promote` and the stages read from a model package (docs/security.md).

These are not params: they protect the reader of a file that may come from anyone, so they do not change with
a run. Each is about ten times what the project's largest real file needs (a hist_gradient_boosting model of
800 iterations is a 2 MB file of 7 MB uncompressed, 3.4 MB of it schema.json; its manifest is under 100 kB).
A file over a limit is refused before it is read any further, with a message naming the limit.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MIB = 1 << 20

# model.skops: a zip archive (skops format)
MODEL_FILE_MAX_BYTES = 64 * MIB  # the file itself
MODEL_UNCOMPRESSED_MAX_BYTES = 256 * MIB  # the sum of its entries' uncompressed sizes, read from the zip directory
MODEL_SCHEMA_MAX_BYTES = 32 * MIB  # schema.json, the entry parsed as JSON
MODEL_MAX_ENTRIES = 100_000  # arrays in the archive (a real model has a few thousand)
MODEL_MAX_RATIO = 200  # uncompressed/compressed size of one entry larger than RATIO_FLOOR_BYTES (deflate's is ~1032)
RATIO_FLOOR_BYTES = 1 * MIB  # smaller entries may compress as well as they like: they cannot hurt
MODEL_SCHEMA_MAX_DEPTH = 200  # nesting of schema.json (a real model's is under 30)

# the package's text files
MANIFEST_MAX_BYTES = 8 * MIB
# feature_state.json: the default data set's is 0.4 MB (tables that grow with the number of distinct keys: at 30x the
# data, benchmarks/generate.py's new keys make it 9.8 MiB, parsed into ~64 MiB of Python objects)
FEATURE_STATE_MAX_BYTES = 64 * MIB
CHECKSUM_FILE_MAX_BYTES = 64 * 1024

# JSON structure: the lists and objects a file may hold, counted as its "[" and "{" bytes before it is parsed (an upper
# bound: a bracket inside a string counts too). Under its byte cap, a file of "[]," parses into ~21 bytes of Python
# objects per byte of text (a 64 MiB feature state took 1.97 GB). Real files need few: the default feature state
# holds 45 (its tables are columns, so the count does not grow with the data: the same at 30x), the manifest 278
# (5,200 per MiB), an HGB schema.json ~3,500 per MiB (4,044 in 1.2 MB; the 3.4 MB 800-iteration model ~12,000).
MODEL_SCHEMA_MAX_CONTAINERS = 500_000  # ~40x the largest real schema.json; ~150 MB of Python objects at most
MANIFEST_MAX_CONTAINERS = 100_000  # ~360x the default manifest (a generic build with many features needs more)
FEATURE_STATE_MAX_CONTAINERS = 100_000  # ~2,000x the default feature state


def over(what: str, size: int, limit: int, name: str) -> str:
    """The refusal message for a size over a limit, naming the limit and where it is set."""
    return (
        f"{what} is {size:,} bytes, over the limit of {limit:,} ({name} in flightdelay/limits.py); refusing to read it"
    )


def read_capped(path: str | Path, limit: int, name: str, error: type[Exception]) -> bytes:
    """A regular file's bytes, refused (as `error`) if it is a link, not a regular file, or over `limit`.

    The file is opened without following a link and without blocking (a FIFO is refused, not waited on), and
    its type and size are checked on the open handle, so it cannot be swapped between the check and the read.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise error(f"{path}: missing") from None
    except OSError as exc:  # ELOOP: a symbolic link; EISDIR and others
        kind = "a symbolic link" if os.path.islink(path) else f"not readable ({exc.strerror})"
        raise error(f"{path}: {kind}; expected a regular file, refusing it") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{path}: not a regular file; refusing it")
        if info.st_size > limit:
            raise error(over(str(path), info.st_size, limit, name))
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew while being read
        raise error(over(str(path), len(data), limit, name))
    return data


def check_containers(data: bytes, limit: int, name: str, what: str, error: type[Exception]) -> None:
    """Refuse (as `error`) JSON text holding more than `limit` lists and objects, before it is parsed: `[` and `{`
    are counted on the bytes (a C loop, ~10 ms per 64 MiB), so a file under its byte cap cannot parse into gigabytes
    of empty containers."""
    count = data.count(b"[") + data.count(b"{")
    if count > limit:
        raise error(
            f"{what} holds {count:,} JSON lists and objects ('[' and '{{' bytes), over the limit of {limit:,} "
            f"({name} in flightdelay/core/limits.py); refusing to parse it"
        )
