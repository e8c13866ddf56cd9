"""Tenant isolation on the whole stack, on each broker: two tenants' keys, the same document ids,
and every way one tenant might reach the other's jobs, documents, chunks or dead letters."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragline_client import Document, JobState, NotFoundError, RaglineClient
from tests.conftest import REDIS_URL
from tests.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group(__name__)]

# Ids that try to break out of a Redis key, a queue message or a Milvus filter expression.
HOSTILE_IDS = [
    'quote"inside',
    "single'quote",
    "back\\slash\\",
    'x" || document_id != "',
    "' or 1=1 --",
    "a||b",
    "t:globex:doc:x",  # the shape of another tenant's Redis key
    "\u0430cme-handbook",  # a Cyrillic a
    "\uff48andbook.pdf",  # a fullwidth h
    "d" * 512,  # the longest id the API takes, in bytes
]
A_TEXT = "The lighthouse keeper logs every passing ship in a brass-bound ledger."
B_TEXT = "Quarterly revenue from the orchard grew on strong cider apple sales."


def create_key(path: Path, tenant: str, scopes: str) -> str:
    return subprocess.run(
        [
            *(sys.executable, "-m", "ragline.cli.main", "keys", "create"),
            *("--file", str(path), "--tenant", tenant, "--scopes", scopes),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()


@pytest.fixture(scope="module", params=["redis", "rabbitmq"])
def tenants(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, RaglineClient]]:
    """A stack with keys on, and a client for tenant a, tenant b and an operator."""
    keys_file = tmp_path_factory.mktemp("keys") / "keys.toml"
    keys = {
        "a": create_key(keys_file, "acme", "ingest,read,admin"),
        "b": create_key(keys_file, "globex", "ingest,read,admin"),
        "operator": create_key(keys_file, "ops", "operator"),
    }
    stack = Stack(
        tmp_path_factory.mktemp(f"tenants-{request.param}"),
        REDIS_URL,
        broker=request.param,
        keys_file=str(keys_file),
    )
    try:
        stack.start()
        clients = {
            name: RaglineClient(stack.gateway, api_key=key, timeout=60)
            for name, key in keys.items()
        }
        yield clients
        for client in clients.values():
            client.close()
    finally:
        stack.stop_all()


def _done(client: RaglineClient, job_id: str) -> None:
    job = client.wait(job_id, timeout=120)
    assert job.state == JobState.COMPLETED, job.last_error


def test_same_document_id_two_tenants_never_meet(tenants: dict[str, RaglineClient]) -> None:
    a, b = tenants["a"], tenants["b"]
    a_job = a.ingest(A_TEXT, document_id="handbook.pdf", request_id="same-request")
    b_job = b.ingest(B_TEXT, document_id="handbook.pdf", request_id="same-request")
    assert a_job.job_id != b_job.job_id  # one request id, two tenants, two jobs
    _done(a, a_job.job_id)
    _done(b, b_job.job_id)

    # A asks with B's text verbatim, and finds only its own chunks.
    hits = a.search(B_TEXT, top_k=50)
    assert hits and {h.text for h in hits} == {A_TEXT}
    hits = b.search(A_TEXT, top_k=50, document_ids=["handbook.pdf"])
    assert hits and {h.text for h in hits} == {B_TEXT}
    # Each has its own first version of the same id.
    assert a.get_document("handbook.pdf").live_version == 1
    assert b.get_document("handbook.pdf").live_version == 1


def test_a_tenant_cannot_reach_anothers_jobs_or_documents(
    tenants: dict[str, RaglineClient],
) -> None:
    a, b = tenants["a"], tenants["b"]
    doc = f"b-only-{uuid.uuid4().hex[:8]}.md"
    job = b.ingest(B_TEXT, document_id=doc)
    _done(b, job.job_id)

    # Each answers exactly as for a job or document that does not exist.
    for call in (
        lambda: a.get_job(job.job_id),
        lambda: a.wait(job.job_id, timeout=10),
        lambda: a.cancel(job.job_id),
        lambda: a.get_document(doc),
        lambda: a.delete(doc),
    ):
        with pytest.raises(NotFoundError) as caught:
            call()
        assert "globex" not in str(caught.value)
    with pytest.raises(NotFoundError) as missing:
        a.get_job("no-such-job")
    with pytest.raises(NotFoundError) as foreign:
        a.get_job(job.job_id)
    assert str(foreign.value).replace(job.job_id, "ID") == str(missing.value).replace(
        "no-such-job", "ID"
    )
    assert a.search(B_TEXT, top_k=10, document_ids=[doc]) == []

    # B's job and document are untouched.
    assert b.get_job(job.job_id).state == JobState.COMPLETED
    assert b.get_document(doc).chunk_count == 1
    assert [h.document_id for h in b.search(B_TEXT, top_k=10, document_ids=[doc])] == [doc]


def test_hostile_ids_stay_within_their_tenant(tenants: dict[str, RaglineClient]) -> None:
    a, b = tenants["a"], tenants["b"]
    run = uuid.uuid4().hex[:6]
    jobs = b.ingest_batch([Document(f"{B_TEXT} {run}", document_id=d) for d in HOSTILE_IDS])
    a_job = a.ingest(f"{A_TEXT} {run}", document_id=f"plain-{run}")
    for job in jobs:
        _done(b, job.job_id)
    _done(a, a_job.job_id)

    for document_id in HOSTILE_IDS:
        with pytest.raises(NotFoundError):
            a.get_document(document_id)
        with pytest.raises(NotFoundError):
            a.delete(document_id)
        assert b.get_document(document_id).chunk_count == 1
    assert a.search(f"{B_TEXT} {run}", top_k=50, document_ids=HOSTILE_IDS) == []
    found = {h.document_id for h in b.search(f"{B_TEXT} {run}", top_k=50, document_ids=HOSTILE_IDS)}
    assert found == set(HOSTILE_IDS)
    # B deleting its own hostile ids removes exactly those, never A's document.
    for document_id in HOSTILE_IDS:
        assert b.delete(document_id) == 1
    assert a.get_document(f"plain-{run}").chunk_count == 1


def test_an_admin_sees_only_its_own_dead_letters_and_the_operator_all(
    tenants: dict[str, RaglineClient],
) -> None:
    a, b, operator = tenants["a"], tenants["b"], tenants["operator"]
    run = uuid.uuid4().hex[:6]
    corrupt = b"%PDF-1.7\nthis is not really a pdf"
    a_job = a.ingest(corrupt, document_id=f"a-broken-{run}.pdf", content_type="application/pdf")
    b_job = b.ingest(corrupt, document_id=f"b-broken-{run}.pdf", content_type="application/pdf")
    for client, job in ((a, a_job), (b, b_job)):
        assert client.wait(job.job_id, timeout=120).state == JobState.FAILED

    def letters(client: RaglineClient) -> set[str]:
        return {d.job_id for d in client.iter_dead_letters("chunk")}

    assert a_job.job_id in letters(a) and b_job.job_id not in letters(a)
    assert b_job.job_id in letters(b) and a_job.job_id not in letters(b)
    assert {a_job.job_id, b_job.job_id} <= letters(operator)

    # A's requeue and purge of everything touch only A's letters.
    b_ids = [d.dead_letter_id for d in b.iter_dead_letters("chunk") if d.job_id == b_job.job_id]
    assert a.requeue_dead_letters("chunk", b_ids) == 0
    assert a.purge_dead_letters("chunk", b_ids) == 0
    assert a.purge_dead_letters("chunk") >= 1
    assert a_job.job_id not in letters(a)
    assert b_job.job_id in letters(b)
    assert b.purge_dead_letters("chunk", b_ids) == 1
