"""skops.io, imported without scikit-learn's scan of every estimator.

At import, skops lists every scikit-learn estimator (`sklearn.utils.all_estimators()`) as the types it trusts
by default, and that scan imports every scikit-learn module: about 1 CPU second in each process that saves or
loads a model (`train`, `predict`, `package`, the service, `score`; docs/benchmarks.md). This project never
relies on those defaults: the model file is audited first (model_audit.audit_model_bytes, which knows every
node `build_pipeline` makes) and skops then loads it trusting exactly `model_audit.SKOPS_TRUSTED`, which names
each of those types. So while skops is imported here the scan finds nothing, and skops trusts no scikit-learn
estimator by default: stricter, never looser (tests/security/test_model_files.py). Where something else imported
skops first, its defaults are the full list and our own list still holds.
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


def skops_io() -> ModuleType:
    """The `skops.io` module, imported (once per process) with scikit-learn's estimator scan turned off."""
    with _LOCK:
        if "skops.io" not in sys.modules:
            import sklearn.utils

            scan = sklearn.utils.all_estimators
            sklearn.utils.all_estimators = _no_estimators
            try:
                importlib.import_module("skops.io")
            finally:
                sklearn.utils.all_estimators = scan
        return sys.modules["skops.io"]
