"""Hostile zip archives and arrays as model files: each is refused by the audit before skops opens the bytes.

Every file here is built by the test from a real fitted model (tests/security/crafting.py), with the zip
written by hand where Python's zipfile would not write it (a stream longer than its recorded size, a flag)."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Callable
from contextlib import nullcontext

import numpy as np
import pytest

from flightdelay.core.errors import PipelineError
from flightdelay.modeling.model import loads_model
from flightdelay.release.package_format import load_package
from tests.security.crafting import fitted_hgb_bytes, package_with_model

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_END = struct.Struct("<IHHHHIIH")


def entries_of(data: bytes) -> list[tuple[str, bytes]]:
    archive = zipfile.ZipFile(io.BytesIO(data))
    return [(name, archive.read(name)) for name in archive.namelist()]


def hand_zip(entries: list[tuple[str, bytes, bytes]], encrypted: str = "") -> bytes:
    """A zip of (name, true bytes, deflate stream) whose directory records the true bytes' size and CRC,
    whatever the stream inflates to; the entry named `encrypted` has its encrypted flag set."""
    body, central = io.BytesIO(), io.BytesIO()
    for name, data, stream in entries:
        flags = 0x1 if name == encrypted else 0
        crc, raw_name, offset = zlib.crc32(data), name.encode(), body.tell()
        sizes = (crc, len(stream), len(data), len(raw_name))
        body.write(_LOCAL.pack(0x04034B50, 20, flags, 8, 0, 0, *sizes, 0) + raw_name + stream)
        central.write(_CENTRAL.pack(0x02014B50, 20, 20, flags, 8, 0, 0, *sizes, 0, 0, 0, 0, 0, offset) + raw_name)
    directory, start = central.getvalue(), body.tell()
    body.write(directory + _END.pack(0x06054B50, 0, 0, len(entries), len(entries), len(directory), start, 0))
    return body.getvalue()


def deflate(data: bytes, padding: int = 0) -> bytes:
    """A raw deflate stream of `data` followed by `padding` zero bytes."""
    stream = zlib.compressobj(9, zlib.DEFLATED, -15)
    return stream.compress(data) + stream.compress(b"\0" * padding) + stream.flush()


def rezip(entries: list[tuple[str, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return out.getvalue()


def refused(data: bytes, pattern: str) -> None:
    with pytest.raises(PipelineError, match=pattern):
        loads_model(data, "hostile.skops")


# ------------------------------------------------------------------------------------------------ lying sizes


@pytest.mark.parametrize("bombed", ["schema.json", "an array"])
def test_an_entry_whose_stream_inflates_past_its_recorded_size_is_refused(bombed):
    # zipfile inflates up to 1 GiB of such a stream before truncating it to the recorded size (and the CRC then
    # matches); 4 MiB of padding shows the check without spending a GiB
    entries = entries_of(fitted_hgb_bytes())
    target = "schema.json" if bombed == "schema.json" else next(n for n, _ in entries if n.endswith(".npy"))
    model = hand_zip([(n, d, deflate(d, 4 << 20 if n == target else 0)) for n, d in entries])
    assert zipfile.ZipFile(io.BytesIO(model)).read(target) == dict(entries)[target]  # zipfile reads it "fine"
    refused(model, f"{target.replace('.', '[.]')} inflates to more or other than the [0-9,]+ bytes the zip directory")


def test_a_hand_written_zip_with_honest_streams_loads():
    # the control for the test above: the same hand-written archive without padding is a valid model
    entries = entries_of(fitted_hgb_bytes())
    assert loads_model(hand_zip([(n, d, deflate(d)) for n, d in entries]), "honest.skops") is not None


def test_an_entry_whose_stream_ends_before_its_recorded_size_or_fails_its_crc_is_refused():
    entries = entries_of(fitted_hgb_bytes())
    short = [(n, d, deflate(d[:-1] if n == "schema.json" else d)) for n, d in entries]
    refused(hand_zip(short), "schema[.]json inflates to more or other than")
    wrong = hand_zip([(n, d, deflate(d.replace(b'"', b"'", 1) if n == "schema.json" else d)) for n, d in entries])
    refused(wrong, "schema[.]json does not match its CRC")


# ------------------------------------------------------------------------------------------------ odd archives


@pytest.mark.parametrize(
    ("compression", "number"), [(zipfile.ZIP_BZIP2, 12), (zipfile.ZIP_LZMA, 14)], ids=["bzip2", "lzma"]
)
def test_entries_compressed_with_anything_but_deflate_are_refused(compression, number):
    refused(rezip(entries_of(fitted_hgb_bytes()), compression), f"uses compression {number}, not deflate")


@pytest.mark.parametrize("target", ["schema.json", "an array"])
def test_an_entry_flagged_encrypted_is_refused_with_a_message(target):
    # zipfile raises a bare RuntimeError ("password required") on such an entry: it must be a refusal instead
    entries = entries_of(fitted_hgb_bytes())
    name = "schema.json" if target == "schema.json" else next(n for n, _ in entries if n.endswith(".npy"))
    model = hand_zip([(n, d, deflate(d)) for n, d in entries], encrypted=name)
    with pytest.raises(RuntimeError, match="password required"):  # what zipfile alone does with it
        zipfile.ZipFile(io.BytesIO(model)).read(name)
    refused(model, f"{name.replace('.', '[.]')} is marked encrypted")


@pytest.mark.parametrize(
    ("extra", "shown"),
    [
        ("schema.json\n", r"'schema\.json\\n'"),  # `$` in a pattern also matches before a final newline
        ("0001.npy\n", r"'0001\.npy\\n'"),
        ("schema.json", r"'schema\.json'"),
        ("../../evil.npy", r"'\.\./\.\./evil\.npy'"),
    ],
    ids=["schema-newline", "npy-newline", "duplicate-schema", "path-traversal"],
)
def test_extra_duplicate_or_odd_entry_names_are_refused(extra, shown):
    entries = entries_of(fitted_hgb_bytes())
    duplicate = pytest.warns(UserWarning, match="Duplicate name") if extra == "schema.json" else nullcontext()
    with duplicate:
        model = rezip([*entries, (extra, b"{}")])
    refused(model, rf"unexpected or repeated zip entries \[{shown}\]")


# ------------------------------------------------------------------------------------------------ arrays


def npy_with_header(header: str, data: bytes = b"") -> bytes:
    text = header.encode("latin1")
    text += b" " * (118 - len(text)) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + data


def object_array() -> bytes:
    out = io.BytesIO()
    np.save(out, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    return out.getvalue()


ARRAYS: dict[str, tuple[Callable[[], bytes], str]] = {
    "object dtype (pickled)": (object_array, r"holds Python objects \(dtype object\), which load by unpickling"),
    "745 GiB of float64 in 64 bytes": (
        lambda: npy_with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000,), }", b"\0" * 64),
        r"declares 100,000,000,000 items of float64 \(800,000,000,000 bytes\) but holds 64 bytes",
    ),
    "10**16 items of a zero-size dtype": (
        lambda: npy_with_header("{'descr': '|V0', 'fortran_order': False, 'shape': (10000000000000000,), }"),
        r"declares 10,000,000,000,000,000 items of \|V0",
    ),
    "a zip instead of an array": (
        lambda: rezip([("x.npy", b"")]),
        r"is not a plain \.npy array",
    ),
}


@pytest.mark.parametrize("kind", list(ARRAYS))
def test_a_hostile_array_is_refused_before_numpy_reads_it(kind, tmp_path, monkeypatch):
    build, pattern = ARRAYS[kind]
    entries = entries_of(fitted_hgb_bytes())
    first = next(n for n, _ in entries if n.endswith(".npy"))
    model = rezip([(n, build() if n == first else d) for n, d in entries])

    def no_allocation(*args: object, **kwargs: object) -> None:
        raise AssertionError("numpy read the array: the audit did not refuse it first")

    monkeypatch.setattr(np.lib.format, "read_array", no_allocation)
    refused(model, pattern)
    with pytest.raises(PipelineError, match=pattern):  # through a package that verifies: the same refusal
        load_package(package_with_model(tmp_path, model))
