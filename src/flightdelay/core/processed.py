"""The interface between the `features` stage and the stages after it: what a feature builder writes.

A feature builder (`features.builder` in params.yaml: the default data set's own, or `generic`, driven by config)
turns the validate stage's folder into the processed folder. Whatever the builder, the folder holds:

    train/<YYYY-MM>.parquet   the training months' rows: id columns, targets, features (one file per month)
    test/<YYYY-MM>.parquet    the test months' rows, the same columns
    feature_spec.json         FeatureSpec (core.contracts): feature groups, categorical columns, the target
                              column per task, id columns, leaky columns
    counts.json               FeatureCounts (below): where the main table's rows went
    feature_state.json        the builder's fitted state as JSON data (never code, never a pickle): what it
                              learned from the training months; the package stage ships it as it is

and every partition has every column the spec names (its id columns, the target of each task it lists, every
feature of every group) and a row count that adds up to counts.json's `train` and `test`. `train`, `predict`,
`evaluate`, `drift` and `package` read nothing else. `check_processed` checks a folder against this interface;
tests run it on the output of every builder.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Protocol

import pyarrow.parquet as pq
from pydantic import ConfigDict, Field

from flightdelay.core.config import ComputeParams, DatasetParams, FeatureParams, TrainParams
from flightdelay.core.contracts import Contract, ContractError, FeatureSpec

SPLITS = ("train", "test")
SPEC_FILE = "feature_spec.json"
COUNTS_FILE = "counts.json"
STATE_FILE = "feature_state.json"
PARTITION = re.compile(r"^\d{4}-(0[1-9]|1[0-2])\.parquet\Z")


class FeatureCounts(Contract):
    """counts.json: where the main table's rows went. rows_in = rows_no_target + rows_unused_months + train + test.
    `rows_no_target` (rows dropped for having no target) is written under the default data set's own key, so the
    file, and the data hashes in dvc.lock, stay what they were."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    rows_in: int
    rows_no_target: int = Field(
        validation_alias="rows_dropped_no_arrival", serialization_alias="rows_dropped_no_arrival"
    )
    rows_unused_months: int
    train: int
    test: int

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="python", by_alias=True)


class FeatureBuilder(Protocol):
    """What `features` runs for `features.builder`: reads `in_dir` (the validate stage's folder), writes `out_dir` as
    described above, and returns the stage's row summary (rows_in, rows_out, rows_dropped)."""

    def __call__(
        self,
        features: FeatureParams,
        train: TrainParams,
        dataset: DatasetParams,
        compute: ComputeParams,
        *,
        in_dir: str | Path,
        out_dir: str | Path,
    ) -> dict[str, int]: ...


def check_processed(out_dir: str | Path) -> FeatureSpec:
    """The folder's FeatureSpec, once the folder is checked against the interface; ContractError (one line naming
    the file and what is wrong) otherwise."""
    root = Path(out_dir)
    spec = FeatureSpec.load(root / SPEC_FILE)
    counts = FeatureCounts.load(root / COUNTS_FILE)
    try:
        state = json.loads((root / STATE_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContractError(f"{root / STATE_FILE}: missing; the feature builder must write its state") from None
    except json.JSONDecodeError as exc:
        raise ContractError(f"{root / STATE_FILE}: not JSON ({exc.msg}); the state is JSON data") from None
    if not isinstance(state, dict) or "format" not in state:
        raise ContractError(f"{root / STATE_FILE}: not a JSON object with a 'format' key")
    accounted = counts.rows_no_target + counts.rows_unused_months + counts.train + counts.test
    if accounted != counts.rows_in:
        raise ContractError(f"{root / COUNTS_FILE}: rows_in {counts.rows_in} but the other keys add up to {accounted}")
    features = [c for cols in spec.groups.values() for c in cols]
    unknown = sorted(set(spec.categorical) - set(features))
    if unknown:
        raise ContractError(f"{root / SPEC_FILE}: categorical {unknown} are in no feature group")
    needed = [*spec.id_columns, *spec.targets.values(), *features]
    for split in SPLITS:
        folder = root / split
        files = sorted(folder.iterdir()) if folder.is_dir() else []
        rows = 0
        for path in files:
            if not PARTITION.match(path.name):
                raise ContractError(f"{path}: not a partition name; a split holds <YYYY-MM>.parquet files only")
            meta = pq.read_schema(path)
            missing = [c for c in dict.fromkeys(needed) if c not in meta.names]
            if missing:
                raise ContractError(f"{path}: no column(s) {missing} that {SPEC_FILE} names")
            rows += pq.read_metadata(path).num_rows
        if rows != getattr(counts, split):
            raise ContractError(f"{root / COUNTS_FILE}: {split} is {getattr(counts, split)} but {folder} holds {rows}")
    return spec


# ------------------------------------------------------------------------------------------------ raw input fields

MAX_STRING_LENGTH = 64  # longest text a caller may send in a field (timestamps are 25)
INPUT_KINDS = {"int": "integer", "float": "number", "str": "string", "datetime": "string"}


def input_fields(columns: dict[str, Any], seen: dict[str, list[str]]) -> list[dict[str, Any]]:
    """The raw fields a caller sends to a package (the manifest's input schema), one per schema column given
    (name -> ColumnSpec), in order: kind, nullability, range, allowed values and longest text. A categorical
    model input may take only the values `seen` in training (intersected with the schema's own list); a datetime
    is ISO-8601 text. Each builder says which columns: the default builder its input columns, the generic one
    every column of the main table."""
    fields = []
    for name, spec in columns.items():
        allowed: list[str] | None = list(spec.allowed) if spec.allowed is not None else None
        if name in seen:
            allowed = sorted(v for v in seen[name] if allowed is None or v in allowed)
        text = spec.dtype in ("str", "datetime")
        fields.append(
            {
                "name": name,
                "kind": INPUT_KINDS[spec.dtype],
                "format": "date-time" if spec.dtype == "datetime" else None,
                "nullable": bool(spec.nullable),
                "minimum": None if spec.min is None else float(spec.min),
                "maximum": None if spec.max is None else float(spec.max),
                "allowed": allowed,
                "max_length": MAX_STRING_LENGTH if text else None,
            }
        )
    return fields
