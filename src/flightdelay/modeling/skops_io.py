"""skops.io, imported without its two scans of the loaded libraries.

At import, skops builds the lists of types it trusts by default, in two scans that cost about 1.7 CPU seconds
in each process that saves or loads a model (`train`, `predict`, `package`, the service, `score`;
docs/benchmarks.md):

- every scikit-learn estimator (`sklearn.utils.all_estimators()`), a scan that imports every scikit-learn module
  (about 1 s);
- every ufunc in `scipy.special`, each named by searching every loaded module for it (about 0.7 s: scipy's
  ufuncs do not say which module they belong to).

This project never relies on those defaults: the model file is audited first (model_audit.audit_model_bytes,
which knows every node `build_pipeline` makes and refuses every function but the one partial scikit-learn
writes), and skops then loads it trusting exactly `model_audit.SKOPS_TRUSTED`, which names each of those types.
So while skops is imported here both scans find nothing, and skops trusts no scikit-learn estimator and no
scipy ufunc by default: stricter, never looser (tests/security/test_model_files.py). Where something else
imported skops first, its defaults are the full lists and our own list still holds.
"""

from __future__ import annotations

import importlib
import sys
import threading
from types import ModuleType
from typing import Any

_LOCK = threading.Lock()


def _no_estimators(*args: Any, **kwargs: Any) -> list[tuple[str, type]]:
    return []


def _unlisted(module: ModuleType) -> ModuleType:
    """A stand-in for `module` that lists no names (`dir()` is empty) but gives every attribute of the real one,
    so that code reading an attribute through it during the import gets what it would have got."""
    stand_in = ModuleType(module.__name__, module.__doc__)

    def __getattr__(name: str) -> Any:
        return getattr(module, name)

    def __dir__() -> list[str]:
        return []

    stand_in.__getattr__ = __getattr__  # type: ignore[method-assign]  # PEP 562, module-level hooks
    stand_in.__dir__ = __dir__  # type: ignore[method-assign]
    return stand_in


def skops_io() -> ModuleType:
    """The `skops.io` module, imported (once per process) with both of its default-type scans turned off."""
    with _LOCK:
        if "skops.io" not in sys.modules:
            import scipy.special
            import sklearn.utils

            scan, special = sklearn.utils.all_estimators, scipy.special
            sklearn.utils.all_estimators = _no_estimators
            scipy.special = _unlisted(special)  # skops lists the ufuncs by dir()
            try:
                importlib.import_module("skops.io")
            finally:
                sklearn.utils.all_estimators = scan
                scipy.special = special
        return sys.modules["skops.io"]
