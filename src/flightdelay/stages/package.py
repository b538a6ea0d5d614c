"""Write the gated model as models/package/model-<hash>/ (model, manifest, feature state, checksums).

Stage `package`: the gated model as a self-describing, content-addressed, checksummed directory.

Writes `models/package/model-<hash>/` (flightdelay.release.package_format: the hash covers every file) and
`reports/package.json`, a small git-tracked pointer (name, full hash, metrics, gate decision, data hashes)
that promotion and the report read from any commit without the DVC cache.

The manifest holds (but not the package's own name or hash, which are computed from it): the model (file,
SHA-256, kind, task, target, features); the params; the metrics; the gate decision (with any override);
lineage (the dvc.lock hashes of the data and code the model was trained from); Python and library versions;
the input schema (columns, types, allowed values or ranges); the training reference distributions from the
drift stage (bin edges and frequencies per feature and for the prediction, for monitoring); and a few
example input rows.

Lineage comes from dvc.lock, which `dvc repro` updates after each stage, so when this stage runs it holds
the `train` entry of the model being packaged. The stage checks that entry's MD5 against the model file and
refuses a stale lock. The git commit is not in the manifest: a file cannot hold the hash of the commit that
contains it, and an output that changed with every commit would break `dvc repro` reproducibility. The
commit is recorded at promotion, in the GTO tag and registry/<stage>.json (see flightdelay.release.registry).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.metadata
import json
import logging
import math
import platform
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from flightdelay import __version__
from flightdelay.core import limits, processed
from flightdelay.core.config import Params, Schema, load_schema
from flightdelay.core.contracts import DriftResult, FeatureSpec, GateDecision, TrainSummary
from flightdelay.core.errors import PipelineError
from flightdelay.core.files import (
    atomic_dir,
    partition_files,
    read_json,
    read_parquet,
    split_files,
    to_json,
    write_json,
)
from flightdelay.core.hashing import sha256_bytes
from flightdelay.modeling.model import loads_model, prepare
from flightdelay.release.package_format import MANIFEST_FORMAT, STATE_FILE, PackageError, verify_package, write_package

log = logging.getLogger(__name__)

# Paths come on the command line (dvc.yaml's cmd): option -> help. The CLI makes them required options.
INPUTS = {
    "model": "the model file (skops)",
    "summary": "the train stage's JSON summary",
    "processed": "the features stage's folder (input schema, examples, feature_spec.json, feature_state.json)",
    "metrics": "the evaluate stage's headline metrics",
    "gate": "the gate stage's decision (only pass or overridden is packaged)",
    "drift": "the drift stage's JSON result (reference distributions)",
    "schema": "the input tables' schema (the raw fields of the main table a caller of the predictor sends)",
}
OUTPUTS = {
    "out": "folder that holds the package folder model-<hash>/",
    "pointer": "JSON pointer to the package: name, hash, gate decision",
}
UNTRACKED = {"lock": "dvc.lock, for the lineage of the model (what it was trained on)"}

# The params sections recorded in the manifest and hashed into the name: everything that shaped the model,
# its evaluation and its gate (dvc.yaml lists the same sections for this stage).
# The params sections recorded in the manifest: the ones dvc.yaml declares for this stage (a test checks).
SECTIONS = ("dataset", "data", "raw", "ingest", "validate", "features", "train", "evaluate", "drift", "gate", "package")
LIBRARIES = ("scikit-learn", "numpy", "scipy", "pandas", "pyarrow", "skops")


# ------------------------------------------------------------------------------------------------ pure logic


def lock_hash(entry: dict[str, Any]) -> str | None:
    """The hash dvc.lock records for a dep or out (md5 for local files, etag/checksum for remote ones)."""
    for key in ("md5", "etag", "checksum", "version_id"):
        if key in entry:
            return str(entry[key])
    return None


def lineage(lock: dict[str, Any], stage: str = "train") -> dict[str, Any]:
    """Hashes of everything `stage` was built from, following dvc.lock back through the stages whose outputs
    it reads: `data` (every non-code dependency) and `code` (the Python files), plus the stages followed."""
    stages = lock.get("stages") or {}
    if stage not in stages:
        raise PipelineError(f"dvc.lock has no '{stage}' entry; run `dvc repro` (not a stage alone)")
    producers = {out["path"]: name for name, entry in stages.items() for out in entry.get("outs", [])}
    seen: set[str] = set()
    todo = [stage]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [producers[d["path"]] for d in stages[name].get("deps", []) if d["path"] in producers]
    data: dict[str, str | None] = {}
    code: dict[str, str | None] = {}
    for name in sorted(seen):
        for dep in stages[name].get("deps", []):
            (code if dep["path"].endswith(".py") else data)[dep["path"]] = lock_hash(dep)
    return {
        "stages": sorted(seen),
        "data": dict(sorted(data.items())),
        "code": dict(sorted(code.items())),
    }


def lock_out_hash(lock: dict[str, Any], stage: str, path: str) -> str | None:
    for out in (lock.get("stages") or {}).get(stage, {}).get("outs", []):
        if out["path"] == path:
            return lock_hash(out)
    return None


def read_lock(path: Path) -> Any:
    """dvc.lock as yaml.safe_load reads it, parsed by libyaml when PyYAML has it: DVC writes the file, and the C
    parser reads its 40 kB in a tenth of the pure-Python parser's time (0.02 against 0.18 CPU s). A file libyaml
    refuses is read again by the pure-Python parser, so a damaged lock fails as it always has."""
    text = path.read_text()
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            return yaml.load(text, Loader=fast)  # CSafeLoader: the safe loader, in C
        except yaml.YAMLError:
            pass
    return yaml.safe_load(text)


def input_schema(parts: Iterable[pd.DataFrame], numeric: list[str], categorical: list[str]) -> list[dict[str, Any]]:
    """The model's input columns as seen in training: type, nulls, range or allowed values.

    Built one partition at a time, so memory holds a month, not the training split (flat at 30x the data), and
    merged exactly: the allowed values come from each month's distinct values concatenated, which pandas types as
    it would type the whole split (an integer month beside a float one is float), then made text once."""
    nullable = dict.fromkeys([*categorical, *numeric], False)
    distinct: dict[str, list[pd.Series]] = {name: [] for name in categorical}
    low: dict[str, float] = {}
    high: dict[str, float] = {}
    for frame in parts:
        for name in categorical:
            nullable[name] |= bool(frame[name].isna().any())
            distinct[name].append(frame[name].drop_duplicates())
        for name in numeric:
            values = pd.to_numeric(frame[name], errors="coerce")
            nullable[name] |= bool(values.isna().any())
            if values.notna().any():
                low[name] = min(low.get(name, math.inf), float(values.min()))
                high[name] = max(high.get(name, -math.inf), float(values.max()))
    columns: list[dict[str, Any]] = []
    for name in categorical:
        values = pd.concat(distinct[name], ignore_index=True) if distinct[name] else pd.Series([], dtype=object)
        columns.append(
            {
                "name": name,
                "role": "categorical",
                "dtype": "string",
                "nullable": nullable[name],
                "allowed": sorted(values.dropna().astype(str).unique().tolist()),
            }
        )
    for name in numeric:
        columns.append(
            {
                "name": name,
                "role": "numeric",
                "dtype": "float64",
                "nullable": nullable[name],
                "min": low.get(name),
                "max": high.get(name),
            }
        )
    return columns


def first_rows(files: list[Path], columns: list[str], n: int) -> pd.DataFrame:
    """The first `n` rows of the partitions in order, reading only as many partitions as that takes."""
    parts: list[pd.DataFrame] = []
    for path in files:
        parts.append(read_parquet(path, columns=columns))
        if sum(len(p) for p in parts) >= n:
            break
    return pd.concat(parts, ignore_index=True).head(n) if parts else pd.DataFrame(columns=columns)


def example_rows(frame: pd.DataFrame, numeric: list[str], categorical: list[str], n: int) -> list[dict[str, Any]]:
    """The first `n` rows as the model takes them (categorical as text, numeric as numbers, missing as null), as
    the manifest's JSON will hold them (numbers rounded as flightdelay.core.files.to_json rounds them)."""
    rows = []
    for _, row in frame.head(n).iterrows():
        out: dict[str, Any] = {}
        for name in categorical:
            out[name] = None if pd.isna(row[name]) else str(row[name])
        for name in numeric:
            value = pd.to_numeric(row[name], errors="coerce")
            out[name] = None if pd.isna(value) else float(value)
        rows.append(out)
    return list(json.loads(to_json(rows)))


def example_outputs(
    model: Any, rows: list[dict[str, Any]], numeric: list[str], categorical: list[str], task: str
) -> list[str]:
    """The model's output for each example row (probability of class 1, or the predicted value), as exact
    decimal text: the manifest's JSON numbers are rounded to 6 digits, and the canary compares to 1e-9."""
    if not rows:
        return []
    X = prepare(pd.DataFrame(rows), numeric, categorical)
    out = model.predict_proba(X)[:, 1] if task == "classification" else model.predict(X)
    return [repr(float(v)) for v in out]


def reference_distributions(drift: DriftResult) -> dict[str, Any]:
    """Training bin edges (or categories) and frequencies per feature and for the prediction."""
    out = {f.feature: {"kind": f.kind, **f.reference.to_dict()} for f in drift.features}
    pred = drift.prediction
    return {
        "rows": drift.rows.reference,
        "features": dict(sorted(out.items())),
        "prediction": {"kind": pred.kind, **pred.reference.to_dict()},
    }


def params_record(sections: dict[str, Any]) -> dict[str, Any]:
    return {name: dataclasses.asdict(sections[name]) for name in SECTIONS}


def environment() -> dict[str, Any]:
    return {
        # The minor version only: a patch release does not change what the model computes, and the package's
        # bytes (its name) must not depend on it, or a fresh clone on another 3.11.x would not reproduce dvc.lock.
        "python": "{}.{}".format(*platform.python_version_tuple()[:2]),
        "flightdelay": __version__,
        "libraries": {name: importlib.metadata.version(name) for name in LIBRARIES},
    }


def raw_fields(schema: Schema, table: str, leaky: list[str], seen: dict[str, list[str]]) -> list[dict[str, Any]]:
    """The raw fields a caller sends, whatever the feature builder: every column of the main table but the leaky
    ones (feature_spec.json's leaky_columns: outcomes, known only after the fact), as core.processed.input_fields
    describes each."""
    columns = schema.table(table).columns
    return processed.input_fields({name: spec for name, spec in columns.items() if name not in leaky}, seen)


def build_manifest(
    *,
    artifact: str,
    model_sha256: str,
    summary: TrainSummary,
    params: dict[str, Any],
    metrics: dict[str, Any],
    gate: GateDecision,
    lineage_record: dict[str, Any],
    env: dict[str, Any],
    schema_columns: list[dict[str, Any]],
    fields: list[dict[str, Any]],
    reference: dict[str, Any],
    table: str,  # the main table (dataset.table): input_schema's key for the raw fields
    examples: list[dict[str, Any]],
    example_predictions: list[str],
) -> dict[str, Any]:
    return {
        "format": MANIFEST_FORMAT,
        "model": {
            "artifact": artifact,
            "file": "model.skops",
            "format": "skops",
            "sha256": model_sha256,
            "kind": summary.model,
            "task": summary.task,
            "target": summary.target,
            "train_rows": summary.rows,
            "iterations": summary.iterations,
            "features": {"numeric": summary.numeric, "categorical": summary.categorical},
        },
        "params": params,
        "metrics": metrics,
        "gate": gate.to_dict(),
        "lineage": {
            **lineage_record,
            "git_commit": None,
            "git_commit_recorded_at": "promotion: the GTO version tag and registry/<stage>.json name the commit",
        },
        "environment": env,
        "input_schema": {"columns": schema_columns, table: fields},
        "reference": reference,
        "examples": examples,
        "example_predictions": example_predictions,
    }


def pointer(manifest: dict[str, Any], parent: str, name: str, full_hash: str) -> dict[str, Any]:
    """The git-tracked summary of a package (reports/package.json): its name, full hash and what it holds."""
    return {
        "name": name,
        "hash": full_hash,
        "path": f"{parent}/{name}",
        "model_sha256": manifest["model"]["sha256"],
        "model": manifest["model"]["kind"],
        "task": manifest["model"]["task"],
        "metrics": manifest["metrics"],
        "gate": {
            "decision": manifest["gate"]["decision"],
            "override": manifest["gate"]["override"],
        },
        "data": manifest["lineage"]["data"],
    }


# ------------------------------------------------------------------------------------------------ entry point


def main(args: argparse.Namespace, params: Params) -> None:
    run(
        {name: getattr(params, name) for name in SECTIONS},
        load_schema(args.schema),
        model_file=args.model,
        summary_file=args.summary,
        processed_dir=args.processed,
        metrics_file=args.metrics,
        gate_file=args.gate,
        drift_file=args.drift,
        lock_file=args.lock,
        out_dir=args.out,
        pointer_file=args.pointer,
    )


def run(
    sections: dict[str, Any],
    schema: Schema,
    *,
    model_file: str | Path,
    summary_file: str | Path,
    processed_dir: str | Path,
    metrics_file: str | Path,
    gate_file: str | Path,
    drift_file: str | Path,
    lock_file: str | Path,
    out_dir: str | Path,
    pointer_file: str | Path,
) -> None:
    model_bytes = Path(model_file).read_bytes()
    model_sha = sha256_bytes(model_bytes)
    gate = GateDecision.load(gate_file)
    if not gate.packageable:
        raise PipelineError(f"{gate_file}: the gate decision is {gate.decision!r}; no package from a failed gate")
    if gate.candidate.model_sha256 != model_sha:
        raise PipelineError(f"{gate_file} judged another model file than {model_file}; run `dvc repro`")
    lock = read_lock(Path(lock_file)) if Path(lock_file).exists() else {}
    locked = lock_out_hash(lock, "train", str(model_file))
    if locked != hashlib.md5(model_bytes).hexdigest():
        raise PipelineError(
            f"{lock_file}: its train entry does not match {model_file}, so it cannot tell what the model was trained "
            "on; run `dvc repro` (it updates the lock after each stage)"
        )
    summary = TrainSummary.load(summary_file)
    numeric, categorical = summary.numeric, summary.categorical
    columns = numeric + categorical
    train_files = split_files(Path(processed_dir) / "train")
    schema_columns = input_schema((read_parquet(f, columns) for f in train_files), numeric, categorical)
    test_files = partition_files(Path(processed_dir) / "test")
    n_examples = sections["package"].example_rows
    examples_from = (
        read_parquet(test_files[0], columns=columns) if test_files else first_rows(train_files, columns, n_examples)
    )
    examples = example_rows(examples_from, numeric, categorical, n_examples)
    model = loads_model(model_bytes, str(model_file))
    state_bytes = limits.read_capped(
        Path(processed_dir) / STATE_FILE, limits.FEATURE_STATE_MAX_BYTES, "FEATURE_STATE_MAX_BYTES", PackageError
    )
    seen = {c["name"]: c["allowed"] for c in schema_columns if c["role"] == "categorical"}
    leaky = FeatureSpec.load(Path(processed_dir) / processed.SPEC_FILE).leaky_columns
    manifest = build_manifest(
        artifact=sections["dataset"].artifact,
        model_sha256=model_sha,
        summary=summary,
        params=params_record(sections),
        metrics=read_json(metrics_file),
        gate=gate,
        lineage_record=lineage(lock, "train"),
        env=environment(),
        schema_columns=schema_columns,
        table=sections["dataset"].table,
        fields=raw_fields(schema, sections["dataset"].table, leaky, seen),
        reference=reference_distributions(DriftResult.load(drift_file)),
        examples=examples,
        example_predictions=example_outputs(model, examples, numeric, categorical, summary.task),
    )
    with atomic_dir(out_dir) as tmp:
        directory, full_hash = write_package(tmp, model_bytes, manifest, state_bytes)
        verify_package(directory)  # what this stage writes, `verify` and `promote` accept
    write_json(pointer_file, pointer(manifest, str(out_dir), directory.name, full_hash))
    log.info("package: %s/%s (gate: %s)", out_dir, directory.name, gate.decision)
    if gate.override is not None and gate.decision == "overridden":
        log.warning("package: built under a gate override by %s", gate.override.approved_by)
