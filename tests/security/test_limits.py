"""Size limits: a model file, its uncompressed size, the manifest and the checksum file (issue 8, point 3).

Each over-limit file is refused with a message naming the limit, before the part over the limit is read or
decompressed (the zip entries that would be inflated are never opened).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from flightdelay.cli import main
from flightdelay.core import limits
from flightdelay.core.errors import PipelineError
from flightdelay.modeling.model import load_model, loads_model
from flightdelay.release.package_format import (
    CHECKSUM_FILE,
    MANIFEST_FILE,
    STATE_FILE,
    PackageError,
    verify_package,
)
from tests.security.crafting import fitted_hgb_bytes, package_with_model, skops_file, value


def spy_on_zip(monkeypatch) -> list[str]:
    """Names of the zip entries anything opens (to decompress them) from now on."""
    names: list[str] = []
    original = zipfile.ZipFile.open

    def spy(self, name, *args, **kwargs):
        names.append(name if isinstance(name, str) else name.filename)
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    return names


def zip_of(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def test_a_zip_bomb_array_is_refused_before_it_is_decompressed(monkeypatch):
    bomb = zip_of({"schema.json": b"{}", "000001.npy": bytes(64 * limits.MIB)})  # 64 MiB of zeros in ~64 kB
    opened = spy_on_zip(monkeypatch)
    assert len(bomb) < limits.MIB
    with pytest.raises(PipelineError, match=r"000001\.npy expands .* over the limit of 200 \(MODEL_MAX_RATIO"):
        loads_model(bomb, "bomb.skops")
    assert opened == []


def test_a_zip_bomb_schema_is_refused_before_it_is_decompressed(monkeypatch):
    bomb = zip_of({"schema.json": b"{" + b" " * (8 * limits.MIB) + b"}"})
    opened = spy_on_zip(monkeypatch)
    with pytest.raises(PipelineError, match=r"schema\.json expands .* \(MODEL_MAX_RATIO"):
        loads_model(bomb, "bomb.skops")
    assert opened == []


def test_the_sum_of_uncompressed_sizes_has_a_limit(monkeypatch):
    data = fitted_hgb_bytes()
    opened = spy_on_zip(monkeypatch)
    monkeypatch.setattr(limits, "MODEL_UNCOMPRESSED_MAX_BYTES", 10_000)
    with pytest.raises(PipelineError, match=r"uncompressed is [\d,]+ bytes, over the limit of 10,000 \(MODEL_UNCOMPRE"):
        loads_model(data, "big.skops")
    assert opened == []


def test_schema_json_has_its_own_limit(monkeypatch):
    data = fitted_hgb_bytes()
    opened = spy_on_zip(monkeypatch)
    monkeypatch.setattr(limits, "MODEL_SCHEMA_MAX_BYTES", 1000)
    with pytest.raises(PipelineError, match=r"schema\.json is [\d,]+ bytes, over the limit of 1,000 \(MODEL_SCHEMA_M"):
        loads_model(data, "big.skops")
    assert opened == []


def test_the_number_of_entries_has_a_limit(monkeypatch):
    monkeypatch.setattr(limits, "MODEL_MAX_ENTRIES", 3)
    with pytest.raises(PipelineError, match=r"entries, over the limit of 3 \(MODEL_MAX_ENTRIES"):
        loads_model(fitted_hgb_bytes(), "many.skops")


def test_a_model_file_over_the_limit_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "model.skops"
    with path.open("wb") as f:
        f.truncate(limits.MODEL_FILE_MAX_BYTES + 1)  # sparse: costs no disk and no memory
    with pytest.raises(PipelineError, match=r"over the limit of 67,108,864 \(MODEL_FILE_MAX_BYTES"):
        load_model(path)


def test_a_schema_nested_deeper_than_the_limit_is_refused():
    deep: object = value(1)
    for _ in range(limits.MODEL_SCHEMA_MAX_DEPTH + 5):
        deep = [deep]
    data = skops_file({"__class__": "list", "__module__": "builtins", "__loader__": "ListNode", "content": deep})
    with pytest.raises(PipelineError, match=r"nests deeper than 200 levels \(MODEL_SCHEMA_MAX_DEPTH"):
        loads_model(data, "deep.skops")


def test_a_schema_too_deep_for_the_json_parser_is_a_named_refusal():
    deep = "[" * 200_000 + "]" * 200_000
    data = zip_of({"schema.json": deep.encode()})
    with pytest.raises(PipelineError, match="not a readable skops model file \\(RecursionError"):
        loads_model(data, "deep.skops")


# ------------------------------------------------------------------------------------------------ package files


@pytest.fixture
def package(tmp_path) -> Path:
    return package_with_model(tmp_path / "packages", fitted_hgb_bytes())


def grow_sparse(path: Path, size: int) -> None:
    with path.open("r+b") as f:
        f.truncate(size)


def test_a_manifest_over_the_limit_is_refused(package, tmp_path, monkeypatch, capfd):
    grow_sparse(package / MANIFEST_FILE, limits.MANIFEST_MAX_BYTES + 1)
    with pytest.raises(PackageError, match=r"manifest\.json is [\d,]+ bytes, over the limit of [\d,]+ \(MANIFEST_MAX"):
        verify_package(package)
    monkeypatch.chdir(tmp_path)
    assert main(["verify", str(package)]) == 1
    assert "MANIFEST_MAX_BYTES" in capfd.readouterr().err


def test_a_feature_state_over_the_limit_is_refused_before_it_is_read(package, tmp_path, monkeypatch, capfd):
    grow_sparse(package / STATE_FILE, limits.FEATURE_STATE_MAX_BYTES + 1)
    with pytest.raises(PackageError, match=r"feature_state\.json is [\d,]+ bytes, .* \(FEATURE_STATE_MAX_BYTES"):
        verify_package(package)
    monkeypatch.chdir(tmp_path)
    assert main(["verify", str(package)]) == 1
    assert "FEATURE_STATE_MAX_BYTES" in capfd.readouterr().err


def test_a_checksum_file_over_the_limit_is_refused(package):
    grow_sparse(package / CHECKSUM_FILE, limits.CHECKSUM_FILE_MAX_BYTES + 1)
    with pytest.raises(PackageError, match=r"checksums\.sha256 is [\d,]+ bytes, .* \(CHECKSUM_FILE_MAX_BYTES"):
        verify_package(package)


def test_the_limits_fit_a_real_model_with_room_to_spare():
    data = fitted_hgb_bytes()
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert len(data) * 10 < limits.MODEL_FILE_MAX_BYTES
    assert sum(i.file_size for i in archive.infolist()) * 10 < limits.MODEL_UNCOMPRESSED_MAX_BYTES
    assert json.loads(archive.read("schema.json"))  # and it loads
    assert loads_model(data, "real.skops") is not None
