"""A PDF of a Markdown document the pipeline wrote (the model card), figures included, the same bytes every run.

Reads the small Markdown subset `stages/report.py` writes: `#`/`##` headings, paragraphs, `>` notes, `- ` lists,
pipe tables, fenced code blocks and `![title](figures/NAME.png)` images, with `code`, **bold**, *italic* and
[links](target) inline. Laid out by reportlab's platypus (wrapping, tables, page breaks) in `invariant` mode:
reportlab then writes a fixed creation date and a document ID derived from the content instead of the clock and
a random number, so identical inputs give identical bytes (tests/unit/test_pdf.py renders the pages and checks).
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Mapping
from typing import Any

# The standard PDF fonts (Helvetica, Courier) hold the Windows-1252 characters only; a few others the report
# writes are spelled out, anything else becomes '?' rather than a missing glyph.
_SPELLED = {"≥": ">=", "≤": "<=", "✅": "", "❌": "", "⚠️": "", "⏭️": "", "→": "->"}
_IMAGE = re.compile(r"^!\[(?P<title>[^\]]*)\]\((?P<target>[^)]+)\)\Z")
_INLINE = re.compile(r"`(?P<code>[^`]+)`|\*\*(?P<bold>[^*]+)\*\*|\*(?P<italic>[^*]+)\*|\[(?P<text>[^\]]+)\]\([^)]+\)")


def _encodable(text: str) -> str:
    for char, spelled in _SPELLED.items():
        text = text.replace(char, spelled)
    return text.encode("cp1252", errors="replace").decode("cp1252")


def inline(text: str) -> str:
    """Markdown inline formatting as reportlab's paragraph markup (escaped, fonts for code, bold, italic)."""
    out, last = [], 0
    for match in _INLINE.finditer(text):
        out.append(html.escape(text[last : match.start()], quote=False))
        if match["code"] is not None:
            out.append(f'<font face="Courier">{html.escape(match["code"], quote=False)}</font>')
        elif match["bold"] is not None:
            out.append(f"<b>{html.escape(match['bold'], quote=False)}</b>")
        elif match["italic"] is not None:
            out.append(f"<i>{html.escape(match['italic'], quote=False)}</i>")
        else:
            out.append(html.escape(match["text"], quote=False))
        last = match.end()
    out.append(html.escape(text[last:], quote=False))
    return _encodable("".join(out))


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def blocks(markdown: str) -> list[tuple[str, Any]]:
    """The document as (kind, content) blocks: heading1, heading2, paragraph, note, item, code, table, image."""
    out: list[tuple[str, Any]] = []
    lines = markdown.splitlines()
    i = 0
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            out.append(("paragraph", " ".join(paragraph)))
            paragraph.clear()

    while i < len(lines):
        line = lines[i]
        if not line.strip():
            flush()
        elif line.startswith("```"):
            flush()
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines))
            out.append(("code", "\n".join(lines[i + 1 : end])))
            i = end
        elif line.startswith("|"):
            flush()
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            align = rows[1] if len(rows) > 1 and all(set(c) <= set("-:") for c in rows[1]) else None
            body = [rows[0], *rows[2:]] if align else rows
            out.append(("table", (body, [a.endswith(":") for a in align] if align else [False] * len(rows[0]))))
            continue
        elif line.startswith("## "):
            flush()
            out.append(("heading2", line[3:]))
        elif line.startswith("# "):
            flush()
            out.append(("heading1", line[2:]))
        elif line.startswith("> "):
            flush()
            out.append(("note", line[2:]))
        elif line.startswith("- "):
            flush()
            out.append(("item", line[2:]))
        elif match := _IMAGE.match(line.strip()):
            flush()
            out.append(("image", (match["title"], match["target"])))
        else:
            paragraph.append(line.strip())
        i += 1
    flush()
    return out


def _widths(rows: list[list[str]], total: float) -> list[float]:
    """Column widths in proportion to the longest text of each column (within bounds), filling `total`."""
    longest = [max(min(max(len(row[c]) if c < len(row) else 0 for row in rows), 48), 6) for c in range(len(rows[0]))]
    return [total * n / sum(longest) for n in longest]


def render_pdf(markdown: str, images: Mapping[str, bytes], title: str, author: str) -> bytes:
    """The document as PDF bytes; `images` maps an image target (e.g. figures/roc.png) to its PNG bytes."""
    from reportlab.lib import colors
    from reportlab.lib.enums import TA_RIGHT
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Image, Paragraph, Preformatted, SimpleDocTemplate, Spacer, Table, TableStyle
    from reportlab.platypus.flowables import KeepTogether

    styles = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=styles["BodyText"], fontSize=9, leading=11.5)
    cell = ParagraphStyle("cell", parent=body, fontSize=7.5, leading=9)
    number = ParagraphStyle("number", parent=cell, alignment=TA_RIGHT)
    note = ParagraphStyle("note", parent=body, textColor=colors.HexColor("#555555"), leftIndent=8)
    item = ParagraphStyle("item", parent=body, leftIndent=12, bulletIndent=2)
    code = ParagraphStyle("code", parent=styles["Code"], fontSize=7, leading=8.5)
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=16 * mm,
        title=_encodable(title),
        author=_encodable(author),
        creator="flightdelay report stage",
        producer="reportlab",
        subject="",
        keywords="",
        invariant=True,  # fixed creation date and document ID: the same bytes every run
    )
    width = doc.width

    def footer(canvas: Any, document: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.setFillColor(colors.grey)
        canvas.drawString(doc.leftMargin, 9 * mm, _encodable(title))
        canvas.drawRightString(doc.leftMargin + width, 9 * mm, f"page {document.page}")
        canvas.restoreState()

    story: list[Any] = []
    for kind, content in blocks(markdown):
        if kind == "heading1":
            story.append(Paragraph(inline(content), styles["Title"]))
        elif kind == "heading2":
            story.append(Paragraph(inline(content), styles["Heading2"]))
        elif kind == "paragraph":
            story.append(Paragraph(inline(content), body))
        elif kind == "note":
            story.append(Paragraph(inline(content), note))
        elif kind == "item":
            story.append(Paragraph(inline(content), item, bulletText="•"))
        elif kind == "code":
            story.append(Preformatted(_encodable(content), code, maxLineLength=120))
        elif kind == "table":
            rows, right = content
            cells = [
                [Paragraph(inline(text), number if right[c] and r else cell) for c, text in enumerate(row)]
                for r, row in enumerate(rows)
            ]
            table = Table(cells, colWidths=_widths(rows, width), repeatRows=1)
            table.setStyle(
                TableStyle(
                    [
                        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8e8e8")),
                        ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#bbbbbb")),
                        ("VALIGN", (0, 0), (-1, -1), "TOP"),
                        ("TOPPADDING", (0, 0), (-1, -1), 1.5),
                        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
                    ]
                )
            )
            story += [Spacer(1, 2), table, Spacer(1, 4)]
        elif kind == "image":
            caption, target = content
            data = images.get(target)
            if data is None:
                story.append(Paragraph(inline(f"(figure {target} missing)"), note))
                continue
            picture = Image(io.BytesIO(data))
            scale = min(1.0, width / picture.imageWidth, 0.55 * doc.height / picture.imageHeight)
            picture = Image(io.BytesIO(data), width=picture.imageWidth * scale, height=picture.imageHeight * scale)
            story.append(KeepTogether([picture, Paragraph(inline(caption), note), Spacer(1, 6)]))
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()
