"""Compare every feature and the predictions between training rows and the evaluation window (PSI + KS / chi2).

Stage `drift`: how far the evaluation window has moved from the training rows, feature by feature.

Every model input and the model's prediction is compared between the training rows (the reference) and the
evaluation window (the current data):

- numeric: population stability index (PSI) over quantile bins whose edges are fixed from the training rows,
  plus a two-sample Kolmogorov-Smirnov test on the raw values;
- categorical: PSI over the most frequent training categories (the rest pooled as `other`), plus a
  chi-squared test of the same counts.

Missing values get a bin of their own. A feature is over threshold when its PSI is at least
`drift.psi_threshold` *and* its test rejects "same distribution" at `drift.p_value` (with tens of thousands of
rows every test rejects, so PSI decides; on a few rows the test keeps noise from counting).

Each split is read one partition (month) at a time and kept as the counts of each column's distinct values
(flightdelay.core.value_counts), merged over the months: the quantile edges, bin shares, KS statistic and its
p-value follow exactly from the counts (the same numbers as numpy and scipy on the whole columns), so memory holds
one month's columns and the counts, never a whole split, however many months the window has.

The reference bins and frequencies written here are also the training reference distributions in the model
package, for monitoring the model in service.
"""

from __future__ import annotations

import argparse
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from flightdelay.core.config import DriftParams, Params
from flightdelay.core.contracts import (
    CategoricalCurrent,
    CategoricalReference,
    DriftResult,
    DriftRows,
    DriftSummary,
    DriftThresholds,
    FeatureDrift,
    NumericCurrent,
    NumericReference,
    TrainSummary,
)
from flightdelay.core.errors import PipelineError
from flightdelay.core.files import read_parquet, split_files, write_text
from flightdelay.core.tables import markdown_table
from flightdelay.core.value_counts import NumberCounts, TextCounts, exact_quantile
from flightdelay.modeling.drift_bins import PSI_FLOOR, categorical_counts, numeric_counts, psi, shares

__all__ = ["PSI_FLOOR", "categorical_counts", "compare", "numeric_counts", "psi", "run", "shares"]

log = logging.getLogger(__name__)

# Paths come on the command line (dvc.yaml's cmd): option -> help. The CLI makes them required options.
INPUTS = {
    "processed": "the features stage's folder (train/ is the reference, test/ the evaluation window)",
    "predictions": "the predict stage's folder",
    "summary": "the train stage's JSON summary (which features the model uses)",
}
OUTPUTS = {"drift": "JSON drift result per feature and for the predictions", "report": "Markdown drift report"}
UNTRACKED: dict[str, str] = {}

# Edges are kept to the precision JSON keeps (see flightdelay.core.files.to_json), so monitoring code that bins with
# the stored edges puts every value where this stage did.
EDGE_DIGITS = 6
PREDICTION = "prediction"


# ------------------------------------------------------------------------------------------------ pure logic


def _numbers(values: np.ndarray | NumberCounts) -> NumberCounts:
    return values if isinstance(values, NumberCounts) else NumberCounts.of(np.asarray(values, dtype="float64"))


def _texts(values: pd.Series | TextCounts) -> TextCounts:
    return values if isinstance(values, TextCounts) else text_counts(values)


def quantile_edges(values: np.ndarray | NumberCounts, bins: int) -> list[float]:
    """Inner bin edges at the training quantiles (duplicates removed), so bins hold similar shares of rows:
    numpy's quantiles of the present values, computed exactly from their counts."""
    reference = _numbers(values)
    if reference.present == 0:
        return []
    inner = np.array(
        [exact_quantile(reference.values, reference.counts, q) for q in np.linspace(0.0, 1.0, bins + 1)[1:-1]]
    )
    return [float(e) for e in np.unique(np.round(inner, EDGE_DIGITS))]


def top_categories(values: pd.Series | TextCounts, max_categories: int) -> list[str]:
    """The most frequent training categories (ties by name), in that order."""
    ordered = sorted(_texts(values).counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [name for name, _ in ordered[:max_categories]]


def _ks(reference: NumberCounts, current: NumberCounts) -> tuple[float | None, float | None]:
    """The two-sample Kolmogorov-Smirnov statistic and its asymptotic p-value, from the counts: scipy's
    `ks_2samp(method="asymp")` of the present values, the same numbers (both empirical distributions compared at
    every value either holds; Smirnov's distribution for the p-value)."""
    n1, n2 = reference.present, current.present
    if n1 == 0 or n2 == 0:
        return None, None
    points = np.union1d(reference.values, current.values)
    differences = reference.at_or_below(points) / n1 - current.at_or_below(points) / n2
    below = np.clip(-differences.min(), 0, 1)
    above = differences.max()
    d = below if below > above else above
    m, n = sorted([float(n1), float(n2)], reverse=True)
    p_value = np.clip(stats.distributions.kstwo.sf(d, np.round(m * n / (m + n))), 0, 1)
    return float(d), float(p_value)


def bin_counts(column: NumberCounts, edges: list[float]) -> np.ndarray:
    """Counts per value bin of `numeric_counts` (flightdelay.modeling.drift_bins), then missing, from the counts."""
    which = np.searchsorted(np.asarray(edges, dtype=float), column.values, side="right")
    per_bin = np.bincount(which, weights=column.counts, minlength=len(edges) + 1).astype("int64")
    return np.append(per_bin, column.missing)


def category_counts(column: TextCounts, categories: list[str]) -> np.ndarray:
    """Counts per known category, then other and missing (`categorical_counts`), from the counts."""
    known = np.array([column.counts.get(c, 0) for c in categories], dtype=int)
    return np.append(known, [column.present - int(known.sum()), column.missing])


def _chi2(reference: np.ndarray, current: np.ndarray) -> tuple[float | None, float | None]:
    table = np.vstack([reference, current])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return None, None
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def _record(
    name: str,
    kind: Literal["numeric", "categorical"],
    value: float,
    test: str,
    statistic: float | None,
    p_value: float | None,
    reference: NumericReference | CategoricalReference,
    current: NumericCurrent | CategoricalCurrent,
    dp: DriftParams,
) -> FeatureDrift:
    over = value >= dp.psi_threshold and p_value is not None and p_value < dp.p_value
    return FeatureDrift(
        feature=name,
        kind=kind,
        psi=value,
        test=test,
        statistic=statistic,
        p_value=p_value,
        over_threshold=bool(over),
        expected=name in dp.expected,
        reference=reference,
        current=current,
    )


def compare_numeric(
    name: str, reference_values: np.ndarray | NumberCounts, current_values: np.ndarray | NumberCounts, dp: DriftParams
) -> FeatureDrift:
    reference, current = _numbers(reference_values), _numbers(current_values)
    edges = quantile_edges(reference, dp.bins)
    ref_shares = shares(bin_counts(reference, edges))
    cur_shares = shares(bin_counts(current, edges))
    statistic, p_value = _ks(reference, current)
    return _record(
        name,
        "numeric",
        psi(ref_shares, cur_shares),
        "ks",
        statistic,
        p_value,
        NumericReference(edges=edges, frequencies=ref_shares[:-1].tolist(), missing=float(ref_shares[-1])),
        NumericCurrent(frequencies=cur_shares[:-1].tolist(), missing=float(cur_shares[-1])),
        dp,
    )


def compare_categorical(
    name: str, reference_values: pd.Series | TextCounts, current_values: pd.Series | TextCounts, dp: DriftParams
) -> FeatureDrift:
    reference, current = _texts(reference_values), _texts(current_values)
    categories = top_categories(reference, dp.max_categories)
    ref_all = category_counts(reference, categories)
    cur_all = category_counts(current, categories)
    ref_shares, cur_shares = shares(ref_all), shares(cur_all)
    statistic, p_value = _chi2(ref_all, cur_all)
    return _record(
        name,
        "categorical",
        psi(ref_shares, cur_shares),
        "chi2",
        statistic,
        p_value,
        CategoricalReference(
            categories=categories,
            frequencies=ref_shares[:-2].tolist(),
            other=float(ref_shares[-2]),
            missing=float(ref_shares[-1]),
        ),
        CategoricalCurrent(
            frequencies=cur_shares[:-2].tolist(), other=float(cur_shares[-2]), missing=float(cur_shares[-1])
        ),
        dp,
    )


def _floats(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _psi(record: FeatureDrift) -> float:
    """PSI for ordering; `psi` always gives a number, a file may hold null (NaN), which sorts as 0."""
    return 0.0 if record.psi is None else record.psi


def _order(record: FeatureDrift) -> tuple[int, float, str]:
    return (0 if record.over_threshold else 1, -_psi(record), record.feature)


@dataclass(frozen=True)
class SplitCounts:
    """Every model input of a split (or of one of its partitions) as value counts: partials merge exactly."""

    rows: int
    numbers: dict[str, NumberCounts]
    texts: dict[str, TextCounts]

    @staticmethod
    def of(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> SplitCounts:
        return SplitCounts(
            len(frame),
            {c: NumberCounts.of(_floats(frame[c])) for c in numeric},
            {c: text_counts(frame[c]) for c in categorical},
        )

    @staticmethod
    def merge(parts: list[SplitCounts], numeric: list[str], categorical: list[str]) -> SplitCounts:
        return SplitCounts(
            sum(p.rows for p in parts),
            {c: NumberCounts.merge(p.numbers[c] for p in parts) for c in numeric},
            {c: TextCounts.merge(p.texts[c] for p in parts) for c in categorical},
        )


def split_counts(directory: Path, numeric: list[str], categorical: list[str]) -> SplitCounts:
    """A split's value counts, one partition at a time: each becomes value counts, merged, so memory holds one
    month's columns and the counts of distinct values, never a whole split. A split with no partitions or no rows
    is an error: compared, it would show no drift, and the gate would pass on nothing."""
    parts = [
        SplitCounts.of(read_parquet(path, numeric + categorical), numeric, categorical)
        for path in split_files(directory)
    ]
    counts = SplitCounts.merge(parts, numeric, categorical)
    if not counts.rows:
        raise PipelineError(f"{directory}: no rows to compare; run the features stage first")
    return counts


def text_counts(values: pd.Series) -> TextCounts:
    missing = values.isna()
    present = values[~missing].astype(str).value_counts()
    return TextCounts({str(k): int(v) for k, v in present.items()}, int(missing.sum()))


def compare(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    reference_prediction: np.ndarray,
    current_prediction: np.ndarray,
    dp: DriftParams,
) -> DriftResult:
    """Drift of every feature and of the prediction, from whole frames (see `compare_counts`)."""
    return compare_counts(
        SplitCounts.of(reference, numeric, categorical),
        SplitCounts.of(current, numeric, categorical),
        numeric,
        categorical,
        reference_prediction,
        current_prediction,
        dp,
    )


def compare_counts(
    reference: SplitCounts,
    current: SplitCounts,
    numeric: list[str],
    categorical: list[str],
    reference_prediction: np.ndarray,
    current_prediction: np.ndarray,
    dp: DriftParams,
) -> DriftResult:
    """Drift of every feature and of the prediction; features over threshold first, then by PSI."""
    features = [compare_numeric(c, reference.numbers[c], current.numbers[c], dp) for c in numeric]
    features += [compare_categorical(c, reference.texts[c], current.texts[c], dp) for c in categorical]
    features.sort(key=_order)
    prediction = compare_numeric(PREDICTION, reference_prediction, current_prediction, dp)
    over = [f.feature for f in features if f.over_threshold]
    counted = [f.feature for f in features if f.over_threshold and not f.expected]
    return DriftResult(
        thresholds=DriftThresholds(psi=dp.psi_threshold, p_value=dp.p_value, bins=dp.bins),
        rows=DriftRows(reference=reference.rows, current=current.rows),
        summary=DriftSummary(
            features=len(features),
            over_threshold=over,
            counted=counted,
            expected=sorted(set(dp.expected) & {f.feature for f in features}),
            max_psi=max((_psi(f) for f in features if not f.expected), default=0.0),
            prediction_psi=prediction.psi,
            prediction_over_threshold=prediction.over_threshold,
        ),
        prediction=prediction,
        features=features,
    )


def _num(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def _flag(feature: FeatureDrift) -> str:
    flag = "**yes**" if feature.over_threshold else "no"
    return flag + " (expected)" if feature.expected else flag


def render_markdown(result: DriftResult) -> str:
    """A readable drift report: the prediction first, then features over threshold, then the rest."""
    t, summary, pred = result.thresholds, result.summary, result.prediction
    lines = [
        "# Drift: training rows vs the evaluation window",
        "",
        f"Reference: {result.rows.reference:,} training rows. Current: {result.rows.current:,} rows of the "
        "evaluation window.",
        "",
        f"A feature is **over threshold** when its PSI is at least {t.psi} and its test (Kolmogorov-Smirnov for "
        f"numeric features, chi-squared for categorical ones) gives p < {t.p_value}. Numeric features are "
        f"cut into {t.bins} quantile bins of the training rows (edges fixed from training) plus a bin for missing "
        "values. Features listed in `drift.expected` differ by design of the time split; they are reported but the "
        "gate does not count them.",
        "",
        f"**Model predictions:** PSI {_num(pred.psi)}, KS {_num(pred.statistic)} (p {_p(pred.p_value)}): "
        + ("**over threshold**." if pred.over_threshold else "within threshold."),
        "",
    ]
    over, counted = summary.over_threshold, summary.counted
    if over:
        lines.append(
            f"**{len(over)} of {summary.features} features over threshold** ({len(counted)} counted by the gate): "
            + ", ".join(f"`{name}`" for name in over)
            + "."
        )
    else:
        lines.append(f"No feature of {summary.features} is over threshold.")
    rows = [
        [f.feature, f.kind, _num(f.psi), f.test, _num(f.statistic), _p(f.p_value), _flag(f)] for f in result.features
    ]
    lines += [
        "",
        *markdown_table(["feature", "kind", "PSI", "test", "statistic", "p-value", "over threshold"], rows, "-->->>-"),
    ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ entry point


def main(args: argparse.Namespace, params: Params) -> None:
    run(
        params.drift,
        processed_dir=args.processed,
        predictions_dir=args.predictions,
        summary_file=args.summary,
        drift_file=args.drift,
        report_file=args.report,
    )


def run(
    drift: DriftParams,
    *,
    processed_dir: str | Path,
    predictions_dir: str | Path,
    summary_file: str | Path,
    drift_file: str | Path,
    report_file: str | Path,
) -> None:
    dp = drift
    summary = TrainSummary.load(summary_file)
    numeric, categorical = summary.numeric, summary.categorical
    unknown = sorted(set(dp.expected) - set(numeric) - set(categorical))
    if unknown:
        log.warning("drift: drift.expected names %s, which the model does not use", unknown)
    splits = {split: split_counts(Path(processed_dir) / split, numeric, categorical) for split in ("train", "test")}
    ref_pred = read_parquet(Path(predictions_dir) / "train.parquet")["prediction"].to_numpy(dtype=float)
    cur_pred = read_parquet(Path(predictions_dir) / "test.parquet")["prediction"].to_numpy(dtype=float)
    result = compare_counts(splits["train"], splits["test"], numeric, categorical, ref_pred, cur_pred, dp)
    result.save(drift_file)
    write_text(report_file, render_markdown(result))
    s = result.summary
    log.info(
        "drift: %d of %d features over threshold (%d counted by the gate: %s); prediction PSI %.3f",
        len(s.over_threshold),
        s.features,
        len(s.counted),
        s.counted,
        s.prediction_psi,
    )
