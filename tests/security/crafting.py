"""Hand-built skops files and packages, as an attacker would write them (schema.json edited inside the zip).

Each payload, if it ran, would create a marker file; the tests assert the marker does not exist. `load_unsafely`
is the control: it loads a file the way a permissive loader would (trusting every type skops reports), to show
that each payload really runs when nothing stops it, so a test that passes is not passing by accident.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import skops
import skops.io as sio
from sklearn.preprocessing import FunctionTransformer
from skops.io._protocol import PROTOCOL

from flightdelay.modeling.model import build_pipeline, dumps_canonical, prepare
from flightdelay.release.package_format import write_package
from tests.unit.test_packaging import CATEGORICAL, NUMERIC, manifest_for, tiny_frame, tiny_state_bytes

FUNCTION_TRANSFORMER = ("sklearn.preprocessing._function_transformer", "FunctionTransformer")


def node(loader: str, module: str, cls: str, **rest: Any) -> dict[str, Any]:
    return {"__class__": cls, "__module__": module, "__loader__": loader, **rest}


def value(v: Any) -> dict[str, Any]:
    return node("JsonNode", "builtins", "str", content=json.dumps(v), is_json=True)


def tuple_of(*items: dict[str, Any]) -> dict[str, Any]:
    return node("TupleNode", "builtins", "tuple", content=list(items))


def dict_of(**items: dict[str, Any]) -> dict[str, Any]:
    key_types = node("ListNode", "builtins", "list", content=[node("TypeNode", "builtins", "str")] * len(items))
    return node("DictNode", "builtins", "dict", content=items, key_types=key_types)


def function(module: str, name: str) -> dict[str, Any]:
    return node("FunctionNode", module, name)


def partial(func: dict[str, Any], *args: dict[str, Any], **kwds: dict[str, Any]) -> dict[str, Any]:
    content = {"func": func, "args": tuple_of(*args), "kwds": dict_of(**kwds), "namespace": value(None)}
    return node("PartialNode", "functools", "partial", content=content)


def call_at_load(module: str, name: str, *args: dict[str, Any]) -> dict[str, Any]:
    """skops calls `module.name(*args)` while it loads this node."""
    return node("ConstructorFromReduceNode", module, name, content=tuple_of(*args))


def methodcaller(name: str, *args: dict[str, Any]) -> dict[str, Any]:
    return node("OperatorFuncNode", "operator", "methodcaller", attrs=tuple_of(value(name), *args))


def function_transformer(func: dict[str, Any]) -> dict[str, Any]:
    """A fitted FunctionTransformer (2 features, no validation) that calls `func(X)` in `transform`."""
    attrs = dict_of(
        func=func,
        inverse_func=value(None),
        validate=value(False),
        accept_sparse=value(False),
        check_inverse=value(True),
        feature_names_out=value(None),
        kw_args=value(None),
        inv_kw_args=value(None),
        n_features_in_=value(2),
        _sklearn_version=value("1.9.1"),
    )
    return node("ObjectNode", *FUNCTION_TRANSFORMER, content=attrs)


def skops_file(root: dict[str, Any], entries: dict[str, bytes] | None = None) -> bytes:
    schema = {**root, "protocol": PROTOCOL, "_skops_version": skops.__version__}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("schema.json", json.dumps(schema))
        for name, data in (entries or {}).items():
            archive.writestr(name, data)
    return out.getvalue()


def edit_schema(data: bytes, edit: Any) -> bytes:
    """A copy of a skops file whose schema.json went through `edit(schema) -> None`."""
    source = zipfile.ZipFile(io.BytesIO(data))
    schema = json.loads(source.read("schema.json"))
    edit(schema)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            body = json.dumps(schema).encode() if info.filename == "schema.json" else source.read(info.filename)
            archive.writestr(info.filename, body)
    return out.getvalue()


def find_nodes(tree: Any, loader: str) -> list[dict[str, Any]]:
    found, stack = [], [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("__loader__") == loader:
                found.append(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def fitted_hgb_bytes() -> bytes:
    frame = tiny_frame()
    model = build_pipeline("classification", "hist_gradient_boosting", NUMERIC, CATEGORICAL, {"max_iter": 3}, 0)
    model.fit(prepare(frame, NUMERIC, CATEGORICAL), frame["late"].to_numpy())
    return dumps_canonical(model)


def model_input() -> Any:
    return prepare(tiny_frame(), NUMERIC, CATEGORICAL)


def load_unsafely(data: bytes) -> Any:
    """The control: what a loader that trusts whatever skops lists would do (it runs load-time payloads)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy.distutils warns that it is deprecated
        return sio.loads(data, trusted=sio.get_untrusted_types(data=data))


def use(model: Any) -> None:
    """Use a loaded model the way predict does; a payload may break it after it has run."""
    X = np.ones((3, 2)) if isinstance(model, FunctionTransformer) else model_input()
    method = getattr(model, "predict_proba", None) or model.transform
    with contextlib.suppress(Exception):  # the payload has run (or not) by now; its side effect is what counts
        method(X)


def package_with_model(parent: Path, model_bytes: bytes) -> Path:
    """A package whose checksums, name and manifest are all consistent: only the model file is hostile."""
    path, _ = write_package(parent, model_bytes, manifest_for(model_bytes), tiny_state_bytes())
    return path
