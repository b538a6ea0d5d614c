"""The temporary git repository with an empty registry, shared with tests/integration/test_registry.py."""

from tests.integration.test_registry import repo  # noqa: F401 - a fixture, used by name
