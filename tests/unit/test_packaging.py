"""release.package_format and stages.package: content hash, manifest, checksums, verification before loading."""

from __future__ import annotations

import functools
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flightdelay.cli import main
from flightdelay.core.config import load_schema
from flightdelay.core.contracts import (
    Candidate,
    DriftResult,
    DriftRows,
    DriftSummary,
    DriftThresholds,
    FeatureDrift,
    GateDecision,
    TrainSummary,
)
from flightdelay.core.errors import PipelineError
from flightdelay.core.files import write_parquet
from flightdelay.core.hashing import sha256_bytes
from flightdelay.modeling.flight_features import FeatureState, HistoryTable, aircraft_table, input_fields
from flightdelay.modeling.model import build_pipeline, dumps_canonical, prepare
from flightdelay.release.package_format import (
    CHECKSUM_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    STATE_FILE,
    PackageError,
    find_package,
    load_package,
    package_hash,
    package_name,
    parse_checksums,
    render_checksums,
    verify_package,
    write_package,
)
from flightdelay.stages.package import (
    build_manifest,
    environment,
    example_outputs,
    example_rows,
    first_rows,
    input_schema,
    lineage,
    lock_out_hash,
    pointer,
    read_lock,
    reference_distributions,
)

NUMERIC, CATEGORICAL = ["distance"], ["carrier"]
REPO = Path(__file__).resolve().parents[2]


def tiny_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "carrier": pd.array(["UA", "AA", None, "UA", "DL", "AA"], dtype="string"),
            "distance": [100.0, np.nan, 300.0, 400.0, 500.0, 600.0],
            "late": [0, 1, 0, 1, 0, 1],
        }
    )


def tiny_model():
    frame = tiny_frame()
    pipeline = build_pipeline("classification", "logistic_regression", NUMERIC, CATEGORICAL, {"max_iter": 50}, 0)
    return pipeline.fit(prepare(frame, NUMERIC, CATEGORICAL), frame["late"].to_numpy())


def tiny_model_bytes() -> bytes:
    return _tiny_model_bytes()


# Fitted and serialised once per process: the security and registry tests build dozens of packages from it, and
# the fit is deterministic (the same bytes every time; test_model.py checks that). Bytes cannot be changed by a
# caller; tiny_model() itself still fits a fresh pipeline for each caller.
@functools.cache
def _tiny_model_bytes() -> bytes:
    return dumps_canonical(tiny_model())


@functools.cache
def _example_model():
    """A fitted tiny model that manifest_for only predicts with (never handed out)."""
    return tiny_model()


@functools.cache
def _flights_columns() -> dict:
    """The repository schema's flights columns (frozen specs), read once per process: manifest_for only reads them."""
    return load_schema(REPO / "config" / "schema.yaml").table("flights").columns


LOCK = {
    "schema": "2.0",
    "stages": {
        "raw": {
            "deps": [{"path": "src/flightdelay/stages/raw.py", "md5": "r1"}],
            "outs": [{"path": "data/raw/x", "md5": "raw.dir"}],
        },
        "features": {
            "deps": [
                {"path": "data/raw/x", "md5": "raw.dir"},
                {"path": "src/flightdelay/stages/features.py", "md5": "f1"},
            ],
            "outs": [{"path": "data/processed", "md5": "proc.dir"}],
        },
        "train": {
            "deps": [
                {"path": "data/processed", "md5": "proc.dir"},
                {"path": "src/flightdelay/stages/train.py", "md5": "t1"},
            ],
            "outs": [{"path": "models/model.skops", "md5": "m1"}],
        },
        "evaluate": {
            "deps": [{"path": "models/model.skops", "md5": "m1"}, {"path": "reports/x.json", "md5": "e1"}],
            "outs": [{"path": "reports/metrics.json", "md5": "e2"}],
        },
    },
}


def _drift(feature: str, reference: dict, current: dict) -> FeatureDrift:
    kind = "categorical" if "categories" in reference else "numeric"
    return FeatureDrift.model_validate(
        {
            "feature": feature,
            "kind": kind,
            "psi": 0.0,
            "test": "chi2" if kind == "categorical" else "ks",
            "statistic": 0.0,
            "p_value": 1.0,
            "over_threshold": False,
            "expected": False,
            "reference": reference,
            "current": current,
        }
    )


DRIFT = DriftResult(
    thresholds=DriftThresholds(psi=0.2, p_value=0.01, bins=2),
    rows=DriftRows(reference=6, current=3),
    summary=DriftSummary(
        features=2,
        over_threshold=[],
        counted=[],
        expected=[],
        max_psi=0.0,
        prediction_psi=0.0,
        prediction_over_threshold=False,
    ),
    features=[
        _drift(
            "distance",
            {"edges": [300.0], "frequencies": [0.2, 0.6], "missing": 0.2},
            {"frequencies": [0.3, 0.7], "missing": 0.0},
        ),
        _drift(
            "carrier",
            {"categories": ["AA"], "frequencies": [0.4], "other": 0.4, "missing": 0.2},
            {"frequencies": [0.5], "other": 0.5, "missing": 0.0},
        ),
    ],
    prediction=_drift(
        "prediction",
        {"edges": [0.5], "frequencies": [0.5, 0.5], "missing": 0.0},
        {"frequencies": [0.4, 0.6], "missing": 0.0},
    ),
)
GATE = GateDecision(
    decision="pass",
    candidate=Candidate(model_sha256="0" * 64, model="logistic_regression", task="classification"),
    baseline=None,
    failed=[],
    skipped=[],
    override=None,
    rules=[],
)
SUMMARY = TrainSummary(
    task="classification",
    model="logistic_regression",
    seed=0,
    fallback_used=False,
    target="late",
    numeric=NUMERIC,
    categorical=CATEGORICAL,
    rows=6,
    target_mean=0.5,
    iterations=5,
    training_loss=0.6,
)


def tiny_state_bytes() -> bytes:
    """A feature state as the features stage writes it: one history row per table, one aircraft, a calendar."""
    keys = {"hist_route": ["origin", "dest"], "hist_carrier_hour": ["carrier", "dep_hour"], "hist_dest": ["dest"]}
    keys |= {"hist_flight": ["carrier", "flight"], "hist_tail": ["tailnum"]}
    values = {"origin": "EWR", "dest": "ORD", "carrier": "UA", "dep_hour": 9, "flight": 1, "tailnum": "N1"}
    history = {
        name: HistoryTable(k, pd.DataFrame({**{c: [values[c]] for c in k}, "sum": [3], "count": [10]}))
        for name, k in keys.items()
    }
    planes = pd.DataFrame(
        {"tailnum": ["N1"], "year": [2000], "seats": [150], "engines": [2], "type": ["t"], "engine": ["e"]}
    ).assign(manufacturer="m")
    state = FeatureState(
        holiday_country="US",
        calendar=np.array(["2013-01-01", "2013-07-04", "2013-12-25"], dtype="datetime64[D]"),
        weather_trend_hours=3,
        smoothing=50.0,
        prior_sum=25,
        prior_count=100,
        history=history,
        aircraft=aircraft_table(planes),
    )
    return state.to_json().encode()


def manifest_for(model_bytes: bytes, params: dict | None = None) -> dict:
    frame = tiny_frame()
    examples = example_rows(frame, NUMERIC, CATEGORICAL, 3)
    model = _example_model()  # not loaded from model_bytes: the security tests pass hostile bytes here
    return build_manifest(
        artifact="flight-delay",
        model_sha256=sha256_bytes(model_bytes),
        summary=SUMMARY,
        params=params or {"train": {"seed": 1, "model": "logistic_regression"}},
        metrics={"roc_auc": 0.75},
        gate=GATE,
        lineage_record=lineage(LOCK, "train"),
        env={"python": "3.11", "libraries": {}},
        schema_columns=input_schema([frame], NUMERIC, CATEGORICAL),
        fields=input_fields(_flights_columns(), {}),
        table="flights",
        reference=reference_distributions(DRIFT),
        examples=examples,
        example_predictions=example_outputs(model, examples, NUMERIC, CATEGORICAL, "classification"),
    )


@pytest.fixture
def package(tmp_path):
    model_bytes = tiny_model_bytes()
    manifest = manifest_for(model_bytes)
    path, _ = write_package(tmp_path / "package", model_bytes, manifest, tiny_state_bytes())
    return path


# ------------------------------------------------------------------------------------------------ pure parts


def test_lineage_follows_dvc_lock_back_through_the_stages_train_reads():
    record = lineage(LOCK, "train")
    assert record["stages"] == ["features", "raw", "train"]  # not evaluate, which comes after
    assert record["data"] == {"data/processed": "proc.dir", "data/raw/x": "raw.dir"}
    assert record["code"] == {
        "src/flightdelay/stages/features.py": "f1",
        "src/flightdelay/stages/raw.py": "r1",
        "src/flightdelay/stages/train.py": "t1",
    }
    assert lock_out_hash(LOCK, "train", "models/model.skops") == "m1"
    assert lock_out_hash(LOCK, "train", "models/other") is None


def test_the_lock_reads_as_yaml_safe_load_reads_it(tmp_path):
    """read_lock parses with libyaml when it can; what it returns is what the pure-Python safe loader returns,
    for a lock as DVC writes it (the committed one too, which the C parser reads) and for what libyaml refuses."""
    import yaml

    path = tmp_path / "dvc.lock"
    path.write_text(yaml.safe_dump(LOCK, sort_keys=False))
    assert read_lock(path) == LOCK
    committed = REPO / "dvc.lock"
    assert read_lock(committed) == yaml.safe_load(committed.read_text())
    path.write_text("stages:\n  train: {outs: [\n")  # cut off mid-list
    with pytest.raises(yaml.YAMLError) as pure:
        yaml.safe_load(path.read_text())
    with pytest.raises(yaml.YAMLError) as ours:
        read_lock(path)
    assert str(ours.value) == str(pure.value)  # the message of the pure-Python parser, line and column included


def test_lineage_without_the_stage_asks_for_dvc_repro():
    with pytest.raises(PipelineError, match=r"dvc\.lock has no 'train' entry"):
        lineage({"stages": {}}, "train")


def test_input_schema_types_ranges_and_allowed_values():
    columns = {c["name"]: c for c in input_schema([tiny_frame()], NUMERIC, CATEGORICAL)}
    assert columns["carrier"] == {
        "name": "carrier",
        "role": "categorical",
        "dtype": "string",
        "nullable": True,
        "allowed": ["AA", "DL", "UA"],
    }
    assert columns["distance"]["min"] == 100.0
    assert columns["distance"]["max"] == 600.0
    assert columns["distance"]["nullable"] is True


def test_input_schema_by_partition_is_the_schema_of_the_whole_split():
    """package reads the training split a month at a time (flat memory at 30x); what it records must be what
    the whole split gives, also where months type a column differently (an integer month beside one with nulls,
    which pandas reads as float; a month with no value at all; text that is not a number in a numeric column)."""
    months = [
        pd.DataFrame({"code": [3, 1, 3], "gate": ["B", "A", "A"], "distance": [5, 7, 1], "wind": ["1.5", "x", "2"]}),
        pd.DataFrame({"code": [np.nan, 2.0], "gate": [None, "C"], "distance": [np.nan, np.nan], "wind": [None, "9"]}),
        pd.DataFrame(
            {"code": [1, 4], "gate": pd.array(["A", "D"], dtype="string"), "distance": [9, 0], "wind": [3, 4]}
        ),
    ]
    numeric, categorical = ["distance", "wind"], ["code", "gate"]
    whole = input_schema([pd.concat(months, ignore_index=True)], numeric, categorical)
    assert input_schema(months, numeric, categorical) == whole
    by_name = {c["name"]: c for c in whole}
    assert by_name["code"]["allowed"] == ["1.0", "2.0", "3.0", "4.0"]  # typed as the concatenation types it
    assert by_name["distance"] == {
        "name": "distance",
        "role": "numeric",
        "dtype": "float64",
        "nullable": True,
        "min": 0.0,
        "max": 9.0,
    }
    assert by_name["wind"]["nullable"] is True and by_name["wind"]["max"] == 9.0
    assert input_schema(months[:1], numeric, categorical) != whole


def test_first_rows_reads_only_the_partitions_it_needs(tmp_path):
    files = []
    for month, n in enumerate((2, 3, 4), start=1):
        files.append(tmp_path / f"2013-{month:02d}.parquet")
        write_parquet(pd.DataFrame({"x": [month * 10 + i for i in range(n)]}), files[-1])
    assert first_rows(files, ["x"], 4)["x"].tolist() == [10, 11, 20, 21]
    assert first_rows(files, ["x"], 99)["x"].tolist() == [10, 11, 20, 21, 22, 30, 31, 32, 33]
    files[2].write_bytes(b"not parquet")  # never read: the first two months hold the rows asked for
    assert len(first_rows(files, ["x"], 5)) == 5


def test_example_rows_are_model_inputs_with_nulls():
    rows = example_rows(tiny_frame(), NUMERIC, CATEGORICAL, 3)
    assert rows == [
        {"carrier": "UA", "distance": 100.0},
        {"carrier": "AA", "distance": None},
        {"carrier": None, "distance": 300.0},
    ]
    json.dumps(rows)  # plain JSON types


def test_package_hash_is_the_hash_of_the_checksum_file_which_covers_every_file(tmp_path):
    model_bytes = tiny_model_bytes()
    manifest = manifest_for(model_bytes)
    path, full_hash = write_package(tmp_path / "a", model_bytes, manifest, tiny_state_bytes())
    checksums = (path / CHECKSUM_FILE).read_text()
    assert full_hash == package_hash(checksums) == sha256_bytes(checksums.encode())
    assert path.name == package_name(full_hash) == f"model-{full_hash[:16]}"
    assert parse_checksums(checksums, "x") == {
        MODEL_FILE: sha256_bytes((path / MODEL_FILE).read_bytes()),
        MANIFEST_FILE: sha256_bytes((path / MANIFEST_FILE).read_bytes()),
        STATE_FILE: sha256_bytes((path / STATE_FILE).read_bytes()),
    }
    # any change to the manifest (not only params or data) gives another name
    other, _ = write_package(
        tmp_path / "b", model_bytes, {**manifest, "metrics": {"roc_auc": 0.99}}, tiny_state_bytes()
    )
    assert other.name != path.name


def test_manifest_contents():
    model_bytes = tiny_model_bytes()
    m = manifest_for(model_bytes)
    assert "name" not in m and "hash" not in m  # a file cannot hold a hash of itself
    assert m["format"] == 3
    assert m["model"]["sha256"] == sha256_bytes(model_bytes)
    assert m["model"]["kind"] == "logistic_regression"
    assert m["model"]["features"] == {"numeric": NUMERIC, "categorical": CATEGORICAL}
    assert m["metrics"] == {"roc_auc": 0.75}
    assert m["gate"]["decision"] == "pass"
    assert m["lineage"]["data"]["data/processed"] == "proc.dir"
    assert m["lineage"]["git_commit"] is None
    assert "promotion" in m["lineage"]["git_commit_recorded_at"]
    assert m["reference"]["features"]["distance"] == {
        "kind": "numeric",
        "edges": [300.0],
        "frequencies": [0.2, 0.6],
        "missing": 0.2,
    }
    assert m["reference"]["prediction"]["kind"] == "numeric"
    assert len(m["examples"]) == 3
    # the model's output for each example, as exact decimal text (the canary compares to 1e-9)
    assert len(m["example_predictions"]) == 3
    assert all(0.0 < float(p) < 1.0 and repr(float(p)) == p for p in m["example_predictions"])
    fields = {f["name"]: f for f in m["input_schema"]["flights"]}
    assert "dep_delay" not in fields and "arr_delay" not in fields  # no outcome columns
    carriers = ["9E", "AA", "AS", "B6", "DL", "EV", "F9", "FL", "HA", "MQ", "OO", "UA", "US", "VX", "WN", "YV"]
    assert fields["carrier"]["allowed"] == carriers
    assert fields["time_hour"]["format"] == "date-time"
    assert {c["name"] for c in m["input_schema"]["columns"]} == {"carrier", "distance"}
    p = pointer(m, "models/package", "model-" + "a" * 16, "a" * 64)
    assert p["name"] == "model-" + "a" * 16
    assert p["hash"] == "a" * 64
    assert p["path"] == f"models/package/model-{'a' * 16}"
    assert p["gate"] == {"decision": "pass", "override": None}
    assert p["data"] == m["lineage"]["data"]


def test_checksums_round_trip_in_sha256sum_format():
    text = render_checksums({"b.txt": "1" * 64, "a.txt": "2" * 64})
    assert text == f"{'2' * 64}  a.txt\n{'1' * 64}  b.txt\n"
    assert parse_checksums(text, "x") == {"a.txt": "2" * 64, "b.txt": "1" * 64}


@pytest.mark.parametrize(
    "text",
    ["nonsense\n", f"{'1' * 64} a.txt\n", f"{'1' * 64}  ../a.txt\n", f"{'1' * 64}  a\n{'2' * 64}  a\n", ""],
)
def test_malformed_checksums_are_refused(text):
    with pytest.raises(PackageError):
        parse_checksums(text, "x")


# ------------------------------------------------------------------------------------------------ packages on disk


def test_a_written_package_verifies_and_loads(package):
    assert sorted(p.name for p in package.iterdir()) == [CHECKSUM_FILE, STATE_FILE, MANIFEST_FILE, MODEL_FILE]
    loaded = load_package(package)
    assert loaded.path.name == package.name == f"model-{loaded.hash[:16]}"
    proba = loaded.model.predict_proba(prepare(tiny_frame(), NUMERIC, CATEGORICAL))
    assert proba.shape == (6, 2)
    assert find_package(package.parent) == package


def test_writing_the_same_package_twice_gives_the_same_bytes(tmp_path):
    model_bytes = tiny_model_bytes()
    first, _ = write_package(tmp_path / "a", model_bytes, manifest_for(model_bytes), tiny_state_bytes())
    second, _ = write_package(tmp_path / "b", model_bytes, manifest_for(model_bytes), tiny_state_bytes())
    assert first.name == second.name
    for file in (MODEL_FILE, MANIFEST_FILE, STATE_FILE, CHECKSUM_FILE):
        assert (first / file).read_bytes() == (second / file).read_bytes()


def flip_a_byte(path, offset: int = -20) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_changed_model_file_is_refused(package):
    flip_a_byte(package / MODEL_FILE)
    with pytest.raises(PackageError, match=r"model\.skops: SHA-256 is .* refusing to load it"):
        load_package(package)


def test_a_changed_manifest_is_refused(package):
    manifest = json.loads((package / MANIFEST_FILE).read_text())
    manifest["metrics"]["roc_auc"] = 0.99
    (package / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(PackageError, match=r"manifest\.json: SHA-256"):
        verify_package(package)


def test_a_manifest_rewritten_with_matching_checksums_is_still_refused(package):
    # Someone edits the params and recomputes the checksums: the name no longer matches the contents.
    manifest = json.loads((package / MANIFEST_FILE).read_text())
    manifest["params"]["train"]["seed"] = 99
    text = json.dumps(manifest).encode()
    (package / MANIFEST_FILE).write_bytes(text)
    sums = parse_checksums((package / CHECKSUM_FILE).read_text(), "x")
    sums[MANIFEST_FILE] = sha256_bytes(text)
    (package / CHECKSUM_FILE).write_text(render_checksums(sums))
    with pytest.raises(PackageError, match="does not match its name"):
        verify_package(package)


def test_an_extra_file_is_refused(package):
    (package / "run_me.py").write_text("print('hi')\n")
    with pytest.raises(PackageError, match=r"not covered by checksums\.sha256: \['run_me\.py'\]"):
        verify_package(package)


def test_a_missing_file_is_refused(package):
    (package / MODEL_FILE).unlink()
    with pytest.raises(PackageError, match=r"missing: \['model\.skops'\]"):
        verify_package(package)


def test_a_missing_checksum_file_is_refused(package):
    (package / CHECKSUM_FILE).unlink()
    with pytest.raises(PackageError, match=r"no checksums\.sha256"):
        verify_package(package)


def test_a_renamed_package_is_refused(package):
    other = package.with_name("model-" + "0" * 16)
    shutil.move(package, other)
    with pytest.raises(PackageError, match="does not match its name"):
        verify_package(other)


def test_cli_verify_refuses_a_tampered_package_with_a_message(package, capfd, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["verify", str(package)]) == 0
    assert f"{package}: OK (logistic_regression classification, gate pass" in capfd.readouterr().out
    flip_a_byte(package / MODEL_FILE)
    assert main(["verify", str(package)]) == 1
    err = capfd.readouterr().err
    assert "verify failed:" in err
    assert "refusing to load it" in err
    assert "Traceback" not in err


def test_the_raw_fields_are_the_main_table_s_columns_but_the_leaky_ones():
    """For the default data set, its builder's input columns exactly (the outcome columns are its leaky ones)."""
    from flightdelay.core.config import parse_schema
    from flightdelay.stages.package import raw_fields

    flights = load_schema(Path(__file__).resolve().parents[2] / "config" / "schema.yaml")
    leaky = ["air_time", "arr_delay", "arr_time", "dep_delay", "dep_time", "late"]
    assert raw_fields(flights, "flights", leaky, {}) == input_fields(flights.table("flights").columns, {})
    days = parse_schema({"tables": {"days": {"columns": {"date": {"dtype": "datetime"}, "sky": {"dtype": "str"}}}}})
    fields = raw_fields(days, "days", ["rain_tomorrow"], {"sky": ["fog", "sun"]})
    assert [f["name"] for f in fields] == ["date", "sky"] and fields[1]["allowed"] == ["fog", "sun"]


def test_the_manifest_records_pythons_minor_version_not_its_patch_release():
    """A patch release (3.11.2 or 3.11.7) computes the same model; the package's bytes, and so its name in the
    committed dvc.lock, must not depend on it (a fresh clone on another patch release reproduces the lock)."""
    recorded = environment()["python"]
    assert recorded == "{}.{}".format(*sys.version_info[:2])
    assert recorded.count(".") == 1
