"""VectorStore against real Milvus Lite: each test has its own file and collection."""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest

from ragline.errors import ConfigurationError, PermanentTaskError
from ragline.indexer.keys import chunk_key
from ragline.indexer.vector_store import MAX_TEXT_BYTES, ChunkRow, VectorStore

pytestmark = pytest.mark.integration

DIM = 8
NASTY_IDS = [
    'quote"inside',
    "single'quote",
    "back\\slash",
    'both\\"mixed',
    "trailing\\",
    "ünïcødé 文档 😀",
    "new\nline\ttab\rcr",
    'x" or document_id != "',
    "\\u0041 and \\x41",
    "{d}",
]


def _collection() -> str:
    return f"t_{uuid.uuid4().hex}"


def _vector(seed: int, dim: int = DIM) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(-1, 1) for _ in range(dim)]


def _row(
    document_id: str, version: int, index: int, *, dim: int = DIM, seed: int | None = None
) -> ChunkRow:
    return ChunkRow(
        document_id=document_id,
        document_version=version,
        chunk_index=index,
        text=f"{document_id} v{version} #{index}",
        vector=_vector(hash((document_id, version, index)) if seed is None else seed, dim),
        metadata={"uploaded_by": "tester", "upload_time": "2024-01-02T03:04:05Z", "attributes": {}},
        job_id=f"job-{version}",
    )


@pytest.fixture
def lite_path(tmp_path: Path) -> str:
    return str(tmp_path / "nested" / "milvus.db")  # parent folder does not exist yet


@pytest.fixture
def store(lite_path: str) -> Iterator[VectorStore]:
    with VectorStore(lite_path, _collection(), DIM) as vector_store:
        vector_store.ensure_collection()
        yield vector_store


def test_upsert_is_idempotent(store: VectorStore) -> None:
    rows = [_row("doc", 1, i) for i in range(5)]
    store.upsert(rows)
    store.upsert(rows)
    store.upsert(rows[:2] + rows[:2])  # a batch holding the same chunk twice

    assert store.count() == 5
    assert store.count("doc") == 5


def test_reingest_then_delete_older_versions_leaves_only_new(store: VectorStore) -> None:
    store.upsert([_row("doc", 1, i) for i in range(5)])
    store.upsert([_row("other", 1, i) for i in range(2)])
    store.upsert([_row("doc", 2, i) for i in range(3)])

    deleted = store.delete_document("doc", below_version=2)

    assert deleted == 5
    assert store.count("doc") == 3
    assert store.count("other") == 2
    hits = store.search(_vector(0), 10, document_ids=["doc"])
    assert sorted((h.document_version, h.chunk_index) for h in hits) == [(2, 0), (2, 1), (2, 2)]


def test_delete_only_version_and_whole_document(store: VectorStore) -> None:
    for version, chunks in [(1, 2), (2, 3), (3, 4)]:
        store.upsert([_row("doc", version, i) for i in range(chunks)])

    assert store.delete_document("doc", only_version=2) == 3
    assert store.count("doc") == 6
    assert store.delete_document("doc", only_version=2) == 0  # redelivered: nothing left
    assert store.delete_document("doc") == 6
    assert store.count() == 0
    assert store.delete_document("never-stored") == 0


def test_search_returns_nearest_first_and_honours_document_ids(store: VectorStore) -> None:
    rows = [_row(f"doc{d}", 1, i, seed=10 * d + i) for d in range(3) for i in range(4)]
    store.upsert(rows)
    target = rows[5]  # doc1, chunk 1

    hits = store.search(target.vector, 3)

    assert len(hits) == 3
    best = hits[0]
    assert (best.document_id, best.document_version, best.chunk_index) == ("doc1", 1, 1)
    assert best.score == pytest.approx(1.0, abs=1e-5)
    assert best.text == target.text
    assert best.metadata == dict(target.metadata)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)

    filtered = store.search(target.vector, 10, document_ids=["doc0", "doc2"])
    assert len(filtered) == 8
    assert {h.document_id for h in filtered} == {"doc0", "doc2"}


def test_score_is_cosine_similarity(store: VectorStore) -> None:
    store.upsert([_row("doc", 1, 0, seed=1)])
    stored = _vector(1)
    query = [x + 0.5 for x in stored]
    dot = sum(a * b for a, b in zip(stored, query, strict=True))
    expected = dot / (math.hypot(*stored) * math.hypot(*query))

    [hit] = store.search(query, 1)

    assert hit.score == pytest.approx(expected, abs=1e-5)


def test_nasty_document_ids_work_in_filters(store: VectorStore) -> None:
    for n, document_id in enumerate(NASTY_IDS):
        store.upsert([_row(document_id, 1, i) for i in range(n + 1)])
    store.upsert([_row(document_id, 2, 0) for document_id in NASTY_IDS])

    for n, document_id in enumerate(NASTY_IDS):
        assert store.count(document_id) == n + 2, document_id
        hits = store.search(_vector(0), 50, document_ids=[document_id])
        assert {h.document_id for h in hits} == {document_id}
        assert store.delete_document(document_id, below_version=2) == n + 1, document_id
    assert store.count() == len(NASTY_IDS)
    hits = store.search(_vector(0), 50, document_ids=NASTY_IDS)
    assert sorted(h.document_id for h in hits) == sorted(NASTY_IDS)


def test_batch_of_1000_rows_is_one_upsert_call(lite_path: str) -> None:
    with VectorStore(lite_path, _collection(), 384) as store:
        store.ensure_collection()
        rows = [_row("big", 1, i, dim=384, seed=i) for i in range(1000)]
        client = store._client
        with mock.patch.object(client, "upsert", wraps=client.upsert) as spy:
            store.upsert(rows)
            store.upsert([])

        assert spy.call_count == 1
        assert len(spy.call_args.args[1]) == 1000
        assert store.count("big") == 1000


def test_long_text_is_truncated_on_a_character_boundary(store: VectorStore) -> None:
    text = "é" * MAX_TEXT_BYTES  # 2 bytes each: an odd byte limit cuts inside one
    row = _row("doc", 1, 0)
    store.upsert([ChunkRow(**{**row.__dict__, "text": text})])

    [hit] = store.search(row.vector, 1)

    assert len(hit.text.encode("utf-8")) == MAX_TEXT_BYTES - 1
    assert hit.text == text[: len(hit.text)]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"vector": [1.0] * (DIM - 1)}, "dimensions"),
        ({"vector": [math.nan] * DIM}, "NaN"),
        ({"document_id": "d" * 1025}, "document id"),
        ({"metadata": {"when": object()}}, "JSON"),
    ],
)
def test_rows_that_can_never_be_stored_are_permanent_errors(
    store: VectorStore, change: dict[str, object], problem: str
) -> None:
    good = _row("good", 1, 0)
    bad = ChunkRow(**{**_row("bad", 1, 0).__dict__, **change})

    with pytest.raises(PermanentTaskError, match=problem):
        store.upsert([good, bad])

    assert store.count() == 0  # checked before anything is written


def test_existing_collection_with_other_dimension_is_a_configuration_error(
    lite_path: str,
) -> None:
    name = _collection()
    with VectorStore(lite_path, name, DIM) as first:
        first.ensure_collection()
    with VectorStore(lite_path, name, DIM * 2) as second, pytest.raises(ConfigurationError) as info:
        second.ensure_collection()

    message = str(info.value)
    assert name in message
    assert f"{DIM}-dimensional" in message
    assert f"{DIM * 2}-dimensional" in message
    assert "RAGLINE_MILVUS_COLLECTION" in message


def test_reopening_the_file_after_close_sees_the_data(lite_path: str) -> None:
    name = _collection()
    rows = [_row("doc", 1, i) for i in range(4)]
    with VectorStore(lite_path, name, DIM) as first:
        first.ensure_collection()
        first.upsert(rows)
        first.delete_document("doc", only_version=1)
        first.upsert(rows[:3])

    # close() stopped Lite's in-process server, so this reads the file afresh.
    with VectorStore(lite_path, name, DIM) as second:
        second.ensure_collection()
        assert second.count("doc") == 3
        assert second.search(rows[2].vector, 1)[0].chunk_index == 2
        assert {h.chunk_index for h in second.search(rows[0].vector, 10)} == {0, 1, 2}


def test_chunk_key_is_the_primary_key(store: VectorStore) -> None:
    row = _row("doc", 7, 3)
    store.upsert([row])

    found = store._client.get(store.collection, ids=[chunk_key("doc", 7, 3)])

    assert [r["chunk_index"] for r in found] == [3]


def test_bad_uri_and_collection_name_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"\.db"):
        VectorStore(str(tmp_path / "milvus.sqlite"), "ok", DIM)
    with pytest.raises(ConfigurationError, match="RAGLINE_MILVUS_COLLECTION"):
        VectorStore(str(tmp_path / "milvus.db"), "bad-name", DIM)
