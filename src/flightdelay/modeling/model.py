"""The scikit-learn pipeline and its model file.

The model is saved in skops format, which stores state as data. Loading checks the file's bytes first and
refuses anything `build_pipeline` does not make, before skops builds or runs anything (flightdelay.modeling.model_audit,
docs/security.md). skops names
array entries and shared objects by `id()` and stamps zip entries with the current time, so two identical
models would give different bytes; `dumps_canonical` renames entries by order of appearance and fixes the
timestamps, so the same training run always writes the same file (and DVC sees the same hash).
"""

from __future__ import annotations

import copy
import io
import logging
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

from flightdelay.core import limits
from flightdelay.core.config import ConfigError, TrainParams
from flightdelay.core.errors import PipelineError
from flightdelay.core.files import atomic_path
from flightdelay.core.limits import read_capped
from flightdelay.modeling.model_audit import SKOPS_TRUSTED, audit_model_bytes
from flightdelay.modeling.skops_io import skops_io

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# Object ids skops writes: array entry names ("<id>.npy") and memo ids ("__id__": <id>).
_IDS = re.compile(r'"(\d+)\.npy"|"__id__": (\d+)')

log = logging.getLogger(__name__)


# The estimator each configured model fits, per task (core.config.MODELS_BY_TASK says which pairs train), and the
# keyword arguments build_pipeline sets itself, which its section in params.yaml may not give.
ESTIMATORS: dict[str, dict[str, type[Any]]] = {
    "hist_gradient_boosting": {
        "classification": HistGradientBoostingClassifier,
        "regression": HistGradientBoostingRegressor,
    },
    "logistic_regression": {"classification": LogisticRegression},
}
SET_BY_PIPELINE = {
    "random_state": "train.seed (train.fallback_seed on the retry)",
    "categorical_features": "the feature spec's categorical columns",
}


def model_params_problems(tp: TrainParams) -> list[str]:
    """One line per bad keyword argument under train.<model> in params.yaml, for every model section (not only
    train.model's), each checked against the estimator it builds for train.task: a name the estimator does not
    take, one build_pipeline sets itself, or a value outside scikit-learn's constraints for it (its own message).

    Only building and checking estimators, no fit: milliseconds, so `train` runs it before it reads any data. Checks
    that scikit-learn makes only when it fits (between keyword arguments, such as a solver and a penalty it does not
    support) stay with the fit."""
    problems = []
    for model, by_task in ESTIMATORS.items():
        cls = by_task.get(tp.task) or next(iter(by_task.values()))  # logistic_regression: a classifier only
        names = sorted(set(cls().get_params(deep=False)) - set(SET_BY_PIPELINE))
        for name, value in getattr(tp, model).items():
            key = f"train.{model}.{name}"
            if name in SET_BY_PIPELINE:
                problems.append(
                    f"{key}: set by the pipeline from {SET_BY_PIPELINE[name]}; remove it from train.{model}"
                )
            elif name not in names:
                problems.append(
                    f"{key}: unknown key; expected one of {', '.join(names)} (the keyword arguments of "
                    f"{cls.__name__}, for train.task {tp.task})"
                )
            else:
                try:
                    cls(**{name: value})._validate_params()  # what fit checks first, for this one argument
                except InvalidParameterError as exc:
                    rule = re.sub(r"\. Got .* instead\.$", "", str(exc), flags=re.DOTALL)
                    problems.append(f"{key}: {_show(value)} is not allowed (scikit-learn: {rule})")
    return problems


def check_model_params(tp: TrainParams, source: str) -> None:
    """Raise ConfigError, one line per problem starting with `source` (the params file), if model_params_problems
    finds any."""
    problems = model_params_problems(tp)
    if problems:
        raise ConfigError("\n".join(f"{source}: {problem}" for problem in problems))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def build_pipeline(
    task: str,
    model: str,
    numeric: list[str],
    categorical: list[str],
    params: dict[str, Any],
    seed: int,
) -> Pipeline:
    """Preprocessing + estimator. Categorical columns are strings; numeric columns may hold NaN."""
    if model == "constant":
        estimator = DummyClassifier(strategy="prior") if task == "classification" else DummyRegressor()
        return Pipeline([("estimator", estimator)])
    if model == "hist_gradient_boosting":
        encode = ColumnTransformer(
            [
                (
                    "categorical",
                    OrdinalEncoder(
                        handle_unknown="use_encoded_value",
                        unknown_value=np.nan,
                        encoded_missing_value=np.nan,
                        dtype=np.float64,
                    ),
                    categorical,
                ),
                ("numeric", "passthrough", numeric),
            ],
            verbose_feature_names_out=False,
        )
        cls = ESTIMATORS["hist_gradient_boosting"][task]
        flags = [True] * len(categorical) + [False] * len(numeric)
        estimator = cls(categorical_features=flags, random_state=seed, **params)
        return Pipeline([("encode", encode), ("estimator", estimator)])
    if model == "logistic_regression":
        if task != "classification":  # params refuse this too (core.config.MODELS_BY_TASK); no silent stand-in
            raise PipelineError(f"train.model: logistic_regression is a classifier; it cannot be trained for {task}")
        encode = ColumnTransformer(
            [
                (
                    "categorical",
                    make_pipeline(
                        SimpleImputer(strategy="constant", fill_value="missing"),
                        OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=20),
                    ),
                    categorical,
                ),
                (
                    "numeric",
                    make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()),
                    numeric,
                ),
            ],
            verbose_feature_names_out=False,
        )
        return Pipeline([("encode", encode), ("estimator", LogisticRegression(random_state=seed, **params))])
    raise PipelineError(f"train.model: unknown model {model!r}")


def prepare(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """The model's input frame: categorical as object strings (NaN for missing), numeric as float64."""
    out = pd.DataFrame(index=frame.index)
    for column in categorical:
        out[column] = frame[column].astype(object).where(frame[column].notna(), np.nan)
    for column in numeric:
        out[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return out


# ------------------------------------------------------------------------------------------------ model files


def without_thread_counts(obj: Any) -> Any:
    """`obj`, or a copy of it in which no fitted part records how many CPU threads fitted it.

    Hist gradient boosting keeps the OpenMP thread count of its fit in its bin mapper (`n_threads`), so the same
    fit on a machine with another core count (or another OMP_NUM_THREADS) would write another model file. The
    fitted values do not depend on it, and the bin mapper given `None` uses all threads when it bins again.
    """
    steps = obj.steps if isinstance(obj, Pipeline) else []
    if not any(getattr(getattr(est, "_bin_mapper", None), "n_threads", None) is not None for _, est in steps):
        return obj
    obj = copy.deepcopy(obj)
    for _, est in obj.steps:
        if getattr(est, "_bin_mapper", None) is not None:
            est._bin_mapper.n_threads = None
    return obj


def dumps_canonical(obj: Any) -> bytes:
    """skops bytes that depend only on the object's fitted state (not on ids, the clock or the machine's cores)."""
    raw = zipfile.ZipFile(io.BytesIO(skops_io().dumps(without_thread_counts(obj))))
    schema = raw.read("schema.json").decode()
    names: dict[str, str] = {}
    for match in _IDS.finditer(schema):
        names.setdefault(match.group(1) or match.group(2), f"{len(names) + 1:06d}")

    def rename(match: re.Match[str]) -> str:
        if match.group(1):
            return f'"{names[match.group(1)]}.npy"'
        return f'"__id__": {int(names[match.group(2)])}'

    schema = _IDS.sub(rename, schema)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        entries = {"schema.json": schema.encode()}
        for info in raw.infolist():
            if info.filename != "schema.json":
                stem = info.filename.removesuffix(".npy")
                if stem not in names:
                    raise PipelineError(f"model file entry {info.filename} is not referenced by its schema")
                entries[f"{names[stem]}.npy"] = raw.read(info.filename)
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, entries[name])
    return out.getvalue()


def save_model(obj: Any, path: str | Path) -> None:
    data = dumps_canonical(obj)
    check = loads_model(data, str(path))  # a file we cannot read back is never written
    if type(check) is not type(obj):
        raise PipelineError("model file round trip gave a different type")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def loads_model(data: bytes, where: str) -> Any:
    """A model from skops bytes, refused (before anything runs) unless it holds only what `build_pipeline` makes."""
    if not data:
        raise PipelineError(f"{where}: not a readable skops model file (it is empty); rerun the train stage")
    audit_model_bytes(data, where)
    sio = skops_io()
    from skops.io.exceptions import UntrustedTypesFoundException

    try:
        return sio.loads(data, trusted=sorted(SKOPS_TRUSTED))
    except UntrustedTypesFoundException as exc:
        raise PipelineError(f"{where}: skops refuses types in the model file ({exc}); refusing to load it") from None
    except Exception as exc:  # a damaged file can raise anything inside skops, numpy or scikit-learn
        log.debug("loading %s failed", where, exc_info=True)
        raise PipelineError(
            f"{where}: not a readable skops model file ({type(exc).__name__}: {str(exc)[:200]}); rerun the train stage"
        ) from None


def load_model(path: str | Path) -> Any:
    """Load a skops model file holding only the types `build_pipeline` makes (see flightdelay.modeling.model_audit)."""
    data = read_capped(path, limits.MODEL_FILE_MAX_BYTES, "MODEL_FILE_MAX_BYTES", PipelineError)
    return loads_model(data, str(path))
