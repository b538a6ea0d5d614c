"""Row counts that ingest and validate keep per table (`counts.json` in their output folders)."""

from __future__ import annotations


def total_rows(counts: dict[str, dict[str, int]]) -> dict[str, int]:
    """Rows in, passed on and quarantined over all tables (for the stage's log)."""
    return {
        "rows_in": sum(c["rows_in"] for c in counts.values()),
        "rows_out": sum(c["rows_passed"] for c in counts.values()),
        "rows_quarantined": sum(c["rows_quarantined"] for c in counts.values()),
    }
