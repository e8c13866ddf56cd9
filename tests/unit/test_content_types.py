from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ragline import content_types
from ragline.content_types import (
    SUPPORTED_CONTENT_TYPES,
    check_content,
    content_type_for_path,
    normalize_content_type,
)
from ragline.errors import InvalidArgument

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("text/plain", "text/plain"),
        ("  Text/Markdown  ", "text/markdown"),
        ("text/html; charset=UTF-8", "text/html"),
        ('text/plain;charset="utf8"', "text/plain"),
        ("text/markdown; variant=GFM", "text/markdown"),
        ("text/x-markdown", "text/markdown"),
        ("application/xhtml+xml", "text/html"),
        ("APPLICATION/PDF", "application/pdf"),
    ],
)
def test_normalize_content_type(raw: str, expected: str) -> None:
    assert normalize_content_type(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "image/png", "text/csv", "application/msword", ";"])
def test_unsupported_content_type_names_the_field_and_the_supported_types(raw: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        normalize_content_type(raw)
    assert info.value.field == "content_type"
    for supported in SUPPORTED_CONTENT_TYPES:
        assert supported in info.value.problem


@pytest.mark.parametrize("charset", ["latin-1", "ISO-8859-1", "utf-16", ""])
def test_a_charset_other_than_utf8_is_refused(charset: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        normalize_content_type(f"text/plain; charset={charset}")
    assert info.value.field == "content_type"
    assert "UTF-8" in info.value.problem


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("notes.txt", "text/plain"),
        ("NOTES.TEXT", "text/plain"),
        ("readme.md", "text/markdown"),
        ("guide.Markdown", "text/markdown"),
        (Path("site/index.html"), "text/html"),
        ("page.HTM", "text/html"),
        ("paper.pdf", "application/pdf"),
        ("archive.tar.gz", None),
        ("Makefile", None),
        ("photo.png", None),
    ],
)
def test_content_type_for_path(path: str | Path, expected: str | None) -> None:
    assert content_type_for_path(path) == expected


@pytest.mark.parametrize("content_type", SUPPORTED_CONTENT_TYPES)
def test_empty_content_is_refused(content_type: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        check_content(b"", content_type)
    assert (info.value.field, info.value.problem) == ("content", "is empty")


def test_invalid_utf8_names_the_offset_of_the_first_bad_byte() -> None:
    with pytest.raises(InvalidArgument) as info:
        check_content("café ".encode() + "naïve".encode("latin-1"), "text/plain")
    assert info.value.field == "content"
    assert "not valid UTF-8" in info.value.problem
    assert "offset 8" in info.value.problem


@pytest.mark.parametrize("content_type", ["text/plain", "text/markdown", "text/html"])
def test_valid_utf8_with_or_without_a_bom_is_accepted(content_type: str) -> None:
    text = "Ünïcödé text — 日本語 🐝"
    check_content(text.encode(), content_type)
    check_content(b"\xef\xbb\xbf" + text.encode(), content_type)


def test_a_truncated_utf8_sequence_at_the_end_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="offset 3"):
        check_content(b"abc" + "日".encode()[:2], "text/markdown")


@given(st.binary(max_size=64))
@settings(max_examples=300)
def test_utf8_offsets_match_a_whole_decode_across_block_boundaries(data: bytes) -> None:
    try:
        data.decode("utf-8")
        expected = None
    except UnicodeDecodeError as exc:
        expected = exc.start
    with pytest.MonkeyPatch.context() as patch:
        # Tiny blocks put sequences across block boundaries.
        patch.setattr(content_types, "_UTF8_BLOCK", 3)
        assert content_types._first_invalid_utf8(data) == expected


def test_pdf_content_needs_a_pdf_header() -> None:
    check_content(b"%PDF-1.7\n...", "application/pdf")
    check_content(b"\r\n \t%PDF-1.4\n...", "application/pdf")
    with pytest.raises(InvalidArgument) as info:
        check_content(b"PK\x03\x04 a zip file", "application/pdf")
    assert info.value.field == "content"
    assert "is not a PDF" in info.value.problem


def test_pdf_bytes_need_not_be_utf8() -> None:
    check_content(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "application/pdf")


def test_check_content_normalizes_a_raw_content_type() -> None:
    check_content(b"hello", "Text/Plain; charset=utf-8")
    with pytest.raises(InvalidArgument) as info:
        check_content(b"hello", "image/png")
    assert info.value.field == "content_type"
