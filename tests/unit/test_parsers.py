from __future__ import annotations

import pytest
from fpdf import FPDF
from fpdf.enums import EncryptionMethod

from ragline.chunker.parsers import extract_text
from ragline.errors import PermanentTaskError

pytestmark = pytest.mark.unit


def make_pdf(*pages: str, user_password: str | None = None) -> bytes:
    """A PDF with one page per string, in a core font (so latin-1 text only)."""
    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 6, text=text)
    if user_password is not None:
        pdf.set_encryption(
            owner_password="owner",
            user_password=user_password,
            encryption_method=EncryptionMethod.RC4,
        )
    return bytes(pdf.output())


def test_plain_text_drops_the_bom_and_normalizes_newlines() -> None:
    content = b"\xef\xbb\xbfFirst line\r\nsecond line\rthird\n\nNext paragraph."
    assert extract_text(content, "text/plain") == (
        "First line\nsecond line\nthird\n\nNext paragraph."
    )


def test_markdown_keeps_its_markup() -> None:
    content = "# Title\n\nSome *emphasis* and `code`.\n\n- item one\n- item two\n"
    assert extract_text(content.encode(), "text/markdown") == content


def test_html_drops_scripts_styles_and_metadata() -> None:
    content = b"""<!DOCTYPE html>
    <html><head>
      <title>Beekeeping</title>
      <meta name="description" content="META TEXT">
      <style>body { color: STYLE_TEXT; }</style>
      <script>var SCRIPT_TEXT = 1;</script>
    </head><body>
      <!-- COMMENT_TEXT -->
      <noscript>NOSCRIPT_TEXT</noscript>
      <template><p>TEMPLATE_TEXT</p></template>
      <h1>Keeping bees</h1>
      <p>Bees turn nectar into honey.</p>
      <script type="application/ld+json">{"SCRIPT_JSON": true}</script>
    </body></html>"""
    text = extract_text(content, "text/html")
    assert text == "Beekeeping\n\nKeeping bees\n\nBees turn nectar into honey."
    for hidden in ("META", "STYLE", "SCRIPT", "COMMENT", "NOSCRIPT", "TEMPLATE"):
        assert hidden not in text


def test_html_blocks_become_paragraphs_and_whitespace_collapses() -> None:
    content = """<body>
      <h2>Hive   parts</h2>
      <p>The brood box holds
         the <b>queen</b> &amp; her <i>eggs</i>.<br>Supers hold honey.</p>
      <ul><li>Frames</li><li>Foundation</li></ul>
      <div>Smoker<div>Hive tool</div></div>
      <table><tr><th>Part</th><th>Use</th></tr><tr><td>Veil</td><td>Face</td></tr></table>
      <pre>line one
  indented   line</pre>
      <p>Café — 日本語 🐝</p>
    </body>""".encode()
    assert extract_text(content, "text/html").split("\n\n") == [
        "Hive parts",
        "The brood box holds the queen & her eggs.",
        "Supers hold honey.",
        "Frames",
        "Foundation",
        "Smoker",
        "Hive tool",
        "Part Use",
        "Veil Face",
        "line one\n  indented   line",
        "Café — 日本語 🐝",
    ]


@pytest.mark.parametrize(
    "content",
    [
        b"www.example.com",
        b"index.html",
        b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><p>www.example.com</p></html>',
    ],
)
def test_html_that_bs4_warns_about_still_parses(content: bytes) -> None:
    assert "." in extract_text(content, "text/html")


def test_deeply_nested_html_does_not_recurse() -> None:
    depth = 5000
    content = ("<span>" * depth + "deep text" + "</span>" * depth).encode()
    assert extract_text(content, "text/html") == "deep text"


def test_pdf_pages_are_joined_by_blank_lines() -> None:
    content = make_pdf(
        "Sourdough starter is flour and water fermented by wild yeast.",
        "",
        "Bake the loaf at a high heat with steam.",
    )
    text = extract_text(content, "application/pdf")
    assert text == (
        "Sourdough starter is flour and water fermented by wild yeast.\n\n"
        "Bake the loaf at a high heat with steam."
    )


def test_pdf_after_leading_whitespace_is_read() -> None:
    content = b"\n  " + make_pdf("Leading whitespace is allowed.")
    assert extract_text(content, "application/pdf") == "Leading whitespace is allowed."


def test_pdf_encrypted_without_a_user_password_is_read() -> None:
    content = make_pdf("Only printing is restricted.", user_password="")
    assert extract_text(content, "application/pdf") == "Only printing is restricted."


def test_pdf_with_a_password_is_a_permanent_error() -> None:
    with pytest.raises(
        PermanentTaskError, match="could not be read: it is protected by a password"
    ):
        extract_text(make_pdf("Secret.", user_password="secret"), "application/pdf")


@pytest.mark.parametrize(
    "content",
    [
        b"%PDF-1.7\nthis is not really a pdf",
        b"%PDF-",
        make_pdf("A truncated document, cut in half.")[:400],
        b"not a pdf at all",
    ],
    ids=["garbage", "header-only", "truncated", "no-header"],
)
def test_corrupt_pdf_is_a_permanent_error(content: bytes) -> None:
    with pytest.raises(PermanentTaskError, match=r"^the PDF could not be read: "):
        extract_text(content, "application/pdf")


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b" \n\t\r\n", "text/plain"),
        (b"\xef\xbb\xbf", "text/markdown"),
        (b"<html><head><script>x()</script></head><body> </body></html>", "text/html"),
        (make_pdf(""), "application/pdf"),
    ],
)
def test_a_document_without_text_is_a_permanent_error(content: bytes, content_type: str) -> None:
    with pytest.raises(PermanentTaskError, match="no extractable text"):
        extract_text(content, content_type)


def test_invalid_utf8_that_reaches_the_chunker_is_a_permanent_error() -> None:
    with pytest.raises(PermanentTaskError, match="offset 2"):
        extract_text(b"ok\xff", "text/plain")
