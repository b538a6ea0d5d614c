"""Markdown tables: the one helper behind every table in the reports, the alerts and the PR comment."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

ALIGN = {"-": "---", "<": ":---", ">": "---:"}  # default (left), explicitly left, right (numbers)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]], align: str) -> list[str]:
    """The lines of a Markdown table; cells are written as given (`str()`), so escape or format them first.

    `align` has one character per column: `-` plain (`---`), `<` left (`:---`), `>` right (`---:`).
    """
    if len(align) != len(header):
        raise ValueError(f"align {align!r} has {len(align)} columns, the header {len(header)}")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(ALIGN[a] for a in align) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines
