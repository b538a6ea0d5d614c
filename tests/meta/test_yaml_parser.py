"""DVC reads dvc.lock, dvc.yaml and params files with ruamel.yaml's "safe" loader several times per stage; with
ruamel.yaml.clib installed that loader parses with libyaml (about 3x faster on our lock), otherwise in pure Python.
ruamel.yaml 0.19 no longer installs the C parser itself, so the project declares it (pyproject.toml)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[2]


def test_the_safe_loader_dvc_uses_parses_with_libyaml():
    from ruamel.yaml.cyaml import CParser

    assert YAML(typ="safe").Parser is CParser


def test_the_runtime_lock_pins_the_c_parser():
    lock = (REPO / "requirements.lock").read_text()
    assert "\nruamel-yaml-clib==" in lock


@pytest.mark.parametrize("name", ["dvc.yaml", "dvc.lock", "tests/fixtures/params.yaml", "config/schema.yaml"])
def test_libyaml_gives_the_values_the_pure_parser_gives(name):
    text = (REPO / name).read_text()
    assert YAML(typ="safe").load(text) == YAML(typ="safe", pure=True).load(text)
