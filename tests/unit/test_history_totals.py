"""History's leave-own-month-out tables by subtraction (`_KeyTotals`) are the group-by of the other months: exactly
for whole-number sums, to the last bits (and the same every run) for fractional ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flightdelay.modeling import flight_features as FF


def grouped_without(months: list[tuple[str, pd.DataFrame]], target: str, period: str | None) -> dict[str, pd.DataFrame]:
    """The tables as History computed them before the subtraction: every other month's rows grouped anew."""
    out = {}
    for feature, keys in FF.HISTORY_KEYS.items():
        rows = [FF.HistoryPartial.of(p, frame, target).per_feature[feature] for p, frame in months if p != period]
        table = pd.concat(rows, ignore_index=True)
        out[feature] = table.groupby(keys, observed=True)[["sum", "count"]].sum().reset_index()
    return out


def own(months: list[tuple[str, pd.DataFrame]], target: str, period: str | None) -> FF.HistoryPartial | None:
    """A month's own sums, as the features stage computes them again from the month's rows."""
    frames = dict(months)
    return FF.HistoryPartial.of(period, frames[period], target) if period in frames else None


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
    months = random_months(seed, 14, 60, "late", whole=True)
    history = FF.History.collect(months, "late")
    stranger = FF.HistoryPartial.of("2099-01", months[0][1], "late")  # not a training month: nothing left out
    for period, partial in [(p, own(months, "late", p)) for p in [None, "2013-01", "2013-07", "2014-02"]] + [
        (None, stranger)
    ]:
        _, _, tables = history.tables(partial)
        expected = grouped_without(months, "late", period)
        for feature, table in tables.items():
            pd.testing.assert_frame_equal(table.frame, expected[feature], check_exact=True)
            # a key seen only in the month left out is gone, not kept with a count of 0
            assert (table.frame["count"] > 0).all()


@pytest.mark.parametrize("fold", [1, 5, 24])
def test_the_totals_do_not_depend_on_how_many_months_are_folded_at_once(fold):
    months = random_months(6, 14, 50, "late", whole=True)
    every = FF.History.collect(months, "late")
    folded = FF.History.merge((FF.HistoryPartial.of(p, f, "late") for p, f in months), "late", fold=fold)
    for feature in FF.HISTORY_KEYS:
        pd.testing.assert_frame_equal(folded.totals[feature].stats, every.totals[feature].stats, check_exact=True)
        assert folded.totals[feature].months.tolist() == every.totals[feature].months.tolist()


def test_fractional_sums_are_the_group_by_to_the_last_bits_and_the_same_every_run():
    months = random_months(3, 6, 40, "arr_delay", whole=False)
    history = FF.History.collect(months, "arr_delay")
    _, _, tables = history.tables(own(months, "arr_delay", "2013-03"))
    _, _, again = FF.History.collect(months, "arr_delay").tables(own(months, "arr_delay", "2013-03"))
    expected = grouped_without(months, "arr_delay", "2013-03")
    for feature, table in tables.items():
        got, want = table.frame, expected[feature]
        pd.testing.assert_frame_equal(got.drop(columns="sum"), want.drop(columns="sum"), check_exact=True)
        assert np.allclose(got["sum"], want["sum"], rtol=1e-12, atol=1e-9)
        pd.testing.assert_frame_equal(got, again[feature].frame, check_exact=True)


def test_a_month_given_twice_is_refused():
    months = random_months(4, 3, 30, "late", whole=True)
    with pytest.raises(ValueError, match="training month 2013-02 given twice"):
        FF.History.collect([*months, months[1]], "late")


def test_apply_leaves_out_the_frames_own_month():
    months = random_months(5, 4, 50, "late", whole=True)
    history = FF.History.collect(months, "late")
    period, frame = months[2]
    applied = history.apply(frame, smoothing=0.0, exclude_period=period)
    _, _, tables = history.tables(own(months, "late", period))
    _, _, every = history.tables(None)
    kept = FF.HistoryTable(FF.HISTORY_KEYS["hist_dest"], tables["hist_dest"].frame)
    found = kept.index.lookup(frame)
    rates = (kept.frame["sum"] / kept.frame["count"]).to_numpy()
    assert np.allclose(applied["hist_dest"].to_numpy()[found >= 0], rates[found[found >= 0]])
    assert not tables["hist_dest"].frame.equals(every["hist_dest"].frame)  # the month's own rows did count
