"""Typed views of `params.yaml` and the schema file.

Entry points load these once and pass the values down; nothing else reads the YAML files. Unknown keys are
errors, so a typo in params.yaml fails loudly instead of being ignored.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

T = TypeVar("T")

TASKS = ("classification", "regression")
MODELS = ("hist_gradient_boosting", "logistic_regression", "constant")
DTYPES = ("int", "float", "str", "datetime")
# Headline metrics (reports/metrics.json) the gate may test, and which way is better.
GATE_METRICS = {
    "roc_auc": "higher",
    "pr_auc": "higher",
    "f1": "higher",
    "accuracy": "higher",
    "r2": "higher",
    "log_loss": "lower",
    "brier": "lower",
    "ece": "lower",
    "mae": "lower",
    "rmse": "lower",
}
_HEX = re.compile(r"^[0-9a-f]+$")
_PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class ConfigError(ValueError):
    """A params or schema file that cannot be used; the message says which key and how to fix it."""


def _build(cls: type[T], raw: Any, where: str) -> T:
    """Build dataclass `cls` from a mapping, rejecting unknown keys and recursing into nested dataclasses."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(fields)}")
    required = [
        n
        for n, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and n not in raw
    ]
    if required:
        raise ConfigError(f"{where}: missing key(s) {required}")
    kwargs: dict[str, Any] = {}
    for name, value in raw.items():
        sub = _NESTED.get((cls.__name__, name))
        if sub and value is None and (cls.__name__, name) in _OPTIONAL:
            sub = None
        kwargs[name] = _build(sub, value, f"{where}.{name}") if sub else value
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required key is missing
        raise ConfigError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class DataParams:
    raw_dir: str
    schema: str


@dataclass(frozen=True)
class RawParams:
    dataset: str = "nycflights13"


@dataclass(frozen=True)
class Window:
    start: str
    end: str

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = str(getattr(self, name))
            if not _PERIOD.match(value):
                raise ConfigError(f"ingest.window.{name}: {value!r} is not a month like '2013-01'")
        if self.start > self.end:
            raise ConfigError(f"ingest.window: start {self.start} is after end {self.end}")

    def months(self) -> list[str]:
        """Every month in the window, inclusive, as 'YYYY-MM'."""
        y, m = int(self.start[:4]), int(self.start[5:])
        out = []
        while f"{y:04d}-{m:02d}" <= self.end:
            out.append(f"{y:04d}-{m:02d}")
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return out


@dataclass(frozen=True)
class Source:
    kind: Literal["files", "sql"] = "files"
    path: str | None = None
    url: str | None = None
    query: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("files", "sql"):
            raise ConfigError(f"ingest.sources: kind {self.kind!r} is not 'files' or 'sql'")
        if self.kind == "sql" and not (self.url and self.query):
            raise ConfigError("ingest.sources: a 'sql' source needs both 'url' and 'query'")


@dataclass(frozen=True)
class RetryParams:
    """Bounded retries of transient read errors: `attempts` in all, waits growing from `initial_wait` seconds
    (exponential, with jitter) up to `max_wait`."""

    attempts: int = 4
    initial_wait: float = 0.5
    max_wait: float = 8.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError("ingest.retry.attempts: must be at least 1")


@dataclass(frozen=True)
class IngestParams:
    window: Window
    sources: dict[str, Source]
    max_invalid_share: float = 0.01
    extra_columns: Literal["drop", "error"] = "drop"
    retry: RetryParams = field(default_factory=RetryParams)

    def __post_init__(self) -> None:
        if self.extra_columns not in ("drop", "error"):
            raise ConfigError(f"ingest.extra_columns: {self.extra_columns!r} is not 'drop' or 'error'")


@dataclass(frozen=True)
class ValidateParams:
    max_invalid_share: float = 0.01
    profile_quantiles: tuple[float, ...] = (0.01, 0.25, 0.5, 0.75, 0.99)


@dataclass(frozen=True)
class FeatureParams:
    train_months: tuple[int, ...]
    test_months: tuple[int, ...]
    missing_target: Literal["drop", "late"] = "drop"
    holiday_country: str = "US"
    history_smoothing: float = 50.0
    weather_trend_hours: int = 3

    def __post_init__(self) -> None:
        both = set(self.train_months) & set(self.test_months)
        if both:
            raise ConfigError(f"features: months {sorted(both)} are in both train_months and test_months")
        if not self.train_months or not self.test_months:
            raise ConfigError("features: train_months and test_months must both be non-empty")
        if self.missing_target not in ("drop", "late"):
            raise ConfigError(f"features.missing_target: {self.missing_target!r} is not 'drop' or 'late'")


@dataclass(frozen=True)
class TrainParams:
    task: str
    model: str
    seed: int
    feature_groups: tuple[str, ...]
    # Seed of the one retry when a fit does not converge.
    fallback_seed: int = 20130101
    hist_gradient_boosting: dict[str, Any] = field(default_factory=dict)
    logistic_regression: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"train.task: {self.task!r} is not one of {list(TASKS)}")
        if self.model not in MODELS:
            raise ConfigError(f"train.model: {self.model!r} is not one of {list(MODELS)}")

    def estimator_params(self) -> dict[str, Any]:
        return dict(getattr(self, self.model, {}) or {})


@dataclass(frozen=True)
class EvaluateParams:
    threshold: float = 0.5
    calibration_bins: int = 10
    importance_sample: int = 5000
    importance_repeats: int = 3
    slices: tuple[str, ...] = ("carrier", "origin", "month")
    min_slice_rows: int = 200
    curve_points: int = 200


@dataclass(frozen=True)
class DriftParams:
    bins: int = 10
    max_categories: int = 30
    psi_threshold: float = 0.2
    p_value: float = 0.01
    expected: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.bins < 2:
            raise ConfigError(f"drift.bins: {self.bins} is too few; use 2 or more")
        if self.max_categories < 1:
            raise ConfigError(f"drift.max_categories: {self.max_categories} must be at least 1")
        if not 0 < self.p_value < 1:
            raise ConfigError(f"drift.p_value: {self.p_value} is not between 0 and 1")


@dataclass(frozen=True)
class Override:
    """A human's signed acceptance of named failed gate rules for one model file."""

    approved_by: str
    reason: str
    rules: tuple[str, ...]
    model_sha256: str

    def __post_init__(self) -> None:
        for name in ("approved_by", "reason"):
            if not str(getattr(self, name) or "").strip():
                raise ConfigError(f"gate.override.{name}: must name who approved and why (a non-empty text)")
        if not self.rules or not all(isinstance(r, str) and r for r in self.rules):
            raise ConfigError("gate.override.rules: list the failed rules you accept, e.g. [min_metrics.roc_auc]")
        sha = str(self.model_sha256).lower()
        if len(sha) < 12 or not _HEX.match(sha):
            raise ConfigError(
                f"gate.override.model_sha256: {self.model_sha256!r} is not the first 12 or more hex digits of the "
                "model file's SHA-256 (reports/gate.json: candidate.model_sha256)"
            )


@dataclass(frozen=True)
class GateParams:
    min_metrics: dict[str, float] = field(default_factory=dict)
    max_metrics: dict[str, float] = field(default_factory=dict)
    max_drifted_features: int | None = None
    max_prediction_psi: float | None = None
    max_drop_vs_promoted: dict[str, float] = field(default_factory=dict)
    override: Override | None = None

    def __post_init__(self) -> None:
        for name in ("min_metrics", "max_metrics", "max_drop_vs_promoted"):
            rules = getattr(self, name)
            if not isinstance(rules, dict):
                raise ConfigError(f"gate.{name}: expected a mapping of metric name to number")
            for metric, value in rules.items():
                if metric not in GATE_METRICS:
                    raise ConfigError(f"gate.{name}.{metric}: unknown metric; use one of {sorted(GATE_METRICS)}")
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ConfigError(f"gate.{name}.{metric}: {value!r} is not a number")
                if name == "max_drop_vs_promoted" and value < 0:
                    raise ConfigError(f"gate.max_drop_vs_promoted.{metric}: {value} must be 0 or more")


@dataclass(frozen=True)
class PackageParams:
    example_rows: int = 5


@dataclass(frozen=True)
class ReportParams:
    dpi: int = 100
    top_features: int = 15


@dataclass(frozen=True)
class Params:
    data: DataParams
    raw: RawParams
    ingest: IngestParams
    validate: ValidateParams
    features: FeatureParams
    train: TrainParams
    evaluate: EvaluateParams
    drift: DriftParams
    gate: GateParams
    package: PackageParams
    report: ReportParams


_NESTED: dict[tuple[str, str], type] = {
    ("Params", "data"): DataParams,
    ("Params", "raw"): RawParams,
    ("Params", "ingest"): IngestParams,
    ("Params", "validate"): ValidateParams,
    ("Params", "features"): FeatureParams,
    ("Params", "train"): TrainParams,
    ("Params", "evaluate"): EvaluateParams,
    ("Params", "drift"): DriftParams,
    ("Params", "gate"): GateParams,
    ("Params", "package"): PackageParams,
    ("Params", "report"): ReportParams,
    ("IngestParams", "window"): Window,
    ("IngestParams", "retry"): RetryParams,
    ("GateParams", "override"): Override,
}
# Nested sections that may be null (absent).
_OPTIONAL = frozenset({("GateParams", "override")})


def _tuples(raw: Any) -> Any:
    """YAML lists become tuples so the frozen dataclasses are hashable and cannot be changed in place."""
    if isinstance(raw, list):
        return tuple(_tuples(v) for v in raw)
    if isinstance(raw, dict):
        return {k: _tuples(v) for k, v in raw.items()}
    return raw


def parse_params(raw: dict[str, Any]) -> Params:
    raw = _tuples(raw)
    ingest = dict(raw.get("ingest") or {})
    sources = ingest.get("sources") or {}
    if not isinstance(sources, dict):
        raise ConfigError("ingest.sources: expected a mapping of table name to source")
    ingest["sources"] = {name: _build(Source, spec, f"ingest.sources.{name}") for name, spec in sources.items()}
    raw = {**raw, "ingest": ingest}
    params = _build(Params, raw, "params")
    window = params.ingest.window
    if isinstance(window, dict):  # pragma: no cover - _build always nests Window
        raise ConfigError("ingest.window must be a mapping")
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found; run from the repository root or pass --params") from None
    return parse_params(raw or {})


# --------------------------------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class ColumnSpec:
    dtype: str
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: tuple[Any, ...] | None = None
    # Largest share of missing values one partition may have before the stage fails (nullable columns).
    max_null_rate: float | None = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ConfigError(f"schema: dtype {self.dtype!r} is not one of {list(DTYPES)}")
        if self.max_null_rate is not None and not 0 <= self.max_null_rate <= 1:
            raise ConfigError(f"schema: max_null_rate {self.max_null_rate} is not between 0 and 1")


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: dict[str, ColumnSpec]
    partitioned: bool = False
    period: dict[str, str] | None = None
    key: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.partitioned and not self.period:
            raise ConfigError(f"schema.tables.{self.name}: a partitioned table needs 'period'")
        missing = [c for c in self.key if c not in self.columns]
        if missing:
            raise ConfigError(f"schema.tables.{self.name}: key columns {missing} are not in columns")


@dataclass(frozen=True)
class Schema:
    tables: dict[str, TableSpec]

    def table(self, name: str) -> TableSpec:
        try:
            return self.tables[name]
        except KeyError:
            raise ConfigError(f"schema: no table {name!r}; the schema file describes {sorted(self.tables)}") from None


def parse_schema(raw: dict[str, Any]) -> Schema:
    raw = _tuples(raw)
    tables_raw = raw.get("tables") if isinstance(raw, dict) else None
    if not isinstance(tables_raw, dict) or not tables_raw:
        raise ConfigError("schema: expected a non-empty 'tables' mapping")
    tables = {}
    for name, spec in tables_raw.items():
        spec = dict(spec)
        cols_raw = spec.pop("columns", None)
        if not isinstance(cols_raw, dict) or not cols_raw:
            raise ConfigError(f"schema.tables.{name}: expected a non-empty 'columns' mapping")
        cols = {c: _build(ColumnSpec, s, f"schema.tables.{name}.columns.{c}") for c, s in cols_raw.items()}
        tables[name] = _build(TableSpec, {**spec, "name": name, "columns": cols}, f"schema.tables.{name}")
    return Schema(tables=tables)


def load_schema(path: str | Path) -> Schema:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: schema file not found (params: data.schema)") from None
    return parse_schema(raw or {})
