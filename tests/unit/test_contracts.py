"""flightdelay.core.contracts: each contract reads a real stage output and writes the same bytes back; a malformed
file fails with one line naming the file and the key.

The fixtures in tests/fixtures/contracts/ are outputs of a full `dvc repro` (drift.json trimmed to five features;
gate_overridden.json is gate.json with a baseline, a failed rule and an applied override)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flightdelay.core.contracts import (
    CategoricalReference,
    Contract,
    ContractError,
    DriftResult,
    FeatureSpec,
    GateDecision,
    NumericReference,
    TrainSummary,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "contracts"

CASES = [
    (FeatureSpec, "feature_spec.json"),
    (TrainSummary, "train_summary.json"),
    (DriftResult, "drift.json"),
    (GateDecision, "gate.json"),
    (GateDecision, "gate_overridden.json"),
]


@pytest.mark.parametrize(("contract", "name"), CASES)
def test_save_of_load_gives_the_same_bytes(contract: type[Contract], name: str, tmp_path: Path):
    source = FIXTURES / name
    loaded = contract.load(source)
    loaded.save(tmp_path / name)
    assert (tmp_path / name).read_bytes() == source.read_bytes()
    assert contract.load(tmp_path / name) == loaded


def test_drift_keeps_numeric_and_categorical_distributions_apart():
    drift = DriftResult.load(FIXTURES / "drift.json")
    kinds = {f.kind: type(f.reference) for f in drift.features}
    assert kinds == {"numeric": NumericReference, "categorical": CategoricalReference}


def test_gate_rule_numbers_keep_their_json_type():
    gate = GateDecision.load(FIXTURES / "gate.json")
    drifted = next(r for r in gate.rules if r.rule == "max_drifted_features")
    assert (drifted.value, drifted.threshold) == (4, 6)
    assert type(drifted.value) is int and type(drifted.threshold) is int


def test_gate_override_and_baseline_are_typed():
    gate = GateDecision.load(FIXTURES / "gate_overridden.json")
    assert gate.packageable and gate.override is not None and gate.override.applied
    assert gate.baseline is not None and gate.baseline.version == "v1.2.0"


def _write(path: Path, value: object) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("contract", "name", "edit", "expected"),
    [
        (TrainSummary, "train_summary.json", lambda d: d.pop("target"), "missing key target"),
        (TrainSummary, "train_summary.json", lambda d: d.update(colour="red"), "unknown key colour"),
        (FeatureSpec, "feature_spec.json", lambda d: d["groups"].update(route="distance"), "groups.route"),
        (DriftResult, "drift.json", lambda d: d["features"][1].pop("psi"), "missing key features[1].psi"),
        (GateDecision, "gate.json", lambda d: d["rules"][0].update(outcome="maybe"), "rules[0].outcome"),
        (GateDecision, "gate.json", lambda d: d.update(decision="yes"), "decision"),
    ],
)
def test_a_malformed_file_gets_one_line_naming_file_and_key(contract, name, edit, expected, tmp_path: Path):
    data = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    edit(data)
    path = _write(tmp_path / name, data)
    with pytest.raises(ContractError) as caught:
        contract.load(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: not a {contract.__name__}: ")
    assert expected in message


def test_a_missing_or_broken_file_says_which(tmp_path: Path):
    with pytest.raises(ContractError, match=r"gate\.json: missing"):
        GateDecision.load(tmp_path / "gate.json")
    (tmp_path / "drift.json").write_text('{"rows": ', encoding="utf-8")
    with pytest.raises(ContractError, match=r"drift\.json: not JSON"):
        DriftResult.load(tmp_path / "drift.json")
    with pytest.raises(ContractError, match=r"summary\.json: not a TrainSummary: \(top level\)"):
        TrainSummary.load(_write(tmp_path / "summary.json", [1, 2]))


def test_contracts_are_frozen():
    summary = TrainSummary.load(FIXTURES / "train_summary.json")
    with pytest.raises(ValueError, match="frozen"):
        summary.rows = 1  # type: ignore[misc]
    assert summary.features == [*summary.numeric, *summary.categorical]
