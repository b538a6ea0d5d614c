"""flightdelay.stages.drift: PSI, fixed training bins, KS and chi-squared, ordering and the readable report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from flightdelay.core.config import DriftParams
from flightdelay.core.errors import PipelineError
from flightdelay.core.value_counts import NumberCounts
from flightdelay.stages.drift import (
    SplitCounts,
    _ks,
    bin_counts,
    categorical_counts,
    compare,
    compare_categorical,
    compare_counts,
    compare_numeric,
    numeric_counts,
    psi,
    quantile_edges,
    render_markdown,
    split_counts,
    top_categories,
)

DP = DriftParams(bins=4, max_categories=2, psi_threshold=0.2, p_value=0.01, expected=("month",))


def test_psi_of_identical_shares_is_zero():
    assert psi(np.array([0.25, 0.25, 0.5]), np.array([0.25, 0.25, 0.5])) == 0.0


def test_psi_matches_the_formula():
    r, c = np.array([0.5, 0.5]), np.array([0.2, 0.8])
    expected = (0.2 - 0.5) * np.log(0.2 / 0.5) + (0.8 - 0.5) * np.log(0.8 / 0.5)
    assert psi(r, c) == pytest.approx(expected)
    assert psi(r, c) == pytest.approx(psi(c, r))  # symmetric


def test_psi_of_an_empty_bin_is_large_but_finite():
    value = psi(np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    assert np.isfinite(value)
    assert value > 10


def test_quantile_edges_are_fixed_from_training_and_deduplicated():
    assert quantile_edges(np.arange(1.0, 101.0), 4) == pytest.approx([25.75, 50.5, 75.25])
    # a binary feature collapses to its distinct values
    assert quantile_edges(np.array([0.0, 0.0, 0.0, 1.0, 1.0]), 4) == [0.0, 1.0]
    assert quantile_edges(np.array([np.nan, np.nan]), 4) == []


def test_numeric_counts_bins_are_left_closed_with_a_missing_bin():
    counts, missing = numeric_counts(np.array([-1.0, 0.0, 0.5, 1.0, 7.0, np.nan]), [0.0, 1.0])
    # below 0 | [0, 1) | 1 and up
    assert counts.tolist() == [1, 2, 2]
    assert missing == 1


def test_top_categories_by_count_then_name():
    values = pd.Series(["b", "a", "c", "c", "b", None, "d"], dtype="string")
    assert top_categories(values, 2) == ["b", "c"]
    assert top_categories(values, 10) == ["b", "c", "a", "d"]


def test_categorical_counts_pool_unknown_and_missing():
    known, other, missing = categorical_counts(pd.Series(["a", "x", "a", None, "y"], dtype="string"), ["a", "b"])
    assert known.tolist() == [2, 0]
    assert (other, missing) == (2, 1)


def test_a_shifted_numeric_feature_is_over_threshold():
    rng = np.random.default_rng(0)
    record = compare_numeric("temp", rng.normal(0, 1, 2000), rng.normal(1.5, 1, 2000), DP)
    assert record.over_threshold
    assert record.test == "ks"
    assert record.statistic > 0.4
    assert record.p_value < 1e-6
    assert len(record.reference.edges) == 3
    assert sum(record.reference.frequencies) + record.reference.missing == pytest.approx(1.0)


def test_the_same_distribution_is_not_over_threshold():
    rng = np.random.default_rng(1)
    record = compare_numeric("temp", rng.normal(0, 1, 2000), rng.normal(0, 1, 2000), DP)
    assert not record.over_threshold
    assert record.psi < 0.05


def test_a_few_noisy_rows_do_not_count_even_with_a_large_psi():
    # Three rows cannot show a shift: PSI is large, the test does not reject, so it is not over threshold.
    record = compare_numeric("x", np.arange(100.0), np.array([5.0, 95.0, 96.0]), DP)
    assert record.psi >= DP.psi_threshold
    assert record.p_value > DP.p_value
    assert not record.over_threshold


def test_missing_values_shift_counts_as_drift():
    reference = np.arange(1000.0)
    current = np.where(np.arange(1000) % 2 == 0, np.nan, np.arange(1000.0))
    record = compare_numeric("x", reference, current, DP)
    assert record.current.missing == pytest.approx(0.5)
    assert record.reference.missing == 0.0
    assert record.psi > 1


def test_categorical_feature_with_a_new_category_is_over_threshold():
    reference = pd.Series(["UA"] * 500 + ["AA"] * 400 + ["DL"] * 100, dtype="string")
    current = pd.Series(["UA"] * 300 + ["ZZ"] * 700, dtype="string")
    record = compare_categorical("carrier", reference, current, DP)
    assert record.reference.categories == ["UA", "AA"]  # max_categories=2; DL pooled as other
    assert record.reference.other == pytest.approx(0.1)
    assert record.current.other == pytest.approx(0.7)
    assert record.test == "chi2"
    assert record.over_threshold


def test_compare_orders_features_and_excludes_expected_ones_from_the_count():
    rng = np.random.default_rng(2)
    n = 1500
    reference = pd.DataFrame(
        {
            "month": rng.integers(1, 11, n),
            "temp": rng.normal(60, 10, n),
            "dist": rng.normal(1000, 100, n),
            "carrier": pd.array(rng.choice(["UA", "AA"], n), dtype="string"),
        }
    )
    current = pd.DataFrame(
        {
            "month": np.full(n, 12),
            "temp": rng.normal(30, 10, n),
            "dist": rng.normal(1000, 100, n),
            "carrier": pd.array(rng.choice(["UA", "AA"], n), dtype="string"),
        }
    )
    pred_ref, pred_cur = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    result = compare(reference, current, ["month", "temp", "dist"], ["carrier"], pred_ref, pred_cur, DP)
    names = [f.feature for f in result.features]
    assert names[:2] == ["month", "temp"]  # over threshold first, by PSI
    assert set(names[2:]) == {"dist", "carrier"}
    assert result.summary.over_threshold == ["month", "temp"]
    assert result.summary.counted == ["temp"]  # month is expected
    assert result.summary.expected == ["month"]
    assert result.prediction.feature == "prediction"
    assert not result.summary.prediction_over_threshold
    assert (result.rows.reference, result.rows.current) == (n, n)


def test_render_markdown_lists_features_over_threshold_first():
    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"a": rng.normal(0, 1, 500), "b": rng.normal(0, 1, 500)})
    current = pd.DataFrame({"a": rng.normal(0, 1, 500), "b": rng.normal(3, 1, 500)})
    result = compare(reference, current, ["a", "b"], [], rng.uniform(size=500), rng.uniform(size=500), DP)
    text = render_markdown(result)
    assert text.startswith("# Drift")
    assert "**1 of 2 features over threshold** (1 counted by the gate): `b`." in text
    rows = [line for line in text.splitlines() if line.startswith("| a ") or line.startswith("| b ")]
    assert rows[0].startswith("| b | numeric |")
    assert rows[0].endswith("| **yes** |")
    assert rows[1].endswith("| no |")
    assert "**Model predictions:** PSI" in text


def _column(rng: np.random.Generator, n: int, shift: float) -> np.ndarray:
    values = np.round(rng.normal(shift, 1, n), 1)  # ties, as real features have
    values[rng.random(n) < 0.05] = np.nan
    values[:2] = [np.inf, -np.inf]
    return values


def test_counts_merged_over_partitions_give_the_whole_columns_edges_bins_and_ks_bit_for_bit():
    rng = np.random.default_rng(11)
    reference, current = _column(rng, 3000, 0.0), _column(rng, 1000, 0.3)
    merged = NumberCounts.merge(NumberCounts.of(part) for part in np.array_split(reference, 3))
    merged_current = NumberCounts.merge(NumberCounts.of(part) for part in np.array_split(current, 4))
    finite = reference[~np.isnan(reference)]
    inner = np.quantile(finite[np.isfinite(finite)], np.linspace(0, 1, 11)[1:-1])  # infinities at both ends
    edges = quantile_edges(merged, 10)
    assert edges == [float(e) for e in np.unique(np.round(np.quantile(finite, np.linspace(0, 1, 11)[1:-1]), 6))]
    assert len(edges) > 5 and edges[0] >= inner[0] - 1  # real edges, not empty ones
    counts, missing = numeric_counts(reference, edges)
    assert bin_counts(merged, edges).tolist() == [*counts.tolist(), missing]
    expected = stats.ks_2samp(finite, current[~np.isnan(current)], method="asymp")
    assert _ks(merged, merged_current) == (float(expected.statistic), float(expected.pvalue))


def test_drift_of_partitions_merged_is_the_drift_of_the_whole_frames():
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {
            "temp": _column(rng, 1200, 0.0),
            "carrier": pd.Series(rng.choice(["AA", "B6", "UA", None], 1200), dtype="string"),
        }
    )
    later = frame.sample(frac=0.5, random_state=1).assign(temp=lambda f: f["temp"] + 0.5)
    ref_pred, cur_pred = rng.random(300), rng.random(200)
    whole = compare(frame, later, ["temp"], ["carrier"], ref_pred, cur_pred, DP)
    parts = [SplitCounts.of(frame.iloc[i : i + 400], ["temp"], ["carrier"]) for i in (0, 400, 800)]
    merged = compare_counts(
        SplitCounts.merge(parts, ["temp"], ["carrier"]),
        SplitCounts.of(later, ["temp"], ["carrier"]),
        ["temp"],
        ["carrier"],
        ref_pred,
        cur_pred,
        DP,
    )
    assert merged == whole
    assert whole.rows.reference == 1200 and whole.features[0].statistic is not None


def test_split_counts_merge_the_partitions_of_a_split(tmp_path):
    split = tmp_path / "test"
    split.mkdir()
    pd.DataFrame({"x": [1.0, 2.0], "c": ["a", "b"]}).to_parquet(split / "2013-11.parquet")
    pd.DataFrame({"x": [3.0], "c": ["a"]}).to_parquet(split / "2013-12.parquet")
    counts = split_counts(split, ["x"], ["c"])
    assert counts.rows == 3 and counts.texts["c"].counts == {"a": 2, "b": 1}


def test_a_split_with_no_partitions_is_an_error_not_a_split_without_drift(tmp_path):
    with pytest.raises(PipelineError, match="no partitions; run the features stage first"):
        split_counts(tmp_path / "missing", ["x"], ["c"])


def test_a_split_whose_partitions_hold_no_rows_is_an_error(tmp_path):
    pd.DataFrame({"x": pd.Series([], dtype=float), "c": pd.Series([], dtype=object)}).to_parquet(
        tmp_path / "2013-11.parquet"
    )
    with pytest.raises(PipelineError, match=r"no rows to compare; run the features stage first"):
        split_counts(tmp_path, ["x"], ["c"])
