"""Resolving and validating a request's chunk size and overlap against the model. Pure."""

from __future__ import annotations

from ragline.config import Settings
from ragline.errors import InvalidArgument
from ragline.model_info import ModelInfo


def resolve_chunking(
    chunk_size: int | None, chunk_overlap: int | None, model: ModelInfo, settings: Settings
) -> tuple[int, int]:
    """(chunk_size, chunk_overlap) with the deployment's defaults filled in; InvalidArgument
    naming the field when a value cannot work with the model."""
    limit = model.max_chunk_tokens
    if chunk_size is None:
        size = min(settings.default_chunk_size or limit, limit)
    else:
        size = chunk_size
        if size <= 0:
            raise InvalidArgument("config.chunk_size", f"must be positive (got {size})")
        if size > limit:
            raise InvalidArgument(
                "config.chunk_size",
                f"{size} tokens is above the limit of model {model.name!r}, which reads at most "
                f"{limit} tokens per chunk; use {limit} or less",
            )
    if chunk_overlap is None:
        overlap = min(settings.default_chunk_overlap, size // 2)
    else:
        overlap = chunk_overlap
        if overlap < 0:
            raise InvalidArgument("config.chunk_overlap", f"must not be negative (got {overlap})")
        if overlap >= size:
            raise InvalidArgument(
                "config.chunk_overlap",
                f"must be less than chunk_size ({overlap} >= {size})",
            )
    return size, overlap
