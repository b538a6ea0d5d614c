"""Typed contracts between stages: the JSON files one stage writes and later stages read.

    FeatureSpec    data/processed/feature_spec.json   features -> train, predict
    TrainSummary   models/train_summary.json          train -> predict, evaluate, drift, gate, package, report
    DriftResult    reports/drift.json                 drift -> gate, package, report
    GateDecision   reports/gate.json                  gate -> package, report

Each is a frozen pydantic model. `save(path)` writes exactly the bytes the stage wrote before these types existed
(the project's stable JSON, `core.files.to_json`, with the keys in field order); `load(path)` reads a file back and
fails with one line naming the file and the key when a key is missing, unknown or of the wrong type.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from flightdelay.core.errors import PipelineError
from flightdelay.core.files import to_json, write_text

Number = int | float  # a JSON number kept as written: 4 stays 4, 0.65 stays 0.65


class ContractError(PipelineError):
    """A stage's JSON output that does not have the shape its readers expect; the message names file and key."""


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out.lstrip(".") or "(top level)"


def _problem(error: Any) -> str:
    where, kind = _where(tuple(error["loc"])), error["type"]
    if kind == "missing":
        return f"missing key {where}"
    if kind == "extra_forbidden":
        return f"unknown key {where}"
    return f"{where}: {error['msg']} (got {error.get('input')!r:.60})"


class Contract(BaseModel):
    """Base of the contracts: frozen, every key required, no unknown key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def from_json(cls, raw: Any, source: str) -> Self:
        """`raw` (parsed JSON) as this contract; `source` names where it came from in the error."""
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            errors = exc.errors()
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ContractError(
            f"{source}: not a {cls.__name__}: {_problem(errors[0])}{more}; rerun the stage that writes it"
        ) from None

    @classmethod
    def load(cls, path: str | Path) -> Self:
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ContractError(f"{path}: missing; run the stage that writes it (dvc repro)") from None
        except json.JSONDecodeError as exc:
            raise ContractError(f"{path}: not JSON ({exc.msg} at line {exc.lineno}); rerun the stage") from None
        return cls.from_json(raw, str(path))

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="python")

    def to_json(self) -> str:
        return to_json(self.to_dict())

    def save(self, path: str | Path) -> None:
        write_text(path, self.to_json())


# ------------------------------------------------------------------------------------------------ feature spec


class FeatureSpec(Contract):
    """What the features stage built: feature groups, which are categorical, targets by task, id and leaky columns."""

    groups: dict[str, list[str]]
    categorical: list[str]
    targets: dict[str, str]
    id_columns: list[str]
    leaky_columns: list[str]


# ------------------------------------------------------------------------------------------------ train summary


class TrainSummary(Contract):
    """What the train stage fitted: task, model, features in the model's column order, training rows and loss."""

    task: str
    model: str
    seed: int
    fallback_used: bool
    target: str
    numeric: list[str]
    categorical: list[str]
    rows: int
    target_mean: float
    iterations: int
    training_loss: float

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]


# ------------------------------------------------------------------------------------------------ drift


class NumericReference(Contract):
    edges: list[float]
    frequencies: list[float]
    missing: float


class NumericCurrent(Contract):
    frequencies: list[float]
    missing: float


class CategoricalReference(Contract):
    categories: list[str]
    frequencies: list[float]
    other: float
    missing: float


class CategoricalCurrent(Contract):
    frequencies: list[float]
    other: float
    missing: float


class FeatureDrift(Contract):
    """One feature (or the prediction): PSI, the two-sample test and the binned distributions compared."""

    feature: str
    kind: Literal["numeric", "categorical"]
    psi: float | None
    test: str
    statistic: float | None
    p_value: float | None
    over_threshold: bool
    expected: bool
    reference: NumericReference | CategoricalReference
    current: NumericCurrent | CategoricalCurrent


class DriftThresholds(Contract):
    psi: float
    p_value: float
    bins: int


class DriftRows(Contract):
    reference: int
    current: int


class DriftSummary(Contract):
    features: int
    over_threshold: list[str]
    counted: list[str]
    expected: list[str]
    max_psi: float | None
    prediction_psi: float | None
    prediction_over_threshold: bool


class DriftResult(Contract):
    """Drift of every feature and of the prediction between the training rows and the evaluation window."""

    thresholds: DriftThresholds
    rows: DriftRows
    summary: DriftSummary
    prediction: FeatureDrift
    features: list[FeatureDrift]


# ------------------------------------------------------------------------------------------------ gate


class GateRule(Contract):
    rule: str
    value: Number | None
    comparison: Literal[">=", "<="]
    threshold: Number | None
    outcome: Literal["pass", "fail", "skipped"]
    note: str


class Candidate(Contract):
    model_sha256: str
    model: str
    task: str


class Baseline(Contract):
    stage: str
    version: str
    package: str
    commit: str


class OverrideRecord(Contract):
    approved_by: str
    reason: str
    rules: list[str]
    model_sha256: str
    applied: bool
    note: str


class GateDecision(Contract):
    """The gate's decision with every rule's value, threshold and outcome, and any override."""

    decision: Literal["pass", "fail", "overridden"]
    candidate: Candidate
    baseline: Baseline | None
    failed: list[str]
    skipped: list[str]
    override: OverrideRecord | None
    rules: list[GateRule]

    @property
    def packageable(self) -> bool:
        return self.decision in ("pass", "overridden")
