"""The trained artifact the behavioural tests judge: the default pipeline, trained once per session on real data.

Three months of the bundled flights (January and February to train, March held out), typed as the validate stage
leaves them, then the real `features` stage and the real `train.fit` with the default params except fewer boosting
rounds. About twenty seconds on one core; the model reaches ROC AUC 0.718 on March (the default model on the full
year reaches 0.707 on November-December).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from flightdelay.core.config import DriftParams, load_schema, parse_params
from flightdelay.core.contracts import FeatureSpec, TrainSummary
from flightdelay.core.files import partition_files, read_parquet, write_parquet
from flightdelay.core.hashing import sha256_bytes
from flightdelay.modeling.flight_features import input_fields
from flightdelay.modeling.model import dumps_canonical
from flightdelay.release.package_format import STATE_FILE, write_package
from flightdelay.stages import drift, features, train
from flightdelay.stages.ingest import coerce_frame, with_lineage
from flightdelay.stages.package import build_manifest, example_outputs, example_rows, reference_distributions
from flightdelay.stages.predict import predictions
from flightdelay.stages.raw import split_by_month, to_csv_text
from tests.bundled import bundled
from tests.default_params import default_params
from tests.unit.test_packaging import GATE, LOCK, lineage

REPO = Path(__file__).resolve().parents[2]
SPLIT = {"train": {"start": "2013-01", "end": "2013-02"}, "test": {"start": "2013-03", "end": "2013-03"}}
MONTHS = {"features.split": SPLIT}
# A quick model of the default's family: fewer rounds than the default 200, and every feature considered at each
# split. The default's feature subsampling (max_features 0.5) on only two months of training rows makes this small
# model's directions noisy: more congestion lowered its mean P(late) at 60 and at 100 rounds (by 0.004 at 60), and
# more rain at 200. The model the pipeline trains on the full year is checked for these directions in
# tests/e2e/test_reproducible.py.
QUICK_MODEL = {"train.hist_gradient_boosting.max_iter": 60, "train.hist_gradient_boosting.max_features": 1.0}


@dataclass(frozen=True)
class Trained:
    model: Any  # the fitted scikit-learn pipeline, as `train` saves it
    summary: TrainSummary  # what `train` writes to train_summary.json
    train: pd.DataFrame  # the processed training rows (features, ID columns, target)
    test: pd.DataFrame  # the processed held-out rows (March)
    validated: Path  # the validated partitions the features were built from (flights, weather, planes)
    processed: Path  # the features stage's folder (with feature_state.json)
    # P(late) of `train` and `test` themselves, computed once: most tests compare against the held-out rows' own
    # predictions (the same model on the same frame gives the same numbers every time).
    _own: dict[str, pd.Series] = field(default_factory=dict, compare=False, repr=False)

    @property
    def columns(self) -> list[str]:
        return self.summary.features

    def p_late(self, frame: pd.DataFrame) -> pd.Series:
        """P(late) per row, the way `predict` computes it, indexed like `frame`."""
        own = "train" if frame is self.train else "test" if frame is self.test else None
        if own is not None:
            if own not in self._own:
                self._own[own] = self._p_late(frame)
            return self._own[own].copy()
        return self._p_late(frame)

    def _p_late(self, frame: pd.DataFrame) -> pd.Series:
        with threadpool_limits(limits=1):
            out = predictions(self.model, frame, self.summary, features.ID_COLUMNS)
        return out["prediction"].set_axis(frame.index)


def as_read(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows as ingest reads them back from the CSV the raw stage writes ("NA" becomes missing)."""
    return pd.read_csv(io.StringIO(to_csv_text(frame)), dtype=str)


def validated_months(root: Path, months: list[str]) -> Path:
    """The bundled flights and weather of `months` ('2013-MM') and all planes, typed and written as validate
    writes them."""
    schema = load_schema(REPO / "config" / "schema.yaml")
    for table in ("flights", "weather"):
        spec = schema.table(table)
        raw = bundled(table)
        raw = raw[(raw["year"] + "-" + raw["month"].str.zfill(2)).isin(months)]
        for period, rows in split_by_month(raw, spec):
            typed, _ = coerce_frame(with_lineage(as_read(rows), period), spec, period)
            write_parquet(typed, root / table / f"{period}.parquet")
    planes, _ = coerce_frame(with_lineage(as_read(bundled("planes")), "planes"), schema.table("planes"), "p")
    write_parquet(planes, root / "planes.parquet")
    return root


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Trained:
    tmp = tmp_path_factory.mktemp("model")
    params = parse_params(default_params({**MONTHS, **QUICK_MODEL}))
    split_months = [*params.features.split.train_months(), *params.features.split.test_months()]
    validated = validated_months(tmp / "validated", split_months)
    processed = tmp / "processed"
    features.run(params.features, params.train, params.dataset, params.compute, in_dir=validated, out_dir=processed)
    split = {
        s: pd.concat([read_parquet(f) for f in partition_files(processed / s)], ignore_index=True)
        for s in ("train", "test")
    }
    # One OpenMP thread: on a shared machine, boosting's spinning threads slow each other down by orders of magnitude.
    with threadpool_limits(limits=1):
        model, summary = train.fit(split["train"], FeatureSpec.load(processed / "feature_spec.json"), params.train)
    return Trained(model, summary, split["train"], split["test"], validated, processed)


@pytest.fixture(scope="session")
def package(trained: Trained, tmp_path_factory) -> Path:
    """The trained model as the package stage packages it (manifest, feature state, checksums)."""
    numeric, categorical = trained.summary.numeric, trained.summary.categorical
    model_bytes = dumps_canonical(trained.model)
    examples = example_rows(trained.test, numeric, categorical, 5)
    reference = drift.compare(
        trained.train,
        trained.test,
        numeric,
        categorical,
        trained.p_late(trained.train).to_numpy(),
        trained.p_late(trained.test).to_numpy(),
        DriftParams(),
    )
    seen = {c: sorted(trained.train[c].dropna().astype(str).unique()) for c in categorical}
    manifest = build_manifest(
        artifact="flight-delay",
        model_sha256=sha256_bytes(model_bytes),
        summary=trained.summary,
        params={"evaluate": {"threshold": 0.35}},
        metrics={},
        gate=GATE,
        lineage_record=lineage(LOCK, "train"),
        env={"python": "3", "flightdelay": "test", "libraries": {}},
        schema_columns=[],
        fields=input_fields(load_schema(REPO / "config" / "schema.yaml").table("flights").columns, seen),
        table="flights",
        reference=reference_distributions(reference),
        examples=examples,
        example_predictions=example_outputs(trained.model, examples, numeric, categorical, "classification"),
    )
    state = (trained.processed / STATE_FILE).read_bytes()
    path, _ = write_package(tmp_path_factory.mktemp("package"), model_bytes, manifest, state)
    return path
