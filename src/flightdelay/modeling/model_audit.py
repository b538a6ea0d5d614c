"""What a model file may hold, checked on its bytes before skops builds or runs anything (docs/security.md).

skops refuses types it does not trust, but trusting a type name is not enough: a name trusted as a class is
also trusted as a function, a constructor called with arguments from the file, or a module to import. So a
model file is read in two steps, and the first one runs no code from the file:

1. `audit_model_bytes` checks the zip archive against the limits in flightdelay.core.limits (file size, the sum of
   the entries' uncompressed sizes and each entry's compression ratio, read from the zip directory before
   anything is decompressed), inflates each entry itself with a bound (`inflate_entry`: exactly its recorded
   size, or a refusal), checks each array's header (`check_npy`), parses schema.json, and walks every node in
   it. Each node's loader and exact type must be one that `build_pipeline` produces (`MODEL_TYPES`, derived by
   fitting every model kind for every task; tests/security recomputes it) or one of skops's own safe defaults for
   plain data (arrays, numpy scalars and dtypes, primitives). No function may appear except inside the one audited
   `functools.partial` scikit-learn itself writes, which must match `AUDITED_PARTIAL` exactly. Every node's
   `__id__` is recorded, inside the partial too, and nodes that share one (skops loads the first and reuses it for
   the others) must describe the same object (`_canonical`), so no node can stand in for another.
2. skops loads the file with only `SKOPS_TRUSTED` added to its defaults, as a second, independent check.

scikit-learn 1.9 stores the losses of hist_gradient_boosting as objects (`LossNode`/`ObjectNode` of exact
classes), not as partials; its only partial is the estimator's `_preprocessor`,
`FunctionTransformer(func=partial(check_array, dtype=[np.float64], ensure_all_finite=False))`.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import struct
import zipfile
import zlib
from typing import Any

import numpy as np

from flightdelay.core import limits
from flightdelay.core.errors import PipelineError

# Loader and type of every node in a model file written by `build_pipeline` (all model kinds and tasks).
MODEL_TYPES = frozenset(
    {
        "DTypeNode numpy.dtype",
        "DictNode builtins.dict",
        "FunctionNode sklearn.utils.validation.check_array",  # only as the func of AUDITED_PARTIAL
        "JsonNode builtins.str",
        "ListNode builtins.list",
        "LossNode sklearn._loss._loss.CyHalfBinomialLoss",
        "LossNode sklearn._loss._loss.CyHalfSquaredError",
        "NdArrayNode numpy.float64",
        "NdArrayNode numpy.ndarray",
        "NdArrayNode numpy.uint64",
        "ObjectNode sklearn._loss.link.IdentityLink",
        "ObjectNode sklearn._loss.link.Interval",
        "ObjectNode sklearn._loss.link.LogitLink",
        "ObjectNode sklearn._loss.loss.HalfBinomialLoss",
        "ObjectNode sklearn._loss.loss.HalfSquaredError",
        "ObjectNode sklearn.compose._column_transformer.ColumnTransformer",
        "ObjectNode sklearn.dummy.DummyClassifier",
        "ObjectNode sklearn.dummy.DummyRegressor",
        "ObjectNode sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "ObjectNode sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "ObjectNode sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
        "ObjectNode sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "ObjectNode sklearn.impute._base.MissingIndicator",
        "ObjectNode sklearn.impute._base.SimpleImputer",
        "ObjectNode sklearn.linear_model._logistic.LogisticRegression",
        "ObjectNode sklearn.pipeline.Pipeline",
        "ObjectNode sklearn.preprocessing._data.StandardScaler",
        "ObjectNode sklearn.preprocessing._encoders.OneHotEncoder",
        "ObjectNode sklearn.preprocessing._encoders.OrdinalEncoder",
        "ObjectNode sklearn.preprocessing._function_transformer.FunctionTransformer",
        "ObjectNode sklearn.preprocessing._label.LabelEncoder",
        "PartialNode functools.partial",
        "RandomGeneratorNode numpy.random._generator.Generator",
        "SliceNode builtins.slice",
        "TupleNode builtins.tuple",
        "TypeNode builtins.int",
        "TypeNode builtins.str",
        "TypeNode numpy.float64",
    }
)

# The types skops is told to trust (`skops.io.loads(trusted=...)`), beside its own defaults for plain data: every
# class of an ObjectNode above (modeling/skops_io.py imports skops without its default list of scikit-learn
# estimators) and the four it reports as untrusted even with that list.
SKOPS_TRUSTED = frozenset(
    {
        "functools.partial",
        "numpy.dtype",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.utils.validation.check_array",
        *(name.removeprefix("ObjectNode ") for name in MODEL_TYPES if name.startswith("ObjectNode ")),
    }
)


def _node(loader: str, module: str, cls: str, **rest: Any) -> dict[str, Any]:
    return {"__class__": cls, "__module__": module, "__loader__": loader, **rest}


def _json(value: str) -> dict[str, Any]:
    return _node("JsonNode", "builtins", "str", content=value, is_json=True)


# The one partial a model may hold, as skops writes it (without `__id__`s): HGB's `_preprocessor` function.
AUDITED_PARTIAL = _node(
    "PartialNode",
    "functools",
    "partial",
    content={
        "func": _node("FunctionNode", "sklearn.utils.validation", "check_array"),
        "args": _node("TupleNode", "builtins", "tuple", content=[]),
        "kwds": _node(
            "DictNode",
            "builtins",
            "dict",
            content={
                "dtype": _node("ListNode", "builtins", "list", content=[_node("TypeNode", "numpy", "float64")]),
                "ensure_all_finite": _json("false"),
            },
            key_types=_node("ListNode", "builtins", "list", content=[_node("TypeNode", "builtins", "str")] * 2),
        ),
        "namespace": _json("null"),
    },
)


def _skops_defaults() -> dict[str, frozenset[str]]:
    """skops's own trusted defaults for nodes of plain data, whose exact type depends on the data."""
    from flightdelay.modeling.skops_io import skops_io

    skops_io()  # skops imported without its scan of scikit-learn, if not yet imported
    from skops.io._trusted_types import CONTAINER_TYPE_NAMES, NUMPY_DTYPE_TYPE_NAMES, PRIMITIVE_TYPE_NAMES

    return {
        "NdArrayNode": frozenset(["numpy.ndarray", *NUMPY_DTYPE_TYPE_NAMES]),
        "TypeNode": frozenset([*PRIMITIVE_TYPE_NAMES, *CONTAINER_TYPE_NAMES, *NUMPY_DTYPE_TYPE_NAMES]),
        "JsonNode": frozenset(PRIMITIVE_TYPE_NAMES),
    }


_ENTRY = re.compile(r"schema\.json|\d{1,12}\.npy")  # whole names only: re.fullmatch


def node_type(node: dict[str, Any]) -> str:
    return f"{node.get('__loader__')} {node.get('__module__')}.{node.get('__class__')}"


def node_types(schema: Any) -> set[str]:
    """Every `loader module.class` in a parsed schema.json (how MODEL_TYPES is derived)."""
    found: set[str] = set()
    stack = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "__loader__" in item:
                found.add(node_type(item))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _without_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_ids(v) for k, v in value.items() if k != "__id__"}
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    return value


def _canonical(node: Any, arrays: dict[str, str], order: dict[int, int]) -> Any:
    """A node as compared with another that shares its id: nested ids renumbered by first appearance (skops gives
    temporaries, such as the empty array a dtype is written as, a fresh id each time it writes the same object)
    and each array file named by the SHA-256 of its bytes, so only the same content with the same sharing matches."""
    if isinstance(node, list):
        return [_canonical(v, arrays, order) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key in sorted(node):
        value = node[key]
        if key == "__id__" and type(value) is int:
            out[key] = order.setdefault(value, len(order))
        elif key == "file" and isinstance(value, str):
            out[key] = arrays.get(value, value)
        else:
            out[key] = _canonical(value, arrays, order)
    return out


def _same_node(
    ident: int, node: dict[str, Any], first: dict[int, dict[str, Any]], arrays: dict[str, str], where: str
) -> None:
    """skops builds the first node with an `__id__` and hands it back wherever the id appears again, so every
    node sharing an id must describe the very same object (see _canonical); each of its nested nodes is checked
    the same way against every other node with that nested node's id."""
    seen = first.setdefault(ident, node)
    if seen is not node and _canonical(seen, arrays, {}) != _canonical(node, arrays, {}):
        raise PipelineError(
            f"{where}: two different objects in the model file share the id {ident} ({node_type(seen)} and "
            f"{node_type(node)}); skops would load one in place of the other, so it is refused"
        )


def audit_schema(schema: Any, where: str, arrays: dict[str, str] | None = None) -> None:
    """Refuse a schema with any node a `build_pipeline` model does not have (see the module docstring).
    `arrays`: the SHA-256 of each array entry, by name, to compare nodes sharing an id by their arrays' bytes."""
    defaults = _skops_defaults()
    first: dict[int, dict[str, Any]] = {}
    audited_functions: set[int] = set()  # id() of the FunctionNode inside the audited partial
    stack: list[tuple[Any, int]] = [(schema, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limits.MODEL_SCHEMA_MAX_DEPTH:
            raise PipelineError(
                f"{where}: schema.json nests deeper than {limits.MODEL_SCHEMA_MAX_DEPTH} levels "
                "(MODEL_SCHEMA_MAX_DEPTH in flightdelay/limits.py); refusing it"
            )
        if isinstance(item, list):
            stack.extend((value, depth + 1) for value in item)
            continue
        if not isinstance(item, dict):
            continue
        if "__loader__" in item:
            loader, kind = item["__loader__"], node_type(item)
            name = kind.split(" ", 1)[1]
            ident = item.get("__id__", 0)
            if not all(isinstance(item.get(k), str) for k in ("__loader__", "__module__", "__class__")) or (
                type(ident) is not int
            ):
                raise PipelineError(f"{where}: a node in the model file has a malformed loader, type or id: {kind}")
            if loader == "PartialNode":
                if _without_ids(item) != AUDITED_PARTIAL:
                    raise PipelineError(
                        f"{where}: the model file holds a functools.partial other than the one scikit-learn writes "
                        "(partial(sklearn.utils.validation.check_array, dtype=[float64], ensure_all_finite=False)); "
                        "refusing it before anything in it is loaded"
                    )
                audited_functions.add(id(item["content"]["func"]))
            elif loader == "FunctionNode" and id(item) not in audited_functions:
                raise PipelineError(
                    f"{where}: the model file holds the function {name}; a model may hold no function, so it is "
                    "refused before anything in it is loaded"
                )
            elif kind not in MODEL_TYPES and name not in defaults.get(loader, ()):
                raise PipelineError(
                    f"{where}: the model file holds {kind}, which no model built by "
                    "flightdelay.modeling.model.build_pipeline contains; refusing it before anything in it is loaded"
                )
            if "__id__" in item:
                _same_node(ident, item, first, arrays or {}, where)
        stack.extend((value, depth + 1) for value in item.values())


def check_archive(data: bytes, where: str) -> zipfile.ZipFile:
    """The model file as a zip archive, refused if it is over a limit (decompressing nothing)."""
    if len(data) > limits.MODEL_FILE_MAX_BYTES:
        raise PipelineError(limits.over(where, len(data), limits.MODEL_FILE_MAX_BYTES, "MODEL_FILE_MAX_BYTES"))
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise PipelineError(f"{where}: not a readable skops model file ({exc}); rerun the train stage") from None
    entries = archive.infolist()
    if len(entries) > limits.MODEL_MAX_ENTRIES:
        raise PipelineError(
            f"{where}: {len(entries):,} entries, over the limit of {limits.MODEL_MAX_ENTRIES:,} "
            "(MODEL_MAX_ENTRIES in flightdelay/limits.py); refusing to read it"
        )
    names = [info.filename for info in entries]
    if len(set(names)) != len(names) or not all(_ENTRY.fullmatch(name) for name in names):
        odd = sorted({n for n in names if not _ENTRY.fullmatch(n) or names.count(n) > 1})[:5]
        raise PipelineError(
            f"{where}: not a readable skops model file (unexpected or repeated zip entries {odd}); "
            "rerun the train stage"
        )
    total = 0
    for info in entries:
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise PipelineError(f"{where}: {info.filename} uses compression {info.compress_type}, not deflate")
        if info.flag_bits & 0x1:
            raise PipelineError(f"{where}: {info.filename} is marked encrypted; a model file is never encrypted")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > limits.RATIO_FLOOR_BYTES and ratio > limits.MODEL_MAX_RATIO:
            raise PipelineError(
                f"{where}: {info.filename} expands {ratio:,.0f} times ({info.compress_size:,} to "
                f"{info.file_size:,} bytes), over the limit of {limits.MODEL_MAX_RATIO} (MODEL_MAX_RATIO in "
                "flightdelay/limits.py): a zip bomb; refusing to read it"
            )
        total += info.file_size
    if total > limits.MODEL_UNCOMPRESSED_MAX_BYTES:
        raise PipelineError(
            limits.over(
                f"{where} uncompressed", total, limits.MODEL_UNCOMPRESSED_MAX_BYTES, "MODEL_UNCOMPRESSED_MAX_BYTES"
            )
        )
    if "schema.json" not in names:
        raise PipelineError(f"{where}: not a readable skops model file (no schema.json); rerun the train stage")
    size = archive.getinfo("schema.json").file_size
    if size > limits.MODEL_SCHEMA_MAX_BYTES:
        raise PipelineError(
            limits.over(f"{where} schema.json", size, limits.MODEL_SCHEMA_MAX_BYTES, "MODEL_SCHEMA_MAX_BYTES")
        )
    return archive


_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, then the name and extra field lengths at offsets 26 and 28


def inflate_entry(data: bytes, info: zipfile.ZipInfo, where: str) -> bytes:
    """An entry's bytes, inflated by us with a bound before zipfile or skops touch them: refused unless its stream
    gives exactly the size the zip directory records, ends there, and matches its CRC.

    zipfile (Python 3.11) inflates up to 1 GiB of a stream before it truncates to the recorded size, so a stream
    that goes on past that size is a zip bomb the directory's sizes do not show. Memory here is bounded by the
    recorded sizes, which check_archive caps."""
    start = info.header_offset
    if start < 0 or start + _LOCAL_HEADER.size > len(data):
        raise PipelineError(f"{where}: {info.filename} has no local header in the file; refusing it")
    signature, name_length, extra_length = _LOCAL_HEADER.unpack_from(data, start)
    begin = start + 30 + name_length + extra_length
    raw = data[begin : begin + info.compress_size]
    if signature != b"PK\x03\x04" or len(raw) != info.compress_size:
        raise PipelineError(f"{where}: {info.filename}: its local header or compressed bytes are damaged; refusing it")
    if info.compress_type == zipfile.ZIP_STORED:
        body, ended = raw, True
    else:
        stream = zlib.decompressobj(-15)
        try:
            body = stream.decompress(raw, info.file_size + 1)
        except zlib.error as exc:
            raise PipelineError(f"{where}: {info.filename}: not a valid deflate stream ({exc}); refusing it") from None
        ended = stream.eof and not stream.unused_data and not stream.unconsumed_tail
    if len(body) != info.file_size or not ended:
        raise PipelineError(
            f"{where}: {info.filename} inflates to more or other than the {info.file_size:,} bytes the zip directory "
            "records (a zip bomb hidden behind a small recorded size, or a damaged file); refusing it"
        )
    if zlib.crc32(body) != info.CRC:
        raise PipelineError(f"{where}: {info.filename} does not match its CRC; refusing it")
    return body


def check_npy(body: bytes, name: str, where: str) -> None:
    """An array entry must be a plain .npy file (no pickled objects) whose declared shape and dtype need exactly
    the bytes that follow its header, so numpy never allocates more than the file holds."""
    stream = io.BytesIO(body)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"npy format version {version}")
    except (ValueError, TypeError, SyntaxError, OverflowError) as exc:
        raise PipelineError(f"{where}: {name} is not a plain .npy array ({str(exc)[:120]}); refusing it") from None
    if dtype.hasobject:
        raise PipelineError(
            f"{where}: {name} holds Python objects (dtype {dtype}), which load by unpickling; refusing it"
        )
    count = math.prod(shape)
    declared, held = count * dtype.itemsize, len(body) - stream.tell()
    if count > limits.MODEL_UNCOMPRESSED_MAX_BYTES or declared != held:
        raise PipelineError(
            f"{where}: {name} declares {count:,} items of {dtype} ({declared:,} bytes) but holds {held:,} bytes of "
            f"data (at most {limits.MODEL_UNCOMPRESSED_MAX_BYTES:,} items, MODEL_UNCOMPRESSED_MAX_BYTES in "
            "flightdelay/limits.py); refusing it before numpy allocates it"
        )


def audit_model_bytes(data: bytes, where: str) -> None:
    """Everything checked before skops sees the file: limits, every entry's stream and arrays, every schema node."""
    archive = check_archive(data, where)
    schema_bytes, arrays = b"", {}
    for info in archive.infolist():
        body = inflate_entry(data, info, where)
        if info.filename == "schema.json":
            schema_bytes = body
        else:
            check_npy(body, info.filename, where)
            arrays[info.filename] = hashlib.sha256(body).hexdigest()
    try:
        what, name = f"{where} schema.json", "MODEL_SCHEMA_MAX_CONTAINERS"
        limits.check_containers(schema_bytes, limits.MODEL_SCHEMA_MAX_CONTAINERS, name, what, PipelineError)
        schema = json.loads(schema_bytes.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and UnicodeDecodeError; RecursionError a schema nested absurdly deep
        raise PipelineError(
            f"{where}: not a readable skops model file ({type(exc).__name__}: {str(exc)[:200]}); rerun the train stage"
        ) from None
    if not isinstance(schema, dict):
        raise PipelineError(f"{where}: not a readable skops model file (schema.json is not an object)")
    audit_schema(schema, where, arrays)
