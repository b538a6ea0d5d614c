"""flightdelay.core.pdf and the report stage's PDF: the model card's content, figures included, on pages that
render, in the same bytes every run."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pytest

from flightdelay.core.pdf import blocks, inline, render_pdf
from flightdelay.stages.report import figures, pdf, render
from tests.unit.test_report import DRIFT, FLIGHTS, PLOTS, RAIN, context

REPO = Path(__file__).resolve().parents[2]


def model_card(dataset=FLIGHTS, target="late") -> tuple[str, dict[str, bytes]]:
    """The report's markdown and its figures (a fresh dict each call: pdf() gets what render writes)."""
    key = (dataset.name, target)
    if key not in _CARDS:
        # Drawn once per process for each data set: matplotlib's figures are most of these tests' time, and
        # test_report.py checks they are the same bytes every time. These tests check the PDF made from them.
        pictures = figures(PLOTS, DRIFT, "classification", top=10, dpi=50, dataset=dataset)
        markdown = render(context(figure_names=sorted(pictures), dataset=dataset, target=target))
        _CARDS[key] = markdown, {f"figures/{name}": data for name, data in pictures.items()}
    markdown, images = _CARDS[key]
    return markdown, dict(images)


_CARDS: dict[tuple[str, str], tuple[str, dict[str, bytes]]] = {}


def pages(data: bytes) -> list[tuple[np.ndarray, str]]:
    """Each page as (grey pixels, its text)."""
    document = pdfium.PdfDocument(io.BytesIO(data))
    out = []
    for page in document:
        pixels = np.asarray(page.render(scale=0.5, grayscale=True).to_pil().convert("L"))
        out.append((pixels, page.get_textpage().get_text_range()))
    return out


def images_drawn(data: bytes) -> int:
    document = pdfium.PdfDocument(io.BytesIO(data))
    return sum(len(list(page.get_objects(filter=[pdfium.raw.FPDF_PAGEOBJ_IMAGE]))) for page in document)


def test_the_pdf_has_the_same_bytes_every_run():
    markdown, images = model_card()
    first = pdf(markdown, images, FLIGHTS)
    second = pdf(markdown, dict(images), FLIGHTS)
    assert first.startswith(b"%PDF-")
    assert first == second
    assert b"D:2000" in first, "the creation date is reportlab's fixed invariant one"
    assert pdf(*model_card(RAIN, "rain"), RAIN) != first  # and the bytes do follow the content


def test_every_page_renders_with_ink_and_the_model_card_text():
    markdown, images = model_card()
    rendered = pages(pdf(markdown, images, FLIGHTS))
    assert len(rendered) >= 2
    for number, (pixels, _) in enumerate(rendered, 1):
        assert pixels.min() < 100, f"page {number} is blank"
        assert (pixels < 250).mean() > 0.01, f"page {number} has almost no ink"
    text = " ".join(t for _, t in rendered)
    for words in ("Model card (draft): flight delay", "Intended use and limitations", "Slice metrics", "Lineage"):
        assert words in text, words
    assert "0.7000" in text  # the ROC AUC of the metrics table


def test_the_figures_are_in_the_pdf():
    markdown, images = model_card()
    with_figures = pdf(markdown, images, FLIGHTS)
    without = pdf(markdown, {}, FLIGHTS)
    assert images_drawn(with_figures) == len(images) == 5
    assert images_drawn(without) == 0
    assert "(figure figures/roc.png missing)" in " ".join(t for _, t in pages(without))


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


@pytest.mark.slow  # a second interpreter, which imports the report stage and renders the model card (make test runs it)
def test_another_process_writes_the_same_bytes():
    """Nothing of the process (object ids, hash seeds, caches, the clock) reaches the bytes."""
    script = (
        "import hashlib, sys\n"
        "from tests.unit.test_pdf import model_card\n"
        "from tests.unit.test_report import FLIGHTS\n"
        "from flightdelay.stages.report import pdf\n"
        "sys.stdout.write(hashlib.sha256(pdf(*model_card(), FLIGHTS)).hexdigest())"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]), "PYTHONHASHSEED": "random"}
    other = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert other.stdout == hashlib.sha256(pdf(*model_card(), FLIGHTS)).hexdigest()
