"""VectorStore against real Milvus Lite: each test has its own file and collection."""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
from pymilvus import DataType, MilvusClient

from ragline.errors import ConfigurationError, PermanentTaskError
from ragline.indexer.keys import chunk_key
from ragline.indexer.vector_store import (
    MAX_TEXT_BYTES,
    ChunkRow,
    LegacyCollection,
    VectorStore,
)

pytestmark = pytest.mark.integration

DIM = 8
# The tenant of most tests here; tenancy's own tests are at the end.
T = "default"
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
    document_id: str,
    version: int,
    index: int,
    *,
    dim: int = DIM,
    seed: int | None = None,
    tenant: str = T,
) -> ChunkRow:
    return ChunkRow(
        document_id=document_id,
        document_version=version,
        chunk_index=index,
        text=f"{document_id} v{version} #{index}",
        vector=_vector(hash((document_id, version, index)) if seed is None else seed, dim),
        metadata={"uploaded_by": "tester", "upload_time": "2024-01-02T03:04:05Z", "attributes": {}},
        job_id=f"job-{version}",
        tenant=tenant,
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

    assert store.count(tenant=None) == 5
    assert store.count("doc", tenant=T) == 5


def test_reingest_then_delete_older_versions_leaves_only_new(store: VectorStore) -> None:
    store.upsert([_row("doc", 1, i) for i in range(5)])
    store.upsert([_row("other", 1, i) for i in range(2)])
    store.upsert([_row("doc", 2, i) for i in range(3)])

    deleted = store.delete_document(T, "doc", below_version=2)

    assert deleted == 5
    assert store.count("doc", tenant=T) == 3
    assert store.count("other", tenant=T) == 2
    hits = store.search(T, _vector(0), 10, document_ids=["doc"])
    assert sorted((h.document_version, h.chunk_index) for h in hits) == [(2, 0), (2, 1), (2, 2)]


def test_delete_only_version_and_whole_document(store: VectorStore) -> None:
    for version, chunks in [(1, 2), (2, 3), (3, 4)]:
        store.upsert([_row("doc", version, i) for i in range(chunks)])

    assert store.delete_document(T, "doc", only_version=2) == 3
    assert store.count("doc", tenant=T) == 6
    assert store.delete_document(T, "doc", only_version=2) == 0  # redelivered: nothing left
    assert store.delete_document(T, "doc") == 6
    assert store.count(tenant=None) == 0
    assert store.delete_document(T, "never-stored") == 0


def test_search_returns_nearest_first_and_honours_document_ids(store: VectorStore) -> None:
    rows = [_row(f"doc{d}", 1, i, seed=10 * d + i) for d in range(3) for i in range(4)]
    store.upsert(rows)
    target = rows[5]  # doc1, chunk 1

    hits = store.search(T, target.vector, 3)

    assert len(hits) == 3
    best = hits[0]
    assert (best.document_id, best.document_version, best.chunk_index) == ("doc1", 1, 1)
    assert best.score == pytest.approx(1.0, abs=1e-5)
    assert best.text == target.text
    assert best.metadata == dict(target.metadata)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)

    filtered = store.search(T, target.vector, 10, document_ids=["doc0", "doc2"])
    assert len(filtered) == 8
    assert {h.document_id for h in filtered} == {"doc0", "doc2"}


def test_score_is_cosine_similarity(store: VectorStore) -> None:
    store.upsert([_row("doc", 1, 0, seed=1)])
    stored = _vector(1)
    query = [x + 0.5 for x in stored]
    dot = sum(a * b for a, b in zip(stored, query, strict=True))
    expected = dot / (math.hypot(*stored) * math.hypot(*query))

    [hit] = store.search(T, query, 1)

    assert hit.score == pytest.approx(expected, abs=1e-5)


def test_nasty_document_ids_work_in_filters(store: VectorStore) -> None:
    for n, document_id in enumerate(NASTY_IDS):
        store.upsert([_row(document_id, 1, i) for i in range(n + 1)])
    store.upsert([_row(document_id, 2, 0) for document_id in NASTY_IDS])

    for n, document_id in enumerate(NASTY_IDS):
        assert store.count(document_id, tenant=T) == n + 2, document_id
        hits = store.search(T, _vector(0), 50, document_ids=[document_id])
        assert {h.document_id for h in hits} == {document_id}
        assert store.delete_document(T, document_id, below_version=2) == n + 1, document_id
    assert store.count(tenant=None) == len(NASTY_IDS)
    hits = store.search(T, _vector(0), 50, document_ids=NASTY_IDS)
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
        assert store.count("big", tenant=T) == 1000


def test_long_text_is_truncated_on_a_character_boundary(store: VectorStore) -> None:
    text = "é" * MAX_TEXT_BYTES  # 2 bytes each: an odd byte limit cuts inside one
    row = _row("doc", 1, 0)
    store.upsert([ChunkRow(**{**row.__dict__, "text": text})])

    [hit] = store.search(T, row.vector, 1)

    assert len(hit.text.encode("utf-8")) == MAX_TEXT_BYTES - 1
    assert hit.text == text[: len(hit.text)]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"vector": [1.0] * (DIM - 1)}, "dimensions"),
        ({"vector": [math.nan] * DIM}, "NaN"),
        ({"document_id": "d" * 1025}, "document id"),
        ({"metadata": {"when": object()}}, "JSON"),
        ({"tenant": 'a" or tenant != "'}, "tenant"),
        ({"tenant": ""}, "tenant"),
    ],
)
def test_rows_that_can_never_be_stored_are_permanent_errors(
    store: VectorStore, change: dict[str, object], problem: str
) -> None:
    good = _row("good", 1, 0)
    bad = ChunkRow(**{**_row("bad", 1, 0).__dict__, **change})

    with pytest.raises(PermanentTaskError, match=problem):
        store.upsert([good, bad])

    assert store.count(tenant=None) == 0  # checked before anything is written


def test_rows_sharing_one_metadata_mapping_each_keep_their_own(store: VectorStore) -> None:
    # The indexer gives a task's chunks one mapping, checked once per batch: a batch mixing
    # tasks still stores each row's own, and one task's bad mapping still fails the batch.
    first = {"uploaded_by": "first", "attributes": {}}
    second = {"uploaded_by": "second", "attributes": {}}
    rows = [
        ChunkRow(**{**_row("doc", 1, i).__dict__, "metadata": first if i < 3 else second})
        for i in range(6)
    ]
    store.upsert(rows)
    for row in rows:
        [hit] = store.search(T, row.vector, 1)
        assert (hit.chunk_index, hit.metadata) == (row.chunk_index, dict(row.metadata))

    bad = {"when": object()}
    with pytest.raises(PermanentTaskError, match="JSON"):
        store.upsert([*rows, *(ChunkRow(**{**r.__dict__, "metadata": bad}) for r in rows[:2])])


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
        first.delete_document(T, "doc", only_version=1)
        first.upsert(rows[:3])

    # close() stopped Lite's in-process server, so this reads the file afresh.
    with VectorStore(lite_path, name, DIM) as second:
        second.ensure_collection()
        assert second.count("doc", tenant=T) == 3
        assert second.search(T, rows[2].vector, 1)[0].chunk_index == 2
        assert {h.chunk_index for h in second.search(T, rows[0].vector, 10)} == {0, 1, 2}


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


# -- tenants -------------------------------------------------------------------------------------


def test_tenants_with_the_same_document_id_never_meet(store: VectorStore) -> None:
    # Same id, same version, same vectors: only the tenant differs.
    a = [_row("handbook.pdf", 1, i, seed=i, tenant="acme") for i in range(3)]
    b = [_row("handbook.pdf", 1, i, seed=i, tenant="globex") for i in range(3)]
    store.upsert(a)
    store.upsert(b)

    assert store.count("handbook.pdf", tenant="acme") == 3
    assert store.count("handbook.pdf", tenant="globex") == 3
    assert store.count(tenant="default") == 0
    assert store.count(tenant=None) == 6
    # B's own vector, searched as A, finds A's chunks only.
    hits = store.search("acme", b[0].vector, 10)
    assert len(hits) == 3
    assert {h.text for h in hits} == {r.text for r in a}

    assert store.delete_document("acme", "handbook.pdf") == 3
    assert store.count("handbook.pdf", tenant="acme") == 0
    assert store.count("handbook.pdf", tenant="globex") == 3
    store.discard("acme", "handbook.pdf", only_version=1)
    assert len(store.search("globex", b[0].vector, 10)) == 3


@pytest.mark.parametrize(
    "tenant",
    [
        'acme" or tenant != "',
        "acme' or 1=1",
        "a||b",
        "ACME",
        "acme\\",
        "",
        "a" * 64,
        "\u0430cme",
    ],  # last: a Cyrillic a
)
def test_a_hostile_tenant_never_reaches_a_filter(store: VectorStore, tenant: str) -> None:
    store.upsert([_row("doc", 1, 0, tenant="acme")])

    with pytest.raises(ConfigurationError, match="tenant"):
        store.search(tenant, _vector(0), 10)
    with pytest.raises(ConfigurationError, match="tenant"):
        store.delete_document(tenant, "doc")
    with pytest.raises(ConfigurationError, match="tenant"):
        store.count(tenant=tenant)
    assert store.count(tenant="acme") == 1


@pytest.mark.parametrize("document_id", NASTY_IDS)
def test_a_hostile_document_id_stays_within_its_tenant(
    store: VectorStore, document_id: str
) -> None:
    store.upsert([_row("doc", 1, 0, tenant="globex"), _row(document_id, 1, 0, tenant="acme")])

    assert store.delete_document("acme", document_id) == 1
    assert store.delete_document("acme", "doc") == 0
    assert store.count(tenant="globex") == 1
    assert store.search("acme", _vector(0), 10, document_ids=[document_id, "doc"]) == []


def _legacy_collection(path: str, name: str, rows: int) -> None:
    """A collection as ragline made it before tenancy (no tenant field), with `rows` chunks
    written the way that release wrote them."""
    client = MilvusClient(path)
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("pk", DataType.VARCHAR, max_length=64, is_primary=True)
    schema.add_field("document_id", DataType.VARCHAR, max_length=1024)
    schema.add_field("document_version", DataType.INT64)
    schema.add_field("chunk_index", DataType.INT64)
    schema.add_field("job_id", DataType.VARCHAR, max_length=64)
    schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT_BYTES)
    schema.add_field("metadata", DataType.JSON)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    index = MilvusClient.prepare_index_params()
    index.add_index(field_name="vector", index_type="AUTOINDEX", metric_type="COSINE")
    client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")
    client.insert(
        name,
        [
            {
                "pk": chunk_key(f"doc-{i % 7}", 1, i),
                "document_id": f"doc-{i % 7}",
                "document_version": 1,
                "chunk_index": i,
                "job_id": "job-1",
                "text": f"chunk {i}",
                "metadata": {"uploaded_by": "before"},
                "vector": _vector(i),
            }
            for i in range(rows)
        ],
    )
    client.close()
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(str(Path(path).resolve()))


def test_a_collection_made_before_tenancy_is_migrated_to_the_default_tenant(
    lite_path: str,
) -> None:
    name = _collection()
    Path(lite_path).parent.mkdir(parents=True, exist_ok=True)
    _legacy_collection(lite_path, name, 2345)  # more than one migration batch
    seen: list[tuple[int, int]] = []

    with VectorStore(lite_path, name, DIM) as store:
        with pytest.raises(LegacyCollection, match="ragline migrate-vectors"):
            store.ensure_collection()
        assert store.migrate_to_tenancy(lambda done, total: seen.append((done, total))) == 2345
        assert store.migrate_to_tenancy() == 0  # once only
        store.ensure_collection()

        assert seen[-1] == (2345, 2345)
        assert store.count(tenant="default") == 2345
        assert store.count(tenant=None) == 2345
        for d in range(7):
            assert store.count(f"doc-{d}", tenant="default") == len(range(d, 2345, 7))
        [hit] = store.search("default", _vector(12), 1)
        assert (hit.document_id, hit.chunk_index, hit.text) == ("doc-5", 12, "chunk 12")
        assert hit.metadata == {"uploaded_by": "before"}
        # Primary keys are kept: a re-ingest of the same version upserts over the old rows.
        store.upsert([_row("doc-5", 1, 12)])
        assert store.count("doc-5", tenant="default") == len(range(5, 2345, 7))
