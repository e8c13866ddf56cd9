"""Validation of ingest requests, field by field. Pure: no I/O, no protobuf.

Every failure names the field (InvalidArgument) or the limit (ResourceExhausted), so a client
can fix its request without reading server logs.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

from ragline.chunking_config import resolve_chunking
from ragline.config import Settings
from ragline.content_types import check_content, normalize_content_type
from ragline.errors import InvalidArgument, ResourceExhausted
from ragline.limits import MAX_DOCUMENT_ID_BYTES, MAX_TOP_K
from ragline.model_info import ModelInfo

MAX_REQUEST_ID_CHARS = 128
MAX_ATTRIBUTES = 64
MAX_ATTRIBUTE_KEY_CHARS = 128
MAX_ATTRIBUTE_VALUE_CHARS = 4096
MAX_NAME_CHARS = 1024
MAX_QUERY_CHARS = 8192


@dataclass(frozen=True)
class IngestCommand:
    """An ingest request as the domain sees it."""

    document_id: str
    content: bytes
    content_type: str
    chunk_size: int | None = None
    chunk_overlap: int | None = None
    embedding_model: str = ""
    vector_dimension: int = 0
    request_id: str = ""
    uploaded_by: str = ""
    original_filename: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ValidIngest:
    """What validation settled: the normalised content type and the chunking to use."""

    content_type: str
    chunk_size: int
    chunk_overlap: int


def validate_ingest(cmd: IngestCommand, model: ModelInfo, settings: Settings) -> ValidIngest:
    """Checks every field; raises InvalidArgument or ResourceExhausted for the first bad one."""
    _check_identifier("document_id", cmd.document_id, max_bytes=MAX_DOCUMENT_ID_BYTES)
    if len(cmd.content) > settings.max_document_bytes:
        raise ResourceExhausted(
            f"content: {len(cmd.content)} bytes is over this deployment's limit of "
            f"{settings.max_document_bytes} bytes per document; split the document"
        )
    content_type = normalize_content_type(cmd.content_type)
    check_content(cmd.content, content_type)
    if cmd.embedding_model and cmd.embedding_model != model.name:
        raise InvalidArgument(
            "config.embedding_model",
            f"unknown model {cmd.embedding_model!r}; this deployment embeds with {model.name!r} "
            "(leave the field empty to use it)",
        )
    if cmd.vector_dimension and cmd.vector_dimension != model.dimension:
        raise InvalidArgument(
            "config.vector_dimension",
            f"{cmd.vector_dimension} does not match model {model.name!r}, which makes "
            f"{model.dimension}-dimensional vectors (use 0 or {model.dimension})",
        )
    size, overlap = resolve_chunking(cmd.chunk_size, cmd.chunk_overlap, model, settings)
    if cmd.request_id:
        _check_identifier("request_id", cmd.request_id, max_bytes=MAX_REQUEST_ID_CHARS)
    _check_text("metadata.uploaded_by", cmd.uploaded_by, MAX_NAME_CHARS)
    _check_text("metadata.original_filename", cmd.original_filename, MAX_NAME_CHARS)
    if len(cmd.attributes) > MAX_ATTRIBUTES:
        raise InvalidArgument(
            "metadata.attributes", f"has {len(cmd.attributes)} entries; at most {MAX_ATTRIBUTES}"
        )
    for key, value in cmd.attributes.items():
        if not key:
            raise InvalidArgument("metadata.attributes", "has an empty key")
        _check_text(f"metadata.attributes[{key[:40]!r}]", key, MAX_ATTRIBUTE_KEY_CHARS)
        _check_text(f"metadata.attributes[{key[:40]!r}]", value, MAX_ATTRIBUTE_VALUE_CHARS)
    return ValidIngest(content_type, size, overlap)


def validate_search(query: str, top_k: int) -> int:
    """The top_k to use (0 means 10); InvalidArgument for an empty query or a bad top_k."""
    if not query.strip():
        raise InvalidArgument("query", "must not be empty")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidArgument("query", f"is {len(query)} characters; at most {MAX_QUERY_CHARS}")
    if top_k == 0:
        return 10
    if not 1 <= top_k <= MAX_TOP_K:
        raise InvalidArgument("top_k", f"must be between 1 and {MAX_TOP_K} (got {top_k})")
    return top_k


def require_id(field_name: str, value: str) -> str:
    """A non-empty id without control characters, or InvalidArgument."""
    _check_identifier(field_name, value, max_bytes=MAX_DOCUMENT_ID_BYTES)
    return value


def _check_identifier(field_name: str, value: str, *, max_bytes: int) -> None:
    if not value:
        raise InvalidArgument(field_name, "must not be empty")
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise InvalidArgument(field_name, f"is {size} bytes long; at most {max_bytes}")
    _check_text(field_name, value, max_bytes)


def _check_text(field_name: str, value: str, max_chars: int) -> None:
    if len(value) > max_chars:
        raise InvalidArgument(field_name, f"is {len(value)} characters long; at most {max_chars}")
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cs"):
            raise InvalidArgument(
                field_name, f"contains the control or surrogate character U+{ord(ch):04X}"
            )
