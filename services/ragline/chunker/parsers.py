"""Turn a document's bytes into plain text, keeping paragraph breaks as blank lines.

The splitter prefers to cut at blank lines, so every parser marks the document's paragraphs
(HTML blocks, PDF pages) with them.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterator

from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning, XMLParsedAsHTMLWarning
from bs4.element import (
    Comment,
    Declaration,
    Doctype,
    NavigableString,
    PageElement,
    ProcessingInstruction,
    Tag,
)

from ragline.errors import PermanentTaskError

__all__ = ["extract_text"]

_NEWLINES = re.compile(r"\r\n?")
_SPACES = re.compile(r"\s+")

# Elements whose text is never shown to a reader.
_DROPPED_TAGS = ("script", "style", "noscript", "template", "meta", "link", "base", "svg", "iframe")
# Elements that start a new paragraph. Table cells stay on their row's line.
_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "dialog",
        "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3",
        "h4", "h5", "h6", "header", "hr", "html", "li", "main", "nav", "ol", "p", "pre", "section",
        "summary", "table", "tbody", "tfoot", "thead", "title", "tr", "ul",
    }
)  # fmt: skip
_CELL_TAGS = frozenset({"td", "th"})
_NOT_TEXT = (Comment, Declaration, Doctype, ProcessingInstruction)


def extract_text(content: bytes, content_type: str) -> str:
    """The text of a document; `content_type` as returned by `normalize_content_type`.

    Raises PermanentTaskError when the document cannot be read or holds no text.
    """
    if content_type in ("text/plain", "text/markdown"):
        text = _normalize_newlines(_decode_utf8(content))
    elif content_type == "text/html":
        text = _html_text(_decode_utf8(content))
    elif content_type == "application/pdf":
        text = _pdf_text(content)
    else:
        raise PermanentTaskError(f"the content type {content_type!r} is not supported")
    if not text.strip():
        hint = ""
        if content_type == "application/pdf":
            hint = " (a scanned PDF needs OCR, which ragline does not do)"
        raise PermanentTaskError(f"the document has no extractable text{hint}")
    return text


def _decode_utf8(content: bytes) -> str:
    try:
        # utf-8-sig drops a leading byte order mark.
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # The gateway checks this first; a task that still carries bad bytes can never succeed.
        raise PermanentTaskError(
            f"the document is not valid UTF-8 (first bad byte at offset {exc.start})"
        ) from exc


def _normalize_newlines(text: str) -> str:
    return _NEWLINES.sub("\n", text)


def _html_text(markup: str) -> str:
    with warnings.catch_warnings():
        # bs4 warns when short markup looks like a URL or file name, and when XHTML is parsed as
        # HTML; both are fine for text extraction (and pytest turns warnings into errors).
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        soup = BeautifulSoup(markup, "html.parser")
    for tag in soup.find_all(_DROPPED_TAGS):
        tag.decompose()
    paragraphs: list[str] = []
    current: list[str] = []

    def end_paragraph() -> None:
        line = _SPACES.sub(" ", "".join(current)).strip()
        if line:
            paragraphs.append(line)
        current.clear()

    for node, entering in _walk(soup):
        if isinstance(node, NavigableString):
            if not isinstance(node, _NOT_TEXT):
                current.append(str(node))
        elif isinstance(node, Tag):
            if node.name == "br":
                end_paragraph()
            elif node.name in _CELL_TAGS:
                # A cell's text stays on its row's line, apart from its neighbours.
                current.append(" ")
            elif node.name == "pre" and entering:
                end_paragraph()
                # Code keeps its line breaks; only trailing blanks go.
                block = "\n".join(line.rstrip() for line in node.get_text().splitlines())
                if block.strip():
                    paragraphs.append(block.strip("\n"))
            elif node.name in _BLOCK_TAGS:
                end_paragraph()
    end_paragraph()
    return "\n\n".join(paragraphs)


def _walk(root: Tag) -> Iterator[tuple[PageElement, bool]]:
    """Each node in document order, as (node, True) on entering and (tag, False) on leaving.

    Iterative, so deeply nested markup cannot exhaust the interpreter's recursion limit.
    The children of a <pre> are skipped: `_html_text` takes its text whole.
    """
    stack: list[tuple[PageElement, bool]] = [(root, True)]
    while stack:
        node, entering = stack.pop()
        yield node, entering
        if entering and isinstance(node, Tag):
            stack.append((node, False))
            if node.name != "pre":
                stack.extend((child, True) for child in reversed(node.contents))


def _pdf_text(content: bytes) -> str:
    # Imported here: pypdf is only needed by chunkers that meet a PDF.
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    # pypdf complains about whitespace before the header, which the gateway allows.
    head = content[:1024]
    content = content[len(head) - len(head.lstrip()) :]
    try:
        reader = PdfReader(io.BytesIO(content))
        if reader.is_encrypted:
            # Many PDFs are encrypted only to restrict printing or editing: the empty user
            # password opens them for reading.
            reader.decrypt("")
        pages = [page.extract_text() for page in reader.pages]
    except FileNotDecryptedError as exc:
        raise PermanentTaskError(
            "the PDF could not be read: it is protected by a password; send an unprotected copy"
        ) from exc
    except DependencyError as exc:
        raise PermanentTaskError(f"the PDF could not be read: {exc}") from exc
    # Any other failure comes from the bytes themselves, which pypdf reports with many exception
    # types (PdfReadError, but also KeyError, ValueError, ... on a damaged file), so retrying
    # can never help.
    except Exception as exc:
        raise PermanentTaskError(
            f"the PDF could not be read: it is damaged or not a PDF ({type(exc).__name__}: {exc})"
        ) from exc
    texts = (_normalize_newlines(page).strip() for page in pages)
    return "\n\n".join(text for text in texts if text)
