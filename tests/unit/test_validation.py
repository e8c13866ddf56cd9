"""Ingest and search validation against the real default model and the default settings: every
refusal names the field a client has to fix."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from ragline.chunking_config import resolve_chunking
from ragline.config import Settings
from ragline.errors import InvalidArgument, ResourceExhausted
from ragline.gateway.validation import (
    MAX_ATTRIBUTES,
    MAX_DOCUMENT_ID_BYTES,
    MAX_QUERY_CHARS,
    MAX_TOP_K,
    IngestCommand,
    ValidIngest,
    require_id,
    validate_ingest,
    validate_search,
)
from ragline.model_info import ModelInfo, resolve_model

pytestmark = pytest.mark.unit

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def model() -> ModelInfo:
    info = resolve_model(MODEL_NAME)
    assert info.dimension == 384
    assert info.max_chunk_tokens == 254
    return info


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings()


def command(**changes: Any) -> IngestCommand:
    base = IngestCommand(
        document_id="doc-1",
        content=b"Some plain text about lighthouses.",
        content_type="text/plain",
    )
    return dataclasses.replace(base, **changes)


def refused(cmd: IngestCommand, model: ModelInfo, settings: Settings) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as info:
        validate_ingest(cmd, model, settings)
    return info.value


# -- accepted requests and defaults ------------------------------------------------------------


def test_defaults_are_the_model_limit_and_32_overlap(model: ModelInfo, settings: Settings) -> None:
    assert validate_ingest(command(), model, settings) == ValidIngest("text/plain", 254, 32)


def test_a_small_chunk_size_caps_the_default_overlap_at_half(
    model: ModelInfo, settings: Settings
) -> None:
    assert validate_ingest(command(chunk_size=40), model, settings) == ValidIngest(
        "text/plain", 40, 20
    )


def test_explicit_size_and_overlap_are_kept(model: ModelInfo, settings: Settings) -> None:
    got = validate_ingest(command(chunk_size=254, chunk_overlap=253), model, settings)
    assert (got.chunk_size, got.chunk_overlap) == (254, 253)
    got = validate_ingest(command(chunk_size=1, chunk_overlap=0), model, settings)
    assert (got.chunk_size, got.chunk_overlap) == (1, 0)


def test_the_model_name_and_dimension_may_be_given_when_they_match(
    model: ModelInfo, settings: Settings
) -> None:
    got = validate_ingest(
        command(embedding_model=MODEL_NAME, vector_dimension=384), model, settings
    )
    assert got.chunk_size == 254


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("Text/Markdown; charset=UTF-8", "text/markdown"),
        ("text/x-markdown", "text/markdown"),
        ("application/xhtml+xml", "text/html"),
        (" text/plain ", "text/plain"),
    ],
)
def test_content_types_are_normalised(
    raw: str, normal: str, model: ModelInfo, settings: Settings
) -> None:
    assert validate_ingest(command(content_type=raw), model, settings).content_type == normal


def test_a_real_pdf_header_is_accepted(model: ModelInfo, settings: Settings) -> None:
    got = validate_ingest(
        command(content=b"%PDF-1.7\n...", content_type="application/pdf"), model, settings
    )
    assert got.content_type == "application/pdf"


def test_metadata_within_limits_is_accepted(model: ModelInfo, settings: Settings) -> None:
    attrs = {f"k{i}": "v" * 100 for i in range(MAX_ATTRIBUTES)}
    cmd = command(
        uploaded_by="ana", original_filename="a.txt", attributes=attrs, request_id="req-1"
    )
    assert validate_ingest(cmd, model, settings).chunk_size == 254


# -- content and content type -----------------------------------------------------------------


def test_empty_content(model: ModelInfo, settings: Settings) -> None:
    err = refused(command(content=b""), model, settings)
    assert err.field == "content"
    assert "empty" in err.problem


@pytest.mark.parametrize("content_type", ["application/msword", "image/png", "", "text"])
def test_unsupported_content_type(content_type: str, model: ModelInfo, settings: Settings) -> None:
    err = refused(command(content_type=content_type), model, settings)
    assert err.field == "content_type"


def test_a_charset_other_than_utf8_is_refused(model: ModelInfo, settings: Settings) -> None:
    err = refused(command(content_type="text/plain; charset=latin-1"), model, settings)
    assert err.field == "content_type"
    assert "latin-1" in err.problem


@pytest.mark.parametrize(
    ("content", "offset"),
    [
        (b"caf\xe9 au lait", 3),  # Latin-1 e-acute
        (b"ok \xff", 3),
        (b"abc\xe2\x82", 3),  # a 3-byte sequence cut short at the end
        (b"x\xed\xa0\x80y", 1),  # an encoded surrogate
    ],
)
def test_invalid_utf8_in_text(
    content: bytes, offset: int, model: ModelInfo, settings: Settings
) -> None:
    for content_type in ("text/plain", "text/markdown", "text/html"):
        err = refused(command(content=content, content_type=content_type), model, settings)
        assert err.field == "content"
        assert "UTF-8" in err.problem
        assert f"offset {offset}" in err.problem


def test_valid_multibyte_utf8_with_bom_is_accepted(model: ModelInfo, settings: Settings) -> None:
    text = "\ufeffcafé — 東京 🚀".encode()
    assert validate_ingest(command(content=text), model, settings).content_type == "text/plain"


def test_a_non_pdf_sent_as_pdf(model: ModelInfo, settings: Settings) -> None:
    err = refused(
        command(content=b"just some text", content_type="application/pdf"), model, settings
    )
    assert err.field == "content"
    assert "PDF" in err.problem


def test_oversize_content_is_resource_exhausted(model: ModelInfo, settings: Settings) -> None:
    small = settings.replace(max_document_bytes=1000)
    assert validate_ingest(command(content=b"a" * 1000), model, small).chunk_size == 254
    with pytest.raises(ResourceExhausted) as info:
        validate_ingest(command(content=b"a" * 1001), model, small)
    assert "1001" in str(info.value)
    assert "1000" in str(info.value)


def test_default_limit_is_64_mib(model: ModelInfo, settings: Settings) -> None:
    assert settings.max_document_bytes == 64 * 1024 * 1024
    with pytest.raises(ResourceExhausted):
        validate_ingest(command(content=b"a" * (settings.max_document_bytes + 1)), model, settings)


# -- model config ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["nope/model", "all-mpnet-base-v2", "BAAI/bge-small-en"])
def test_unknown_embedding_model(name: str, model: ModelInfo, settings: Settings) -> None:
    err = refused(command(embedding_model=name), model, settings)
    assert err.field == "config.embedding_model"
    assert name in err.problem


@pytest.mark.parametrize("dimension", [512, 383, 385, 768, -1])
def test_vector_dimension_other_than_384(
    dimension: int, model: ModelInfo, settings: Settings
) -> None:
    err = refused(command(vector_dimension=dimension), model, settings)
    assert err.field == "config.vector_dimension"
    assert "384" in err.problem


@pytest.mark.parametrize("size", [0, -1, -254, 255, 256, 10_000])
def test_bad_chunk_size(size: int, model: ModelInfo, settings: Settings) -> None:
    err = refused(command(chunk_size=size), model, settings)
    assert err.field == "config.chunk_size"


def test_chunk_size_above_the_model_limit_says_the_limit(
    model: ModelInfo, settings: Settings
) -> None:
    err = refused(command(chunk_size=255), model, settings)
    assert "254" in err.problem


@pytest.mark.parametrize(("size", "overlap"), [(100, 100), (100, 101), (10, 500), (None, 254)])
def test_chunk_overlap_not_below_chunk_size(
    size: int | None, overlap: int, model: ModelInfo, settings: Settings
) -> None:
    err = refused(command(chunk_size=size, chunk_overlap=overlap), model, settings)
    assert err.field == "config.chunk_overlap"


def test_negative_chunk_overlap(model: ModelInfo, settings: Settings) -> None:
    err = refused(command(chunk_overlap=-1), model, settings)
    assert err.field == "config.chunk_overlap"


# -- identifiers and metadata ------------------------------------------------------------------


def test_empty_document_id(model: ModelInfo, settings: Settings) -> None:
    err = refused(command(document_id=""), model, settings)
    assert err.field == "document_id"


def test_document_id_length_is_measured_in_utf8_bytes(model: ModelInfo, settings: Settings) -> None:
    assert validate_ingest(command(document_id="a" * MAX_DOCUMENT_ID_BYTES), model, settings)
    err = refused(command(document_id="a" * (MAX_DOCUMENT_ID_BYTES + 1)), model, settings)
    assert err.field == "document_id"
    assert "513" in err.problem
    # 300 two-byte characters are 600 bytes: over, although under 512 characters.
    err = refused(command(document_id="é" * 300), model, settings)
    assert err.field == "document_id"


@pytest.mark.parametrize("bad", ["a\x00b", "line\nbreak", "tab\there", "del\x7f", "x\ud800y"])
def test_document_id_with_control_or_surrogate_characters(
    bad: str, model: ModelInfo, settings: Settings
) -> None:
    err = refused(command(document_id=bad), model, settings)
    assert err.field == "document_id"
    assert "U+" in err.problem


def test_document_id_is_checked_before_the_content(model: ModelInfo, settings: Settings) -> None:
    err = refused(command(document_id="", content=b""), model, settings)
    assert err.field == "document_id"


def test_too_many_attributes(model: ModelInfo, settings: Settings) -> None:
    attrs = {f"k{i}": "v" for i in range(MAX_ATTRIBUTES + 1)}
    err = refused(command(attributes=attrs), model, settings)
    assert err.field == "metadata.attributes"
    assert str(MAX_ATTRIBUTES) in err.problem


def test_attribute_with_empty_key(model: ModelInfo, settings: Settings) -> None:
    err = refused(command(attributes={"": "v"}), model, settings)
    assert err.field == "metadata.attributes"


def test_attribute_value_with_a_control_character_names_the_key(
    model: ModelInfo, settings: Settings
) -> None:
    err = refused(command(attributes={"team": "a\x01b"}), model, settings)
    assert err.field == "metadata.attributes['team']"


def test_oversize_attribute_value(model: ModelInfo, settings: Settings) -> None:
    err = refused(command(attributes={"k": "v" * 4097}), model, settings)
    assert err.field == "metadata.attributes['k']"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"uploaded_by": "x" * 1025}, "metadata.uploaded_by"),
        ({"uploaded_by": "bob\x1b[31m"}, "metadata.uploaded_by"),
        ({"original_filename": "a\x00.txt"}, "metadata.original_filename"),
        ({"request_id": "r" * 129}, "request_id"),
        ({"request_id": "r\n1"}, "request_id"),
    ],
)
def test_other_metadata_fields(
    changes: dict[str, Any], field: str, model: ModelInfo, settings: Settings
) -> None:
    assert refused(command(**changes), model, settings).field == field


def test_at_places_the_field_under_a_prefix(model: ModelInfo, settings: Settings) -> None:
    err = refused(command(chunk_overlap=300), model, settings).at("documents[3]")
    assert err.field == "documents[3].config.chunk_overlap"
    assert str(err).startswith("documents[3].config.chunk_overlap: ")


# -- resolve_chunking on its own ---------------------------------------------------------------


def test_resolve_chunking_defaults(model: ModelInfo, settings: Settings) -> None:
    assert resolve_chunking(None, None, model, settings) == (254, 32)
    assert resolve_chunking(10, None, model, settings) == (10, 5)
    assert resolve_chunking(None, 0, model, settings) == (254, 0)


def test_resolve_chunking_uses_the_deployment_default_size_below_the_limit(
    model: ModelInfo, settings: Settings
) -> None:
    assert resolve_chunking(None, None, model, settings.replace(default_chunk_size=128)) == (
        128,
        32,
    )
    # A deployment default above the model's limit is cut to the limit, not passed on.
    assert resolve_chunking(None, None, model, settings.replace(default_chunk_size=4096)) == (
        254,
        32,
    )


@pytest.mark.parametrize(
    ("size", "overlap", "field"),
    [
        (0, None, "config.chunk_size"),
        (-5, None, "config.chunk_size"),
        (255, None, "config.chunk_size"),
        (100, 100, "config.chunk_overlap"),
        (100, -1, "config.chunk_overlap"),
    ],
)
def test_resolve_chunking_refusals(
    size: int, overlap: int | None, field: str, model: ModelInfo, settings: Settings
) -> None:
    with pytest.raises(InvalidArgument) as info:
        resolve_chunking(size, overlap, model, settings)
    assert info.value.field == field


# -- search and ids ----------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["", " ", "\n\t  "])
def test_empty_search_query(query: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_search(query, 5)
    assert info.value.field == "query"


def test_oversize_search_query() -> None:
    assert validate_search("q" * MAX_QUERY_CHARS, 5) == 5
    with pytest.raises(InvalidArgument) as info:
        validate_search("q" * (MAX_QUERY_CHARS + 1), 5)
    assert info.value.field == "query"


@pytest.mark.parametrize(("top_k", "expected"), [(0, 10), (1, 1), (7, 7), (MAX_TOP_K, MAX_TOP_K)])
def test_search_top_k(top_k: int, expected: int) -> None:
    assert validate_search("lighthouses", top_k) == expected


@pytest.mark.parametrize("top_k", [-1, MAX_TOP_K + 1, 10**6])
def test_bad_search_top_k(top_k: int) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_search("lighthouses", top_k)
    assert info.value.field == "top_k"


def test_require_id() -> None:
    assert require_id("job_id", "abc123") == "abc123"
    for bad in ("", "a\x00", "x" * (MAX_DOCUMENT_ID_BYTES + 1)):
        with pytest.raises(InvalidArgument) as info:
            require_id("job_id", bad)
        assert info.value.field == "job_id"
