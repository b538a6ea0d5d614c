"""A model file can never run code, at load or at use (issue 8, point 1).

Each crafted file carries a payload that creates a marker file. The control (`load_unsafely`) shows that the
payload runs when a loader trusts what skops lists; `load_model`, `load_package` and `flightdelay verify` must
refuse the file before anything in it runs, so the marker never appears.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.special
import skops.io as sio
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler

from flightdelay.cli import main
from flightdelay.core.config import MODELS_BY_TASK
from flightdelay.core.errors import PipelineError
from flightdelay.modeling.model import dumps_canonical, load_model, loads_model, save_model
from flightdelay.modeling.model_audit import AUDITED_PARTIAL, MODEL_TYPES, SKOPS_TRUSTED, _without_ids, node_types
from flightdelay.release.package_format import load_package
from tests.conftest import REPO
from tests.security.crafting import (
    call_at_load,
    dict_of,
    edit_schema,
    find_nodes,
    fitted_hgb_bytes,
    function,
    function_transformer,
    load_unsafely,
    methodcaller,
    node,
    package_with_model,
    partial,
    skops_file,
    tuple_of,
    use,
    value,
)
from tests.tiny_models import fit, predict, synthetic

NPYIO = "numpy.lib._npyio_impl"  # where numpy.save lives


def write_marker(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('ran')"


def in_the_audited_slot(marker: Path) -> bytes:
    """A real model whose one allowed partial (HGB's check_array) is turned into partial(numpy.save, marker)."""

    def edit(schema: dict[str, Any]) -> None:
        for item in find_nodes(schema, "PartialNode"):
            item["content"]["func"] = function(NPYIO, "save")
            item["content"]["args"] = tuple_of(value(str(marker)))
            item["content"]["kwds"] = dict_of()

    return edit_schema(fitted_hgb_bytes(), edit)


# name -> (build(marker) -> skops bytes, when the payload runs)
PAYLOADS: dict[str, tuple[Callable[[Path], bytes], str]] = {
    "numpy.testing runstring executes a string": (
        lambda m: skops_file(
            call_at_load("numpy.testing._private.utils", "runstring", value(write_marker(m)), dict_of())
        ),
        "load",
    ),
    "numpy.lib npyio save writes a file": (
        lambda m: skops_file(call_at_load(NPYIO, "save", value(str(m)), value([1, 2]))),
        "load",
    ),
    "numpy.distutils exec_command runs a shell": (
        lambda m: skops_file(call_at_load("numpy.distutils.exec_command", "exec_command", value(f"touch {m}"))),
        "load",
    ),
    "builtins.eval": (lambda m: skops_file(call_at_load("builtins", "eval", value(write_marker(m)))), "load"),
    "builtins.exec": (lambda m: skops_file(call_at_load("builtins", "exec", value(write_marker(m)))), "load"),
    "partial of numpy.save in a FunctionTransformer": (
        lambda m: skops_file(function_transformer(partial(function(NPYIO, "save"), value(str(m))))),
        "use",
    ),
    "operator.methodcaller('tofile') (ndarray.tofile) in a FunctionTransformer": (
        lambda m: skops_file(function_transformer(methodcaller("tofile", value(str(m))))),
        "use",
    ),
    "partial of numpy.save in the slot of scikit-learn's own partial": (in_the_audited_slot, "use"),
}


@pytest.fixture(params=list(PAYLOADS))
def payload(request, tmp_path) -> tuple[bytes, Path, str]:
    build, when = PAYLOADS[request.param]
    marker = tmp_path / "ran.npy"  # numpy.save adds .npy to any other name
    return build(marker), marker, when


def test_control_each_payload_runs_when_nothing_stops_it(payload, tmp_path, monkeypatch):
    data, marker, when = payload
    monkeypatch.chdir(tmp_path)
    model = load_unsafely(data)
    if when == "use":
        assert not marker.exists()
        use(model)
    assert marker.exists(), "the crafted file does not do what the security test assumes"


def test_load_model_refuses_each_payload_before_it_runs(payload, tmp_path, monkeypatch):
    data, marker, _ = payload
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "model.skops"
    path.write_bytes(data)
    with pytest.raises(PipelineError, match="refus") as refused:
        load_model(path)
    assert "\n" not in str(refused.value)
    assert not marker.exists()


def test_verify_and_load_package_refuse_each_payload(payload, tmp_path, monkeypatch, capfd):
    data, marker, _ = payload
    monkeypatch.chdir(tmp_path)
    package = package_with_model(tmp_path / "packages", data)  # checksums, name and manifest all consistent
    with pytest.raises(PipelineError, match="refus"):
        load_package(package)
    assert main(["verify", str(package)]) == 1
    err = capfd.readouterr().err
    failed = [line for line in err.splitlines() if "verify failed:" in line]
    assert len(failed) == 1, err
    assert "model.skops" in failed[0]
    assert "Traceback" not in err
    assert "unexpectedly" not in err
    assert not marker.exists()


def test_a_module_that_runs_code_when_imported_is_never_imported(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "flightdelay_payload_module.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "model.skops"
    path.write_bytes(skops_file(node("TypeNode", "flightdelay_payload_module", "anything")))
    with pytest.raises(PipelineError, match=r"TypeNode flightdelay_payload_module\.anything, which no model"):
        load_model(path)
    assert not marker.exists()
    with pytest.raises(Exception):  # noqa: B017 - the control: skops imports the module, then fails to find the name
        load_unsafely(path.read_bytes())
    assert marker.exists()


def test_a_numpy_ufunc_that_skops_trusts_by_default_is_still_refused(tmp_path):
    data = sio.dumps(FunctionTransformer(func=np.log1p).fit(np.ones((3, 2))))
    assert sio.get_untrusted_types(data=data) == []  # skops alone would load it
    with pytest.raises(PipelineError, match=r"holds the function numpy\.log1p; a model may hold no function"):
        loads_model(data, "ufunc.skops")


def test_a_random_generator_that_names_another_bit_generator_is_refused(tmp_path, monkeypatch):
    """HGB keeps a numpy Generator (its feature-subsampling rng); skops rebuilds it by calling the bit generator
    class that the file names as a plain string, `numpy.random.<name>()`. Any name but the bit generators numpy
    ships is refused before anything is called, even a class that is a real bit generator."""
    marker = tmp_path / "called"

    class Spy(np.random.PCG64):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            marker.write_text("called at load")
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(np.random, "FlightdelaySpy", Spy, raising=False)

    def edit(schema: dict[str, Any]) -> None:
        generators = find_nodes(schema, "RandomGeneratorNode")
        assert len(generators) == 1, "the fitted model no longer holds the Generator this test crafts"
        state = generators[0]["content"]["bit_generator"]["content"]
        assert json.loads(state["bit_generator"]["content"]) == "PCG64"
        state["bit_generator"]["content"] = json.dumps("FlightdelaySpy")

    data = edit_schema(fitted_hgb_bytes(), edit)
    assert "numpy.random.FlightdelaySpy" in sio.get_untrusted_types(data=data)
    path = tmp_path / "model.skops"
    path.write_bytes(data)
    with pytest.raises(PipelineError, match=r"refus.*numpy\.random\.FlightdelaySpy"):
        load_model(path)
    assert not marker.exists()
    with contextlib.suppress(Exception):  # the control: a loader trusting what skops lists calls it
        load_unsafely(data)
    assert marker.exists(), "the crafted file does not do what the security test assumes"


def test_a_partial_of_check_array_with_other_arguments_is_refused():
    def edit(schema: dict[str, Any]) -> None:
        for item in find_nodes(schema, "PartialNode"):
            item["content"]["kwds"]["content"]["copy"] = value(True)

    with pytest.raises(PipelineError, match=r"a functools\.partial other than the one scikit-learn writes"):
        loads_model(edit_schema(fitted_hgb_bytes(), edit), "partial.skops")


def test_an_id_shared_by_nodes_of_different_types_is_refused():
    # skops loads the first node with an __id__ and reuses it wherever the id appears again
    def edit(schema: dict[str, Any]) -> None:
        first = find_nodes(schema, "ObjectNode")[0]
        later = find_nodes(schema, "ListNode")[0]
        later["__id__"] = first["__id__"]

    with pytest.raises(PipelineError, match="two different objects in the model file share the id"):
        loads_model(edit_schema(fitted_hgb_bytes(), edit), "alias.skops")


def _partial_func_id(schema: dict[str, Any]) -> int:
    return find_nodes(schema, "PartialNode")[0]["content"]["func"]["__id__"]


def _alias_partial_func_to_str(schema: dict[str, Any]) -> None:
    # the partial, compared without its ids, still matches; skops then loads partial(str, ...)
    first_str = next(n for n in find_nodes(schema, "TypeNode") if n["__class__"] == "str" and "__id__" in n)
    find_nodes(schema, "PartialNode")[0]["content"]["func"]["__id__"] = first_str["__id__"]


def _alias_partial_args_to_another_tuple(schema: dict[str, Any]) -> None:
    other = next(n for n in find_nodes(schema, "TupleNode") if n.get("content") and "__id__" in n)
    find_nodes(schema, "PartialNode")[0]["content"]["args"]["__id__"] = other["__id__"]


def _alias_memory_to_check_array(schema: dict[str, Any]) -> None:
    # the Pipeline's `memory` (a JsonNode null) takes the id of the partial's FunctionNode: skops hands back the
    # bare function check_array there, outside the one partial where a function is allowed
    schema["content"]["content"]["memory"]["__id__"] = _partial_func_id(schema)


@pytest.mark.parametrize(
    "edit",
    [_alias_partial_func_to_str, _alias_partial_args_to_another_tuple, _alias_memory_to_check_array],
    ids=["partial-func-is-str", "partial-args-is-another-tuple", "memory-is-check-array"],
)
def test_an_id_naming_a_node_inside_the_partial_and_another_node_is_refused(edit, tmp_path):
    model = edit_schema(fitted_hgb_bytes(), edit)
    with pytest.raises(PipelineError, match="two different objects in the model file share the id"):
        loads_model(model, "alias.skops")
    with pytest.raises(PipelineError, match="two different objects in the model file share the id"):
        load_package(package_with_model(tmp_path, model))


def test_the_shared_objects_skops_writes_itself_still_load():
    # skops writes an object met twice in full each time, under one id; a dtype's empty array is a fresh
    # temporary each time (another id, another file): such nodes are the same object and must keep loading
    differing = 0
    for (kind, task), model in every_model().items():
        data = dumps_canonical(model)
        nodes: dict[int, set[str]] = {}
        for item in find_all_nodes(json.loads(zipfile.ZipFile(io.BytesIO(data)).read("schema.json"))):
            if "__id__" in item:
                nodes.setdefault(item["__id__"], set()).add(json.dumps(item, sort_keys=True))
        differing += sum(len(texts) > 1 for texts in nodes.values())
        assert loads_model(data, f"{kind}-{task}") is not None
    assert differing, "no model holds a shared object written with fresh temporaries: the test shows nothing"


def find_all_nodes(tree: Any) -> list[dict[str, Any]]:
    found, stack = [], [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found.extend([item] if "__loader__" in item else [])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


# ------------------------------------------------------------------------------------------------ the allowlist


def every_model() -> dict[tuple[str, str], Any]:
    return {(m, t): fit(t, m, synthetic()) for t, models in MODELS_BY_TASK.items() for m in models}


def test_model_types_are_exactly_what_build_pipeline_makes():
    """Recomputes MODEL_TYPES and SKOPS_TRUSTED from every model kind and task; update them when this fails."""
    types: set[str] = set()
    untrusted: set[str] = set()
    partials = []
    for model in every_model().values():
        data = dumps_canonical(model)
        schema = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("schema.json"))
        types |= node_types(schema)
        untrusted |= set(sio.get_untrusted_types(data=data))
        partials += [_without_ids(p) for p in find_nodes(schema, "PartialNode")]
    assert types == MODEL_TYPES
    # with skops's default list of estimators (this module imported skops itself), what it still reports as
    # untrusted; SKOPS_TRUSTED adds every class of an ObjectNode, for skops imported without that list (skops_io)
    classes = {name.removeprefix("ObjectNode ") for name in MODEL_TYPES if name.startswith("ObjectNode ")}
    assert untrusted | classes == SKOPS_TRUSTED and not untrusted & classes - {TREE_PREDICTOR}
    assert partials and all(p == AUDITED_PARTIAL for p in partials)


TREE_PREDICTOR = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"  # not among skops's defaults

WITHOUT_THE_SCAN = """
import sys
import scipy.special
import sklearn.utils
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from flightdelay.core.config import MODELS_BY_TASK
from flightdelay.modeling.model import dumps_canonical, loads_model
from flightdelay.modeling.model_audit import SKOPS_TRUSTED
from tests.tiny_models import fit, predict, synthetic

# the first skops import comes through skops_io (the first dumps_canonical): no default estimators and no default
# scipy ufuncs, both scans' targets restored
assert "skops.io" not in sys.modules, "skops was imported before the first model was saved"
frame = synthetic(40, seed=5)
for task, models in MODELS_BY_TASK.items():
    for model in models:
        pipeline = fit(task, model, synthetic())
        loaded = loads_model(dumps_canonical(pipeline), f"{model}-{task}")
        assert (predict(loaded, task, frame) == predict(pipeline, task, frame)).all(), (model, task)
import skops.io as sio
from skops.io import _trusted_types
from skops.io.exceptions import UntrustedTypesFoundException

assert _trusted_types.SKLEARN_ESTIMATOR_TYPE_NAMES == [] and _trusted_types.SCIPY_UFUNC_TYPE_NAMES == []
assert sklearn.utils.all_estimators.__module__ == "sklearn.utils.discovery"
assert scipy.special is sys.modules["scipy.special"] and "expit" in dir(scipy.special)
# nothing imported meanwhile kept the stand-in skops was handed as scipy.special
kept = [
    name
    for name, module in list(sys.modules.items())
    for value in list(getattr(module, "__dict__", {}).values())
    if type(value) is type(sys) and value.__name__ == "scipy.special" and value is not scipy.special
]
assert not kept, kept
assert "sklearn.gaussian_process" not in sys.modules  # what only the scan imports
# skops alone (no audit) now refuses a scikit-learn estimator that build_pipeline never makes
other = sio.dumps(make_pipeline(MinMaxScaler()).fit(frame[["distance"]]))
try:
    sio.loads(other, trusted=sorted(SKOPS_TRUSTED))
except UntrustedTypesFoundException as exc:
    assert "MinMaxScaler" in str(exc), exc
else:
    raise AssertionError("skops loaded a MinMaxScaler it was not told to trust")
# and a scipy ufunc, which skops trusts by default when it lists them (scipy's ufuncs name no module of their own)
ufunc = sio.dumps({"f": scipy.special.expit})
assert [name.rsplit(".", 1)[1] for name in sio.get_untrusted_types(data=ufunc)] == ["expit"]
print("ok")
"""


def test_skops_imported_without_its_scans_loads_every_model_and_trusts_only_ours():
    """modeling/skops_io imports skops with its scans of scikit-learn's estimators and scipy's ufuncs turned off
    (about 1.7 CPU s per process): every model kind and task still loads, nothing the estimator scan alone imports
    is imported, and skops on its own, with SKOPS_TRUSTED, refuses an estimator build_pipeline never makes and a
    scipy ufunc (with the full default lists it would load both). In a fresh interpreter: this test module imports
    skops the ordinary way."""
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_THE_SCAN], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr
    scanned = sio.dumps(make_pipeline(MinMaxScaler()).fit(synthetic()[["distance"]]))
    assert sio.loads(scanned, trusted=sorted(SKOPS_TRUSTED)) is not None  # here skops has its full default list
    assert sio.get_untrusted_types(data=sio.dumps({"f": scipy.special.expit})) == []


def test_every_model_kind_and_task_round_trips_through_save_and_load(tmp_path):
    frame = synthetic(30, seed=3)
    for (model, task), pipeline in every_model().items():
        path = tmp_path / f"{model}-{task}.skops"
        save_model(pipeline, path)
        loaded = load_model(path)
        assert np.array_equal(predict(loaded, task, frame), predict(pipeline, task, frame)), (model, task)
