"""Which document types ragline accepts, and the cheap checks the gateway runs before accepting one.

A core module: the gateway checks with it, the chunker parses by it.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from ragline.errors import InvalidArgument

__all__ = [
    "SUPPORTED_CONTENT_TYPES",
    "TEXT_CONTENT_TYPES",
    "check_content",
    "content_type_for_path",
    "is_pdf_header",
    "normalize_content_type",
]

SUPPORTED_CONTENT_TYPES = ("text/plain", "text/markdown", "text/html", "application/pdf")
# The types whose bytes must be UTF-8 text.
TEXT_CONTENT_TYPES = frozenset({"text/plain", "text/markdown", "text/html"})

_ALIASES = {
    "text/x-markdown": "text/markdown",
    "application/xhtml+xml": "text/html",
    "application/x-pdf": "application/pdf",
}
_EXTENSIONS = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
}
_UTF8_CHARSETS = frozenset({"utf-8", "utf8"})
_SUPPORTED_LIST = ", ".join(SUPPORTED_CONTENT_TYPES)

# UTF-8 is validated in blocks so a large document is never decoded into one big str.
_UTF8_BLOCK = 1 << 20
# PDF readers look for the header within the first KiB; only whitespace may come before it here.
_PDF_HEADER_WINDOW = 1024


def normalize_content_type(raw: str) -> str:
    """The canonical form of a MIME type, e.g. ``"Text/Markdown; charset=UTF-8"`` -> ``"text/markdown"``.

    Parameters are dropped, except that a ``charset`` other than UTF-8 is refused.
    Raises InvalidArgument("content_type", ...) for an empty, malformed or unsupported type.
    """
    main, *params = raw.split(";")
    mime = main.strip().lower()
    if not mime:
        raise InvalidArgument("content_type", f"is empty; it must be one of {_SUPPORTED_LIST}")
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() != "charset":
            continue
        charset = value.strip().strip("\"'").lower()
        if charset not in _UTF8_CHARSETS:
            raise InvalidArgument(
                "content_type",
                f"charset {charset or '(empty)'!r} is not supported; "
                "send the text as UTF-8 (charset=utf-8) or leave the charset out",
            )
    mime = _ALIASES.get(mime, mime)
    if mime not in SUPPORTED_CONTENT_TYPES:
        raise InvalidArgument(
            "content_type", f"{raw.strip()!r} is not supported; it must be one of {_SUPPORTED_LIST}"
        )
    return mime


def content_type_for_path(path: str | Path) -> str | None:
    """The content type a file name's extension implies (case-insensitive), or None when unknown."""
    return _EXTENSIONS.get(Path(path).suffix.lower())


def check_content(content: bytes, content_type: str) -> None:
    """Refuse content that can never be parsed as `content_type`, in time linear in its size.

    `content_type` should come from `normalize_content_type`; anything else is normalized first.
    Raises InvalidArgument("content", ...) for empty content, text that is not UTF-8 (a BOM is
    fine) and a PDF without a PDF header.
    """
    if content_type not in SUPPORTED_CONTENT_TYPES:
        content_type = normalize_content_type(content_type)
    if not content:
        raise InvalidArgument("content", "is empty")
    if content_type in TEXT_CONTENT_TYPES:
        bad = _first_invalid_utf8(content)
        if bad is not None:
            raise InvalidArgument(
                "content",
                f"is not valid UTF-8 (first bad byte at offset {bad}); send UTF-8 text, "
                "or convert the file first (for example `iconv -f WINDOWS-1252 -t UTF-8`)",
            )
    elif content_type == "application/pdf" and not is_pdf_header(content):
        raise InvalidArgument(
            "content",
            'is not a PDF (it does not start with "%PDF-"); '
            "check the file, or send its real content type",
        )


def is_pdf_header(content: bytes) -> bool:
    """Whether `content` starts with a PDF header, after any whitespace."""
    return content[:_PDF_HEADER_WINDOW].lstrip().startswith(b"%PDF-")


def _first_invalid_utf8(content: bytes) -> int | None:
    """The offset of the first byte that is not valid UTF-8, or None when all of it is."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(content)
    for start in range(0, len(content), _UTF8_BLOCK):
        # Bytes of a sequence cut by the previous block are still held by the decoder.
        held = len(decoder.getstate()[0])
        end = start + _UTF8_BLOCK
        try:
            decoder.decode(view[start:end], final=end >= len(content))
        except UnicodeDecodeError as exc:
            return start - held + exc.start
    return None
