"""Deterministic primary keys for stored chunks."""

from __future__ import annotations

import hashlib

__all__ = ["CHUNK_KEY_LENGTH", "chunk_key"]

CHUNK_KEY_LENGTH = 32
# Bumping the tag changes every key; it exists so a future key scheme cannot collide with this one.
_TAG = b"ragline.chunk.v1\x00"


def chunk_key(document_id: str, document_version: int, chunk_index: int) -> str:
    """The primary key of one chunk: 32 lowercase hex chars (128 bits of SHA-256).

    The same inputs always give the same key, so a redelivered chunk upserts over itself. The
    document id is length-prefixed, so ("a:1", 2, 3) and ("a", 12, 3) cannot share an encoding.
    """
    doc = document_id.encode("utf-8")
    payload = b"%s%d:%s:%d:%d" % (_TAG, len(doc), doc, document_version, chunk_index)
    return hashlib.sha256(payload).hexdigest()[:CHUNK_KEY_LENGTH]
