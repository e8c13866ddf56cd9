"""Chunk primary keys: deterministic, fixed length, distinct."""

from __future__ import annotations

import itertools
import re

import pytest

from ragline.indexer.keys import CHUNK_KEY_LENGTH, chunk_key

pytestmark = pytest.mark.unit


def test_same_inputs_same_key() -> None:
    assert chunk_key("doc-1", 3, 7) == chunk_key("doc-1", 3, 7)


@pytest.mark.parametrize("document_id", ["", "a", "é😀", "x" * 5000, 'q"\\\x00\n'])
def test_key_is_fixed_length_lowercase_hex(document_id: str) -> None:
    assert re.fullmatch(f"[0-9a-f]{{{CHUNK_KEY_LENGTH}}}", chunk_key(document_id, 1, 0))


def test_tricky_inputs_give_distinct_keys() -> None:
    inputs = [
        ("a:1", 2, 3),
        ("a", 12, 3),
        ("a:12", 3, 0),
        ("a", 1, 23),
        ("a1", 2, 3),
        ("1:a", 1, 2),
        ("", 0, 0),
        ("\x00", 0, 0),
        ("a", -1, 0),
        ("a", 1, 0),
        ("a", 0, 1),
        ("é", 1, 1),
        ("e\u0301", 1, 1),  # decomposed é: a different id, so a different key
    ]
    keys = [chunk_key(*args) for args in inputs]
    assert len(set(keys)) == len(keys)


def test_grid_of_versions_and_indexes_is_collision_free() -> None:
    keys = {
        chunk_key(doc, version, index)
        for doc, version, index in itertools.product(["a", "a1", "a:1", "1"], range(30), range(30))
    }
    assert len(keys) == 4 * 30 * 30


def test_default_tenant_keeps_the_keys_made_before_tenancy() -> None:
    # The v1 key of ("doc-1", 3, 7) as ragline computed it before tenancy: rows stored then must
    # keep their primary keys, or a re-ingest would leave a second copy beside them.
    assert chunk_key("doc-1", 3, 7, "default") == "d53027e51cc49a4bd54e730706542dec"
    assert chunk_key("doc-1", 3, 7, "acme") != "d53027e51cc49a4bd54e730706542dec"


def test_tenants_never_share_a_key() -> None:
    tenants = ["default", "a", "b", "a1", "1a", "a-b", "a_b"]
    keys = {chunk_key(doc, 1, 0, tenant) for tenant in tenants for doc in ["x", "1:x", "ax", ""]}
    assert len(keys) == len(tenants) * 4
