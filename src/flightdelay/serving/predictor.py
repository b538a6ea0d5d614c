"""A verified model package as a predictor: from raw rows of its main table (dataset.table) to the model's
probability of class 1.

`Predictor.load(package_dir, context)` verifies the package (flightdelay.release.package_format: checksums, file
set, size limits, manifest, gate; a tampered package raises PackageError), loads the model from the verified bytes
(skops, audited, never a pickle) and hands the feature state (JSON data) and the context to the serving side of the
feature builder that made the package (`features.builder` in the manifest's params: serving/features_<builder>.py,
a `RowFeatures`). `predict(rows)` then checks the input (`validate_input`: the manifest's input schema, the raw
fields of the main table, no outcome columns; categories the model never saw are refused), computes the features
with the same code as the `features` stage and scores them.

The context is what a row's features need from other records (each builder says which: the default data set's
other tables, or each entity's earlier rows of the main table). It never comes from the caller. By default it is the
validated partitions of the months being scored (`ValidatedContext`, a path or an fsspec URL). A row whose context
is missing gets the builder's fallback (missing values, which the model handles), is flagged in `context_fallback`
and counted in `fallback_rows`; it never fails. docs/serving.md says what a production deployment plugs in.
"""

from __future__ import annotations

import importlib
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol, get_args, get_type_hints

import numpy as np
import pandas as pd

from flightdelay.core.config import FeatureParams
from flightdelay.core.errors import DataError, PipelineError
from flightdelay.modeling.drift_bins import psi_against
from flightdelay.modeling.fast_model import FastModel
from flightdelay.modeling.model import prepare
from flightdelay.release.package_format import STATE_FILE, PackageError, find_package, load_package

log = logging.getLogger(__name__)

PREDICTION = "prediction"
CANARY_TOLERANCE = 1e-9
RECORD_ROWS = 64  # up to this many rows, RowFeatures.compute_records (plain lists) when the builder has it
# Up to this many rows the service may score on its event loop (inline_scores): a thread hand-off per request
# costs more than scoring them, and waiting for the GIL between the loop and a pool thread made the latency tail.
INLINE_ROWS = 8
FAST_TOLERANCE = 1e-12  # the fast scorer must give predict_proba's numbers on the example rows, or is not used


class InputError(PipelineError):
    """A field of a row that breaks the input schema: `field`, `row` (0-based) and `rule` say which and why."""

    def __init__(self, message: str, *, field: str, row: int, rule: str) -> None:
        super().__init__(message)
        self.field = field
        self.row = row
        self.rule = rule


class CanaryError(PipelineError):
    """The package's model does not reproduce the outputs recorded for its example rows."""


@dataclass(frozen=True)
class InputField:
    """One raw field of a row of the main table a caller sends."""

    name: str
    kind: Literal["integer", "number", "string"]
    nullable: bool
    minimum: float | None
    maximum: float | None
    allowed: tuple[str, ...] | None
    max_length: int | None
    format: str | None = None  # "date-time": ISO-8601 text (time_hour)

    @staticmethod
    def from_dict(entry: dict[str, Any]) -> InputField:
        """One manifest input_schema entry, its types checked (DataError): a hashed but hostile manifest must not
        load and then fail every request (the canary never reads the input schema)."""
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
            raise DataError(f"input_schema entry {str(entry)[:60]!r}: expected an object with a text name")
        where = f"input_schema field {entry['name'][:40]!r}"
        if entry.get("kind") not in ("integer", "number", "string") or not isinstance(entry.get("nullable"), bool):
            raise DataError(f"{where}: kind must be integer, number or string and nullable true or false")
        for key in ("minimum", "maximum"):
            bound = entry.get(key)
            if bound is not None and (
                isinstance(bound, bool) or not isinstance(bound, int | float) or not math.isfinite(bound)
            ):
                raise DataError(f"{where}: {key} is {str(bound)[:40]!r}; expected a finite number or null")
        allowed, longest = entry.get("allowed"), entry.get("max_length")
        if allowed is not None and (not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed)):
            raise DataError(f"{where}: allowed must be a list of texts or null")
        if longest is not None and (isinstance(longest, bool) or not isinstance(longest, int) or longest < 1):
            raise DataError(f"{where}: max_length is {str(longest)[:40]!r}; expected a positive integer or null")
        if entry.get("format") is not None and not isinstance(entry.get("format"), str):
            raise DataError(f"{where}: format must be a text or null")
        return InputField(
            name=str(entry["name"]),
            kind=entry["kind"],
            nullable=bool(entry["nullable"]),
            minimum=entry.get("minimum"),
            maximum=entry.get("maximum"),
            allowed=None if allowed is None else tuple(str(a) for a in allowed),
            max_length=entry.get("max_length"),
            format=entry.get("format"),
        )


# ------------------------------------------------------------------------------------------------ input checks


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | np.integer):
        return True
    return isinstance(value, float | np.floating) and math.isfinite(value) and float(value).is_integer()


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float | np.integer | np.floating)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def _field_problems(values: np.ndarray, spec: InputField) -> list[tuple[np.ndarray, str]]:
    """(bad-row mask, rule) for each rule of one field, in the order they are checked."""
    missing = np.fromiter((_missing(v) for v in values), dtype=bool, count=len(values))
    present = ~missing
    problems: list[tuple[np.ndarray, str]] = []
    if not spec.nullable:
        problems.append((missing, "required: may not be null or missing"))
    if spec.kind == "string":
        is_text = np.fromiter(
            (isinstance(v, str) or (spec.format == "date-time" and isinstance(v, pd.Timestamp)) for v in values),
            dtype=bool,
            count=len(values),
        )
        problems.append((present & ~is_text, "type: expected a string"))
        text = present & is_text
        if spec.max_length is not None:
            long = np.fromiter((isinstance(v, str) and len(v) > spec.max_length for v in values), bool, len(values))
            problems.append((text & long, f"max_length: at most {spec.max_length} characters"))
        if spec.format == "date-time":
            stamps = pd.to_datetime(
                pd.Series([v if t else None for v, t in zip(values, text, strict=True)], dtype=object),
                utc=True,
                errors="coerce",
                format="ISO8601",
            )
            problems.append((text & stamps.isna().to_numpy(), "format: expected an ISO-8601 date-time"))
        if spec.allowed is not None:
            allowed = set(spec.allowed)
            unknown = np.fromiter((isinstance(v, str) and v not in allowed for v in values), bool, len(values))
            shown = ", ".join(spec.allowed[:20]) + (", ..." if len(spec.allowed) > 20 else "")
            problems.append((text & unknown, f"allowed: a value the model knows ({shown})"))
        return problems
    check = _is_integer if spec.kind == "integer" else _is_number
    typed = np.fromiter((check(v) for v in values), dtype=bool, count=len(values))
    kind = "an integer" if spec.kind == "integer" else "a number"
    problems.append((present & ~typed, f"type: expected {kind}"))
    numbers = np.array([float(v) if ok else np.nan for v, ok in zip(values, typed & present, strict=True)])
    finite = np.isfinite(numbers)
    problems.append((present & typed & ~finite, "finite: NaN and infinity are not numbers"))
    if spec.minimum is not None:
        problems.append((finite & (numbers < spec.minimum), f"minimum: at least {spec.minimum:g}"))
    if spec.maximum is not None:
        problems.append((finite & (numbers > spec.maximum), f"maximum: at most {spec.maximum:g}"))
    return problems


def input_problems(rows: pd.DataFrame, input_schema: Sequence[InputField]) -> pd.DataFrame:
    """Every row's first broken rule: a frame (index as `rows`) with `field` and `rule`, empty text for a good
    row. Rows are checked field by field in schema order, so the reported field is the first that fails."""
    n = len(rows)
    field = np.full(n, "", dtype=object)
    rule = np.full(n, "", dtype=object)
    for spec in input_schema:
        if spec.name in rows.columns:
            values = rows[spec.name].to_numpy(dtype=object)
            problems = _field_problems(values, spec)
        else:
            problems = [(np.full(n, not spec.nullable), "required: the field is missing")]
        for mask, text in problems:
            new = mask & (field == "")
            field[new] = spec.name
            rule[new] = text
    return pd.DataFrame({"field": field, "rule": rule}, index=rows.index)


def validate_input(rows: pd.DataFrame, input_schema: Sequence[InputField]) -> None:
    """Raise InputError for the first bad value (lowest row, then first field in schema order)."""
    if len(rows) == 0:
        return
    problems = input_problems(rows, input_schema)
    bad = np.flatnonzero(problems["field"].to_numpy() != "")
    if bad.size:
        row = int(bad[0])
        name, rule = problems["field"].iloc[row], problems["rule"].iloc[row]
        value = rows[name].iloc[row] if name in rows.columns else None
        raise InputError(
            f"row {row}, field {name!r} = {str(value)[:80]!r}: breaks the rule {rule}; fix the value and resend",
            field=str(name),
            row=row,
            rule=str(rule).split(":", 1)[0],
        )


def typed_rows(rows: pd.DataFrame, input_schema: Sequence[InputField]) -> pd.DataFrame:
    """Checked input as the validated partitions type it: integers Int64, numbers float64, text string, the
    date-time as UTC timestamps. Missing nullable fields become missing values."""
    out = pd.DataFrame(index=pd.RangeIndex(len(rows)))
    for spec in input_schema:
        values: np.ndarray = (
            rows[spec.name].to_numpy(dtype=object)
            if spec.name in rows.columns
            else np.full(len(rows), None, dtype=object)
        )
        if spec.format == "date-time":
            out[spec.name] = pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601")
        elif spec.kind == "integer":
            out[spec.name] = pd.array([None if _missing(v) else int(v) for v in values], dtype="Int64")
        elif spec.kind == "number":
            out[spec.name] = np.array([np.nan if _missing(v) else float(v) for v in values], dtype="float64")
        else:
            out[spec.name] = pd.array([None if _missing(v) else str(v) for v in values], dtype="string")
    return out


def model_input(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """What flightdelay.modeling.model.prepare gives (categorical as objects with NaN for missing, numeric as
    float64), built in one step from numpy arrays instead of column by column: the per-call cost of a small batch."""
    data: dict[str, Any] = {}
    for column in categorical:  # a Series of dtype object: pandas would infer a string dtype from the array
        data[column] = pd.Series(frame[column].to_numpy(dtype=object, na_value=np.nan), frame.index, dtype=object)
    for column in numeric:
        data[column] = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return pd.DataFrame(data, index=frame.index, columns=[*categorical, *numeric])


def records_frame(records: Sequence[dict[str, Any]], fields: Sequence[InputField]) -> pd.DataFrame:
    """Rows given as dicts as a DataFrame with the input schema's columns in order and a dtype per kind
    (integer: nullable Int64, number: float64 with NaN for null, string: object with None), built column by column
    from arrays: casting a finished frame costs ~1 ms a column. A field a record leaves out is null."""
    columns: dict[str, Any] = {}
    for f in fields:
        values = [row.get(f.name) for row in records]
        if f.kind == "integer" and all(v is None or _is_integer(v) for v in values):
            columns[f.name] = pd.array([None if v is None else int(v) for v in values], dtype="Int64")
        elif f.kind == "number" and all(v is None or _is_number(v) for v in values):
            columns[f.name] = np.array([np.nan if v is None else v for v in values], dtype="float64")
        else:  # text, or a value of the wrong type: kept as sent, for validate_input to name it
            columns[f.name] = np.array(values, dtype=object)
    return pd.DataFrame(columns, index=pd.RangeIndex(len(records)), copy=False)


def _columns(records: Sequence[dict[str, Any]], names: list[str]) -> list[list[Any]]:
    """The records' values of each name, one list per name (None where a record leaves a name out): one pass over
    the records in C (itemgetter, zip) when every record has every name, one lookup per value otherwise."""
    if len(names) > 1:
        try:
            return [list(column) for column in zip(*map(itemgetter(*names), records), strict=True)] or [
                [] for _ in names
            ]
        except KeyError:
            pass
    return [[record.get(name) for record in records] for name in names]


def typed_records(records: Sequence[dict[str, Any]], input_schema: Sequence[InputField]) -> pd.DataFrame | None:
    """`typed_rows` of checked records (the service's request model checked every type and range: an integer
    field holds ints, a number ints or floats, a text field text, each or None), one array per column, each built
    by pandas or numpy from the list; None when a date-time does not parse (the caller then checks the input
    and names the row)."""
    out: dict[str, Any] = {}
    for spec, values in zip(input_schema, _columns(records, [spec.name for spec in input_schema]), strict=True):
        if spec.format == "date-time":  # each distinct text parsed once (a batch's rows often share their times)
            codes, distinct = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
            stamps = pd.to_datetime(pd.Series(distinct, dtype=object), utc=True, format="ISO8601", errors="coerce")
            if (codes < 0).any() or stamps.isna().any():
                return None
            out[spec.name] = stamps.array.take(codes)
        elif spec.kind == "integer":  # the request model's StrictInt: ints or None, converted by pandas in C
            out[spec.name] = pd.array(values, dtype="Int64")
        elif spec.kind == "number":  # StrictFloat: floats, ints or None (NaN)
            out[spec.name] = np.array(values, dtype="float64")
        else:  # StrictStr: text or None
            out[spec.name] = pd.array(values, dtype="string")
    return pd.DataFrame(out, index=pd.RangeIndex(len(records)))


class Scores(NamedTuple):
    """predict_records' answer: one entry per row, in order, and the model inputs it scored (feature -> one
    value per row, for the service's per-feature drift gauges: a list on the record path, an array of the
    feature frame's column for a larger batch, converted only where the gauges keep it)."""

    probability: np.ndarray  # float64
    label: np.ndarray  # int8: probability >= threshold
    context_fallback: np.ndarray  # bool
    features: dict[str, Sequence[Any] | np.ndarray] | None = None


# ------------------------------------------------------------------------------------------------ reference


class Reference:
    """The training distribution of every model input and of the prediction (the drift stage's bins, kept in the
    manifest), to compute PSI of live values against."""

    def __init__(self, reference: dict[str, Any]) -> None:
        self._columns: dict[str, dict[str, Any]] = dict(reference.get("features", {}))
        if "prediction" in reference:
            self._columns[PREDICTION] = reference["prediction"]
        self.columns: list[str] = list(self._columns)
        self.rows = reference.get("rows")

    def psi(self, column: str, values: pd.Series) -> float:
        """PSI of `values` (a model input, or "prediction") against the training reference."""
        if column not in self._columns:
            raise KeyError(f"no training reference for {column!r}; the reference has {self.columns}")
        return psi_against(self._columns[column], pd.Series(values))


# ------------------------------------------------------------------------------------------------ the builders


class RowFeatures(Protocol):
    """What the predictor needs from the feature builder that made a package (`features.builder`, recorded in the
    manifest's params): the features of raw rows of the main table, with the context it holds (the other records
    those features read; never sent by the caller). Each builder's serving module (`serving/features_<builder>.py`)
    makes one with `rows_features(manifest, state, where, context)`."""

    state: Any  # the builder's feature state from the package, checked
    context: Any  # the builder's own context type
    description: str  # where the context came from, for logs
    context_rows: int

    def compute(self, rows: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """Typed rows (typed_rows) -> (a frame with every model input, one row per row; the fallback flags)."""
        ...

    def compute_records(self, records: Sequence[dict[str, Any]]) -> tuple[dict[str, list[Any]], np.ndarray] | None:
        """A few checked records -> (model input columns as plain lists; the fallback flags), or None: use compute."""
        ...

    def with_context(self, context: Any) -> RowFeatures: ...


class ServingBuilder(Protocol):
    """A builder's serving module, flightdelay.serving.features_<builder> (`serving_builder`)."""

    def rows_features(self, manifest: dict[str, Any], state: dict[str, Any], where: str, context: Any) -> Any: ...
    def context_from_validated(self, location: str | Path, months: Iterable[str] | None, table: str) -> Any: ...
    def month_context(
        self, read: Callable[[str, str], pd.DataFrame | None], period: str, rows: pd.DataFrame, table: str
    ) -> tuple[Any, list[str]]: ...
    def key_columns(self, manifest: dict[str, Any]) -> list[str]: ...


BUILDERS: tuple[str, ...] = get_args(get_type_hints(FeatureParams)["builder"])  # the default first


def serving_builder(name: str) -> ServingBuilder:
    """The serving module of the feature builder `name` (one of features.builder's values)."""
    if name not in BUILDERS:
        raise DataError(f"features.builder {str(name)[:40]!r} is not a feature builder ({', '.join(BUILDERS)})")
    module: ServingBuilder = importlib.import_module(f"flightdelay.serving.features_{name}")
    return module


def builder_of(manifest: dict[str, Any]) -> str:
    """The feature builder that made the package (its params' features.builder; the default builder for packages
    written before the key existed)."""
    features = manifest.get("params", {}).get("features", {})
    return str(features.get("builder", BUILDERS[0]))


def table_of(manifest: dict[str, Any]) -> str:
    """The main table (dataset.table): the key of the caller's raw fields in the manifest's input_schema (for a
    package older than the dataset section, the one key there besides `columns`)."""
    table = manifest.get("params", {}).get("dataset", {}).get("table")
    if table is None:
        keys = [k for k in manifest.get("input_schema", {}) if k != "columns"]
        table = keys[0] if len(keys) == 1 else None
    if not isinstance(table, str) or not isinstance(manifest.get("input_schema", {}).get(table), list):
        raise PackageError(f"the manifest has no input_schema.{table}; rebuild the package with `dvc repro`")
    return table


class ValidatedContext:
    """The validated partitions at a location (a path or an fsspec URL), read as the context of each package that
    is loaded with it, once per feature builder and main table (the service reads them at its first load)."""

    def __init__(self, location: str | Path) -> None:
        self.location = location
        self._read: dict[tuple[str, str], Any] = {}

    def for_package(self, builder: str, table: str) -> Any:
        if (builder, table) not in self._read:
            self._read[(builder, table)] = serving_builder(builder).context_from_validated(self.location, None, table)
        return self._read[(builder, table)]


# ------------------------------------------------------------------------------------------------ predictor


class Predictor:
    """A verified package, ready to score raw rows of its main table (see the module docstring)."""

    def __init__(
        self,
        *,
        path: Path,
        package_hash: str,
        manifest: dict[str, Any],
        model: Any,
        row_features: RowFeatures,
    ) -> None:
        self.path = path
        self.name = path.name
        self.package_hash = package_hash
        self.manifest = manifest
        self.model = model
        self.row_features = row_features
        self.builder = builder_of(manifest)
        self.table = table_of(manifest)
        features = manifest["model"]["features"]
        self.numeric: list[str] = list(features["numeric"])
        self.categorical: list[str] = list(features["categorical"])
        self.input_schema = [InputField.from_dict(entry) for entry in manifest["input_schema"][self.table]]
        self.threshold = float(manifest["params"]["evaluate"]["threshold"])
        if not 0 <= self.threshold <= 1:  # NaN too: every label would be 0, and the canary checks probabilities only
            raise DataError(f"params.evaluate.threshold is {self.threshold!r}; expected a probability in [0, 1]")
        self.reference = Reference(manifest.get("reference", {}))
        self.version = manifest.get("environment", {}).get("flightdelay")
        self.rows_scored = 0
        self.fallback_rows = 0
        self.fast = self._fast_model()

    @property
    def state(self) -> Any:
        """The feature builder's state from the package."""
        return self.row_features.state

    @property
    def context(self) -> Any:
        """The feature builder's context the rows are scored with."""
        return self.row_features.context

    def _fast_model(self) -> FastModel | None:
        """The fast scorer (flightdelay.modeling.fast_model) when the model has its shape and it reproduces
        predict_proba on the manifest's example rows; else None (predict_proba is used)."""
        fast = FastModel.build(self.model)
        if fast is None:
            log.info("predictor: %s: no fast scorer for this model; scoring with predict_proba", self.name)
            return None
        if fast.categorical != self.categorical or fast.numeric != self.numeric:
            log.warning("predictor: %s: the model's columns differ from the manifest's; no fast scorer", self.name)
            return None
        try:
            rows, _ = self._canary_rows
        except CanaryError:
            return None  # the canary reports it
        want = np.asarray(self.model.predict_proba(rows)[:, 1], dtype="float64")
        got = fast.predict_proba(rows)
        if not np.all(np.abs(got - want) <= FAST_TOLERANCE):
            log.warning("predictor: %s: the fast scorer differs from predict_proba; not using it", self.name)
            return None
        return fast

    def _probability(self, X: pd.DataFrame) -> np.ndarray:
        """predict_proba's positive-class probability of model-input rows (by the fast scorer when there is one)."""
        if self.fast is not None:
            return self.fast.predict_proba(X)
        return np.asarray(self.model.predict_proba(X)[:, 1], dtype="float64")

    @classmethod
    def load(cls, package_dir: str | Path, context: Any = None) -> Predictor:
        """Verify the package, then load it; a tampered package raises PackageError. `package_dir` is a package
        (model-<hash>/) or the folder that holds exactly one (models/package). `context` is the package's builder's
        own context, or a ValidatedContext; with none, every row is scored with the fallback."""
        path = Path(package_dir)
        if not path.name.startswith("model-") and path.is_dir() and not path.is_symlink():
            path = find_package(path)
        try:
            return cls._load(path, context)
        except PipelineError:
            raise
        except Exception as exc:  # a hashed package whose data breaks a reader in numpy, scikit-learn or ours
            log.debug("loading %s failed", path, exc_info=True)
            raise PackageError(
                f"{path}: the package could not be loaded ({type(exc).__name__}: {str(exc)[:160]}); refusing it"
            ) from None

    @classmethod
    def _load(cls, path: Path, context: Any) -> Predictor:
        package = load_package(path)
        manifest = package.manifest
        where = str(package.path / STATE_FILE)
        model = manifest.get("model", {})
        if model.get("task") != "classification":
            raise PackageError(f"{package.path}: a {model.get('task')!r} model; the predictor serves classification")
        try:
            table, builder = table_of(manifest), serving_builder(builder_of(manifest))
        except (DataError, PackageError) as exc:
            raise PackageError(f"{package.path}: {exc}") from None
        if isinstance(context, ValidatedContext):
            context = context.for_package(builder_of(manifest), table)
        try:
            row_features = builder.rows_features(manifest, package.state, where, context)
        except DataError as exc:
            raise PackageError(f"{exc}; refusing the package") from None
        except (KeyError, TypeError, ValueError) as exc:  # a hashed manifest without the params its builder reads
            what = f"{type(exc).__name__}: {str(exc)[:120]}"
            raise PackageError(
                f"{package.path}/manifest.json: not a predictor manifest ({what}); refusing the package"
            ) from None
        try:
            predictor = cls(
                path=package.path,
                package_hash=package.hash,
                manifest=manifest,
                model=package.model,
                row_features=row_features,
            )
        except DataError as exc:  # a hostile input_schema (InputField.from_dict) or threshold
            raise PackageError(f"{package.path}: {exc}; refusing the package") from None
        except (KeyError, TypeError, ValueError) as exc:  # a hashed manifest without the keys or types it needs
            what = f"{type(exc).__name__}: {str(exc)[:120]}"
            raise PackageError(
                f"{package.path}/manifest.json: not a predictor manifest ({what}); refusing the package"
            ) from None
        log.info(
            "predictor: %s loaded (%s builder; context: %s, %d rows)",
            predictor.name,
            predictor.builder,
            row_features.description,
            row_features.context_rows,
        )
        return predictor

    def with_context(self, context: Any) -> Predictor:
        """This predictor, the same verified model and state, with another context (no second load)."""
        return type(self)(
            path=self.path,
            package_hash=self.package_hash,
            manifest=self.manifest,
            model=self.model,
            row_features=self.row_features.with_context(context),
        )

    def _features(self, rows: pd.DataFrame, validate: bool, raw: bool = False) -> tuple[pd.DataFrame, np.ndarray]:
        if validate:
            validate_input(rows, self.input_schema)
        typed = typed_rows(rows, self.input_schema)
        frame, fallback = self.row_features.compute(typed)
        if raw and self.fast is not None:  # the fast scorer reads the feature frame as it is
            return frame, fallback
        return model_input(frame, self.numeric, self.categorical), fallback

    def features(self, rows: pd.DataFrame, *, validate: bool = True) -> pd.DataFrame:
        """The model-input rows `predict` scores (numeric as float64, categorical as text), one per row."""
        return self._features(rows, validate)[0]

    def predict(self, rows: pd.DataFrame, *, validate: bool = True) -> pd.DataFrame:
        """One per row, in order: probability (float64), label (int8: probability >= threshold) and
        context_fallback (bool: some context was missing and the fallback was used). `validate=False` skips the
        input check for rows already checked (input_problems)."""
        if len(rows) == 0:
            return pd.DataFrame(
                {
                    "probability": pd.Series(dtype="float64"),
                    "label": pd.Series(dtype="int8"),
                    "context_fallback": pd.Series(dtype=bool),
                }
            )
        X, fallback = self._features(rows, validate, raw=True)
        probability = self._probability(X)
        self.rows_scored += len(X)
        self.fallback_rows += int(fallback.sum())
        if fallback.any():
            log.debug("predictor: %d of %d rows scored with the context fallback", int(fallback.sum()), len(X))
        return pd.DataFrame(
            {
                "probability": probability,
                "label": (probability >= self.threshold).astype("int8"),
                "context_fallback": fallback.astype(bool),
            }
        )

    def record_scores(self, records: Sequence[dict[str, Any]]) -> Scores | None:
        """predict_records' path for a few checked rows on plain lists and the fast scorer, or None where it does
        not apply (no fast scorer, a builder without a record path, a row only compute_features can take)."""
        if self.fast is None:
            return None
        built = self.row_features.compute_records(records)
        if built is None:
            return None
        columns, fallback = built
        probability = self.fast.probability(self.fast.matrix_of_columns(columns))
        self.rows_scored += len(records)
        self.fallback_rows += int(fallback.sum())
        inputs: dict[str, Sequence[Any] | np.ndarray] = {c: columns[c] for c in (*self.categorical, *self.numeric)}
        return Scores(probability, (probability >= self.threshold).astype("int8"), fallback, inputs)

    def inline_scores(self, records: Sequence[dict[str, Any]]) -> Scores | None:
        """Scores for up to INLINE_ROWS checked rows when their cost is known to be small (the record path and the
        compiled tree kernel: ~0.1 ms a row), so the service can answer them on its event loop; None: anything
        else, which the service scores in its pool, under its timeout."""
        if not 0 < len(records) <= INLINE_ROWS or self.fast is None or not self.fast.compiled:
            return None
        return self.record_scores(records)

    def predict_records(self, records: Sequence[dict[str, Any]], *, checked: bool = False) -> Scores:
        """`predict` of rows given as dicts (field -> value, as JSON gives them). With `checked` (the service:
        its request model already checked every field's type, range and allowed values), up to RECORD_ROWS
        rows are scored on plain lists (RowFeatures.compute_records, where the builder has it), no DataFrame: the
        same numbers as `predict`, without its per-call pandas cost (for a large batch, pandas' column arithmetic
        is the faster), and only the date-time format is checked again. Anything else goes through `predict`,
        which checks the input (InputError) first."""
        if checked and 0 < len(records) <= RECORD_ROWS:
            scores = self.record_scores(records)
            if scores is not None:
                return scores
        if not records:
            return Scores(np.empty(0), np.empty(0, dtype="int8"), np.empty(0, dtype=bool), {})
        typed = typed_records(records, self.input_schema) if checked else None
        if typed is not None:  # a large checked batch: typed in one step per column, then RowFeatures.compute
            computed, fallback = self.row_features.compute(typed)
            X = computed if self.fast is not None else model_input(computed, self.numeric, self.categorical)
        else:
            frame = records_frame(records, self.input_schema)
            if checked:  # what the request model does not check: the date-time format
                validate_input(frame, [f for f in self.input_schema if f.format])
            X, fallback = self._features(frame, validate=not checked, raw=True)
        probability = self._probability(X)
        self.rows_scored += len(X)
        self.fallback_rows += int(fallback.sum())
        inputs: dict[str, Sequence[Any] | np.ndarray] = {
            c: X[c].to_numpy() for c in (*self.categorical, *self.numeric)
        }  # not lists: the gauges keep only their window's last values (ServiceMetrics.observe_features)
        return Scores(probability, (probability >= self.threshold).astype("int8"), fallback.astype(bool), inputs)

    @cached_property
    def _canary_rows(self) -> tuple[pd.DataFrame, np.ndarray]:
        examples = self.manifest.get("examples") or []
        recorded = self.manifest.get("example_predictions") or []
        if not examples or len(examples) != len(recorded):
            raise CanaryError(
                f"{self.name}: the manifest has {len(examples)} example rows and {len(recorded)} recorded outputs; "
                "rebuild the package with `dvc repro`"
            )
        rows = prepare(pd.DataFrame(examples), self.numeric, self.categorical)  # as the package stage scored them
        return rows, np.array([float(v) for v in recorded], dtype="float64")

    def canary(self) -> None:
        """Re-score the manifest's example rows; raise CanaryError naming the first row whose output differs from
        the recorded one by more than 1e-9."""
        try:
            rows, recorded = self._canary_rows
            got = self._probability(rows)
        except CanaryError:
            raise
        except Exception as exc:  # a model whose (hashed, audited) data cannot score: refused like a wrong output
            log.debug("%s: the canary could not score", self.name, exc_info=True)
            raise CanaryError(
                f"{self.name}: the model could not score the canary rows ({type(exc).__name__}: {str(exc)[:160]}); "
                "refusing it"
            ) from None
        for i, (a, b) in enumerate(zip(got, recorded, strict=True)):
            if not abs(a - b) <= CANARY_TOLERANCE:
                raise CanaryError(
                    f"{self.name}: canary row {i} scored {a!r}, the package recorded {b!r} (tolerance "
                    f"{CANARY_TOLERANCE:g}); the model runtime does not reproduce the package, refusing it"
                )
