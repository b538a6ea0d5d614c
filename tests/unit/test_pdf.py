"""flightdelay.core.pdf: the Markdown the report stage writes, laid out as PDF pages that render."""

from __future__ import annotations

import io

import numpy as np
import pypdfium2 as pdfium
import pytest

from flightdelay.core.pdf import blocks, inline, render_pdf


def pages(data: bytes) -> list[tuple[np.ndarray, str]]:
    """Each page as (grey pixels, its text)."""
    document = pdfium.PdfDocument(io.BytesIO(data))
    out = []
    for page in document:
        pixels = np.asarray(page.render(scale=0.5, grayscale=True).to_pil().convert("L"))
        out.append((pixels, page.get_textpage().get_text_range()))
    return out


def test_blocks_read_the_markdown_the_report_writes():
    markdown = "\n".join(
        [
            "# Title",
            "",
            "> a note",
            "",
            "## Data",
            "",
            "First line",
            "and second.",
            "",
            "| name | rows |",
            "|---|---:|",
            "| read | 1,000 |",
            "",
            "```yaml",
            "a: 1",
            "```",
            "- an item",
            "![ROC curve](figures/roc.png)",
        ]
    )
    assert blocks(markdown) == [
        ("heading1", "Title"),
        ("note", "a note"),
        ("heading2", "Data"),
        ("paragraph", "First line and second."),
        ("table", ([["name", "rows"], ["read", "1,000"]], [False, True])),
        ("code", "a: 1"),
        ("item", "an item"),
        ("image", ("ROC curve", "figures/roc.png")),
    ]


@pytest.mark.parametrize(
    ("text", "markup"),
    [
        ("`a<b` and **c**", '<font face="Courier">a&lt;b</font> and <b>c</b>'),
        ("*draft* [drift_report.md](drift_report.md)", "<i>draft</i> drift_report.md"),
        ("R² — ≥ 0.5", "R² — >= 0.5"),
        ("✅ ok ☃", " ok ?"),  # what the standard fonts cannot show is spelled out or replaced, never dropped
    ],
)
def test_inline_markdown_becomes_paragraph_markup(text, markup):
    assert inline(text) == markup


def test_render_pdf_of_plain_text_is_one_page_with_the_text_the_same_bytes_twice():
    data = render_pdf("# T\n\nhello", {}, title="T", author="a")
    assert data == render_pdf("# T\n\nhello", {}, title="T", author="a")
    [(pixels, text)] = pages(data)
    assert pixels.min() < 100 and "hello" in text
