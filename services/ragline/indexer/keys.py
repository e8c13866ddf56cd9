"""Deterministic primary keys for stored chunks."""

from __future__ import annotations

import hashlib

from ragline.tenants import DEFAULT_TENANT

__all__ = ["CHUNK_KEY_LENGTH", "chunk_key"]

CHUNK_KEY_LENGTH = 32
# Bumping a tag changes every key it makes; the tags keep the two schemes below from colliding.
_TAG = b"ragline.chunk.v1\x00"
_TENANT_TAG = b"ragline.chunk.v2\x00"


def chunk_key(
    document_id: str, document_version: int, chunk_index: int, tenant: str = DEFAULT_TENANT
) -> str:
    """The primary key of one chunk: 32 lowercase hex chars (128 bits of SHA-256).

    The same inputs always give the same key, so a redelivered chunk upserts over itself. The
    document id is length-prefixed, so ("a:1", 2, 3) and ("a", 12, 3) cannot share an encoding.
    The default tenant's keys are those made before tenancy (v1), so rows written then keep their
    keys; every other tenant's key covers the tenant too (v2), so two tenants' documents with the
    same id never share a row.
    """
    doc = document_id.encode("utf-8")
    if tenant == DEFAULT_TENANT:
        payload = b"%s%d:%s:%d:%d" % (_TAG, len(doc), doc, document_version, chunk_index)
    else:
        owner = tenant.encode("utf-8")
        payload = b"%s%d:%s%d:%s:%d:%d" % (
            _TENANT_TAG,
            len(owner),
            owner,
            len(doc),
            doc,
            document_version,
            chunk_index,
        )
    return hashlib.sha256(payload).hexdigest()[:CHUNK_KEY_LENGTH]
