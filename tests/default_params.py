"""Params for tests, built from tests/fixtures/params.yaml (a copy of the committed defaults).

Tests never read the repository's working params.yaml: `dvc exp run -S train.seed=7` leaves it changed, and a
test's outcome must not depend on the last experiment. Start from `default_params()`, change what the test is
about, and write it with `write_params`.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

DEFAULTS_FILE = Path(__file__).resolve().parent / "fixtures" / "params.yaml"
# libyaml's parser where PyYAML was built with it (the same documents, the same Python objects: only the scanner
# and parser are in C); the pure-Python one otherwise. Parsing YAML was about a tenth of `make test-fast`'s CPU.
LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    """`yaml.safe_load(text)`, with the C parser where there is one."""
    return yaml.load(text, Loader=LOADER)  # a safe loader: SafeLoader or its C twin


@functools.cache
def _defaults() -> dict[str, Any]:
    return load_yaml(DEFAULTS_FILE.read_text())


def default_params(changes: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A fresh dict of the default params, with `changes` ({"section.key": value}) applied.

    The fixture is parsed once per process; each call gets a deep copy, so a test may change what it gets."""
    params = copy.deepcopy(_defaults())
    for dotted, value in (changes or {}).items():
        node = params
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
    return params


def write_params(path: Path, params: Mapping[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(dict(params), sort_keys=False))
    return path


# Another data set's `dataset` section (daily weather: "will it rain tomorrow"), for tests of names and labels.
RAIN_DATASET: dict[str, Any] = {
    "name": "rain tomorrow",
    "artifact": "rain-tomorrow",
    "table": "days",
    "rows": "days",
    "entity_keys": ["station"],
    "target": {
        "classification": {
            "column": "rain_tomorrow",
            "name": "rain tomorrow",
            "predicts": "whether it rains at a station tomorrow",
            "labels": {0: "dry", 1: "rain"},
        },
        "regression": {"column": "rain_mm", "name": "rainfall", "predicts": "tomorrow's rainfall", "unit": "mm"},
    },
}
