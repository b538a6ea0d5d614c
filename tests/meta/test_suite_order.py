"""The order `make test` hands test modules to its workers (tests/conftest.py RUN_FIRST): the longest first."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tests import conftest

TESTS = Path(conftest.__file__).resolve().parent


@dataclass
class Item:
    """The parts of a pytest item that the collection hook reads."""

    path: Path
    name: str
    marks: list[str] = field(default_factory=list)

    @property
    def nodeid(self) -> str:
        return f"{self.path.relative_to(TESTS.parent).as_posix()}::{self.name}"

    def add_marker(self, mark) -> None:
        self.marks.append(mark.name)


def test_every_module_named_to_run_first_exists():
    missing = [name for name in conftest.RUN_FIRST if not (TESTS / name).is_file()]
    assert not missing, f"tests/conftest.py RUN_FIRST names modules that do not exist: {missing}"
    assert len(set(conftest.RUN_FIRST)) == len(conftest.RUN_FIRST)


def test_the_modules_named_go_first_in_that_order_and_the_rest_keep_theirs():
    first, second = conftest.RUN_FIRST[:2]
    collected = [
        Item(TESTS / "data" / "test_bundled.py", "a"),
        Item(TESTS / second, "b1"),
        Item(TESTS / "unit" / "test_x.py", "c"),
        Item(TESTS / second, "b2"),
        Item(TESTS / first, "f"),
        Item(TESTS / "data" / "test_bundled.py", "d"),
    ]
    items = list(collected)
    conftest.pytest_collection_modifyitems(items)  # type: ignore[arg-type]
    assert [item.name for item in items] == ["f", "b1", "b2", "a", "c", "d"]
    assert all("e2e" in item.marks for item in items if item.name in {"f", "b1", "b2"})
