"""History's leave-own-month-out tables by subtraction (`_KeyTotals`) are the group-by of the other months, exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flightdelay.modeling import flight_features as FF


def grouped_without(history: FF.History, period: str | None) -> dict[str, pd.DataFrame]:
    """The tables as History computed them before the subtraction: every other month's rows grouped anew."""
    out = {}
    for feature, keys in FF.HISTORY_KEYS.items():
        table = history.per_period[feature]
        table = table[table["period"] != period]
        out[feature] = table.groupby(keys, observed=True)[["sum", "count"]].sum().reset_index()
    return out


def random_months(seed: int, months: int, rows: int, target: str, whole: bool) -> list[tuple[str, pd.DataFrame]]:
    """Months of random flights over a few keys; some keys appear in one month only."""
    rng = np.random.default_rng(seed)
    out = []
    for m in range(months):
        dests = rng.choice(["ORD", "LAX", "ATL", "SFO", f"X{m}"], rows)  # X<m>: only this month
        value = rng.integers(0, 2, rows).astype("float64") if whole else rng.normal(10.0, 30.0, rows)
        frame = pd.DataFrame(
            {
                "origin": pd.array(rng.choice(["EWR", "JFK"], rows), dtype="string"),
                "dest": pd.array(dests, dtype="string"),
                "carrier": pd.array(rng.choice(["UA", "DL", "B6"], rows), dtype="string"),
                "dep_hour": pd.array(rng.integers(5, 8, rows), dtype="int16"),
                "flight": pd.array(rng.integers(1, 6, rows), dtype="Int64"),
                "tailnum": pd.array(
                    np.where(rng.random(rows) < 0.1, None, rng.choice(["N1", "N2", "N3"], rows)), dtype="string"
                ),
                target: value,
            }
        )
        out.append((f"{2013 + m // 12}-{m % 12 + 1:02d}", frame))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_whole_number_sums_subtract_to_the_group_by_of_the_other_months(seed):
    history = FF.History.collect(random_months(seed, 14, 60, "late", whole=True), "late")
    assert all(totals is not None for totals in history._totals.values())  # the subtraction path is taken
    for period in [None, "2013-01", "2013-07", "2014-02", "2099-01"]:
        _, _, tables = history.tables(period)
        expected = grouped_without(history, period)
        for feature, table in tables.items():
            pd.testing.assert_frame_equal(table.frame, expected[feature], check_exact=True)
            # a key seen only in the month left out is gone, not kept with a count of 0
            assert (table.frame["count"] > 0).all()


def test_fractional_sums_are_grouped_anew_so_the_floats_are_the_same():
    history = FF.History.collect(random_months(3, 6, 40, "arr_delay", whole=False), "arr_delay")
    assert all(totals is None for totals in history._totals.values())
    _, _, tables = history.tables("2013-03")
    expected = grouped_without(history, "2013-03")
    for feature, table in tables.items():
        pd.testing.assert_frame_equal(table.frame, expected[feature], check_exact=True)


def test_a_period_given_twice_is_left_out_whole():
    months = random_months(4, 3, 30, "late", whole=True)
    history = FF.History.collect([*months, months[1]], "late")  # 2013-02 twice
    _, _, tables = history.tables("2013-02")
    expected = grouped_without(history, "2013-02")
    for feature, table in tables.items():
        pd.testing.assert_frame_equal(table.frame, expected[feature], check_exact=True)
