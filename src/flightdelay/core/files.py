"""File I/O shared by the stage entry points: atomic writes, stable JSON, Parquet.

Every output is written to a temporary sibling and moved into place with `os.replace`, so a stage killed
mid-write never leaves a file that looks complete. Directory outputs are assembled in a temporary directory
and swapped in whole.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flightdelay.core.errors import DataError, PipelineError

if TYPE_CHECKING:
    import pandas as pd

# numpy and pandas are imported only by the functions that read or write Parquet: a stage that writes only JSON
# and text (gate, report) then starts without them, about half a CPU second per process (docs/benchmarks.md).


def remove_leftovers(path: Path) -> None:
    """Remove temporary siblings of `path` left by a run that was killed before it could clean up.

    Safe because stages run one at a time under DVC's repository lock.
    """
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
    shutil.rmtree(path.with_name(f".{path.name}.old"), ignore_errors=True)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success move it onto `path`, on error remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)  # mkstemp makes files private; outputs are ordinary files
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary directory; on success it replaces `path` whole, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _jsonable(value: Any, digits: int) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, digits) for v in value]
    numpy = sys.modules.get("numpy")  # a numpy scalar exists only once numpy is imported
    if numpy is not None and isinstance(value, numpy.generic):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        return round(value, digits)
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(value, pandas.Timestamp):
        return value.isoformat()
    return value


def to_json(value: Any, digits: int = 6) -> str:
    """Stable JSON text: floats rounded, NaN as null, a trailing newline; key order as given."""
    return json.dumps(_jsonable(value, digits), indent=2, ensure_ascii=False) + "\n"


def write_json(path: str | Path, value: Any, digits: int = 6) -> None:
    write_text(path, to_json(value, digits))


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_parquet(frame: pd.DataFrame, path: str | Path) -> None:
    """Parquet without the index; identical frames give identical bytes."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False, engine="pyarrow", compression="zstd")


def write_parquet_into(frame: pd.DataFrame, path: Path) -> None:
    """Write Parquet into a directory that is itself being built atomically (see `atomic_dir`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False, engine="pyarrow", compression="zstd")


def read_parquet(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    import pandas as pd

    return pd.read_parquet(path, columns=columns, engine="pyarrow")


def partition_files(directory: str | Path) -> list[Path]:
    """The `YYYY-MM.parquet` files of a partitioned table directory, in month order."""
    return sorted(Path(directory).glob("????-??.parquet"))


def window_partitions(directory: Path, months: Sequence[str]) -> dict[str, Path]:
    """The partitions of a table (`YYYY-MM.parquet` in `directory`) by month; a month of features.split with none
    is a DataError that says where a month goes missing and what to change."""
    by_period = {f.stem: f for f in partition_files(directory)}
    missing = [p for p in months if p not in by_period]
    if missing:
        has = f"{len(by_period)} months, {min(by_period)} to {max(by_period)}" if by_period else "no partitions"
        raise DataError(
            f"features: months {', '.join(missing)} of features.split are not in {directory} (it has {has}): "
            "ingest.window leaves them out, or the raw data has no file for them (ingest logs each month of the "
            "window without one); add the files, widen ingest.window or change features.split, then `dvc repro`"
        )
    return by_period


def split_files(directory: str | Path) -> list[Path]:
    """The partitions of a split (data/processed/train or test), in month order; none is an error."""
    files = partition_files(directory)
    if not files:
        raise PipelineError(f"{directory}: no partitions; run the features stage first")
    return files


def read_split(directory: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """All partitions of a split (data/processed/train or test), optionally only some columns."""
    import pandas as pd

    return pd.concat([read_parquet(f, columns=columns) for f in split_files(directory)], ignore_index=True)


def files_and_bytes(path: str | Path) -> dict[str, int] | None:
    """How many files a path holds (1 for a file, every file under a directory) and their bytes; None when it is
    not on this machine's disk. What a stage log says of its inputs and outputs: DVC hashes their content (dvc.lock),
    so the log does not read them all again."""
    path = Path(path)
    if path.is_file():
        return {"files": 1, "bytes": path.stat().st_size}
    if path.is_dir():
        sizes = [p.stat().st_size for p in path.rglob("*") if p.is_file()]
        return {"files": len(sizes), "bytes": sum(sizes)}
    return None
