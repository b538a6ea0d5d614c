"""The temporary git repository with an empty registry, shared with tests/test_registry.py."""

from tests.test_registry import repo  # noqa: F401 - a fixture, used by name
