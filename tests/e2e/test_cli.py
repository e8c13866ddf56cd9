"""The real `ragline` command line as a subprocess: ingest a folder, search, show a job, refuse a
missing path; and `ragline up` starting and stopping a whole stack of its own."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
import uuid
from pathlib import Path

import pytest

from ragline_client import JobState, RaglineClient
from tests.conftest import REDIS_URL
from tests.corpus import mixed_corpus
from tests.stack import TORCH_THREADS, Stack, clean_servers, free_port, free_port_run, serving

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

# One document of each type: plain text, Markdown, HTML and PDF.
PICKS = (0, 6, 12, 16)


def ragline(stack: Stack, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ragline.cli.main", "--gateway", stack.gateway, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_ingest_a_folder_then_search_and_show_a_job(stack: Stack, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    folder = tmp_path / "docs"
    corpus = mixed_corpus()
    expected: dict[str, str] = {}  # query -> document id
    for n, i in enumerate(PICKS):
        doc = corpus[i]
        relative = f"{suffix}-{doc.filename}" if n % 2 == 0 else f"sub/{suffix}-{doc.filename}"
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(doc.content)
        expected[doc.query] = relative
    (folder / ".hidden.txt").write_text("never ingested")
    (folder / "notes.docx").write_bytes(b"unsupported, skipped")

    run = ragline(stack, "ingest", str(folder))
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n{stack.logs()}"
    assert "4/4 jobs finished" in run.stdout, run.stdout
    assert "4 of 4 documents ingested" in run.stdout, run.stdout

    ids = sorted(expected.values())
    with RaglineClient(stack.gateway, timeout=60) as client:
        for doc_id in ids:
            info = client.get_document(doc_id)  # the ids are the paths relative to the folder
            assert info.live_version == 1
            assert info.chunk_count > 0

    filters = [arg for doc_id in ids for arg in ("--document-id", doc_id)]
    for query, doc_id in expected.items():
        run = ragline(stack, "search", query, "--json", "--top-k", "3", *filters, timeout=60)
        assert run.returncode == 0, run.stderr
        hits = json.loads(run.stdout)
        assert isinstance(hits, list)
        assert 1 <= len(hits) <= 3
        assert hits[0]["document_id"] == doc_id, (query, hits)
        for hit in hits:
            assert {"document_id", "chunk_index", "score", "text", "metadata"} <= set(hit)
            assert hit["document_id"] in ids
            assert isinstance(hit["chunk_index"], int)
            assert isinstance(hit["score"], float)
            assert hit["text"].strip()
            assert isinstance(hit["metadata"], dict)
        assert hits[0]["metadata"]["original_filename"] == Path(doc_id).name
        scores = [h["score"] for h in hits]
        assert scores == sorted(scores, reverse=True)

    # One more file, ingested with --json to learn its job id, then shown by `ragline job`.
    extra = tmp_path / f"extra-{suffix}.txt"
    extra.write_text("A short note about tide pools, anemones and hermit crabs.\n")
    run = ragline(stack, "ingest", "--json", str(extra))
    assert run.returncode == 0, run.stderr
    (job,) = json.loads(run.stdout)
    assert job["document_id"] == extra.name
    assert job["state"] == "completed"

    run = ragline(stack, "job", job["job_id"], timeout=60)
    assert run.returncode == 0, run.stderr
    lines = dict(line.split(None, 1) for line in run.stdout.splitlines() if line.strip())
    assert lines["job"] == job["job_id"]
    assert lines["state"] == "completed"
    assert lines["document"].startswith(extra.name)

    run = ragline(stack, "job", job["job_id"], "--json", timeout=60)
    assert run.returncode == 0, run.stderr
    shown = json.loads(run.stdout)
    assert (shown["job_id"], shown["state"]) == (job["job_id"], "completed")
    assert shown["progress"]["chunks_indexed"] == shown["progress"]["chunks_total"] > 0


def test_ingest_of_a_missing_path_is_a_usage_error(stack: Stack, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    run = ragline(stack, "ingest", str(missing), timeout=60)
    assert run.returncode == 2
    assert run.stdout == ""
    assert "ragline ingest: error:" in run.stderr
    assert str(missing) in run.stderr
    assert "no such file or folder" in run.stderr
    assert "Traceback" not in run.stderr


def test_job_of_an_unknown_id_fails_cleanly(stack: Stack) -> None:
    run = ragline(stack, "job", uuid.uuid4().hex, timeout=60)
    assert run.returncode == 1
    assert "does not exist" in run.stderr
    assert "Traceback" not in run.stderr


# -- ragline up --------------------------------------------------------------------------------


def port_open(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


class LineReader:
    """Drains a process's stdout in a thread (the stack's children write there too, and a full
    pipe would block them), remembering every line."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("ragline: ready"):
                self.ready.set()

    def join(self) -> None:
        self._thread.join(10)

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.lines[-n:])


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_ragline_up_serves_then_stops_cleanly_on_sigterm(tmp_path: Path, broker: str) -> None:
    namespace = f"test-{uuid.uuid4().hex[:10]}"
    addresses = {
        s: f"127.0.0.1:{free_port()}" for s in ("gateway", "chunker", "embedder", "indexer")
    }
    env = {
        **os.environ,
        "RAGLINE_REDIS_URL": REDIS_URL,
        "RAGLINE_NAMESPACE": namespace,
        "RAGLINE_MILVUS_URI": str(tmp_path / "milvus.db"),
        "RAGLINE_MILVUS_COLLECTION": "chunks_" + uuid.uuid4().hex[:8],
        "RAGLINE_GATEWAY_ADDRESS": addresses["gateway"],
        "RAGLINE_CHUNKER_ADDRESS": addresses["chunker"],
        "RAGLINE_EMBEDDER_ADDRESS": addresses["embedder"],
        "RAGLINE_INDEXER_ADDRESS": addresses["indexer"],
        "RAGLINE_TORCH_THREADS": TORCH_THREADS,
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        # Metrics on: the gateway on this port, the chunker, embedder and indexer on the next three.
        "RAGLINE_METRICS_ADDRESS": f"127.0.0.1:{(metrics_port := free_port_run(4))}",
        # HTTP on a free port (unset, `up` would take the port after the indexer's).
        "RAGLINE_HTTP_ADDRESS": (http_address := f"127.0.0.1:{free_port()}"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "ragline.cli.main", "up", "--no-redis-start", "--broker", broker],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    reader = LineReader(process)
    try:
        assert reader.ready.wait(180), f"no 'ready' line within 180 s:\n{reader.tail()}"
        ready_line = next(line for line in reader.lines if line.startswith("ragline: ready"))
        assert addresses["gateway"] in ready_line
        assert f"broker {broker}" in ready_line
        for stage, address in addresses.items():
            assert serving(address), stage
        (metrics_line,) = [line for line in reader.lines if line.startswith("ragline: metrics:")]
        for offset, stage in enumerate(("gateway", "chunker", "embedder", "indexer")):
            url = f"http://127.0.0.1:{metrics_port + offset}/metrics"
            assert f"{stage} {url}" in metrics_line
            with urllib.request.urlopen(url, timeout=10) as reply:
                page = reply.read().decode()
            wanted = "ragline_grpc_server_handled" if stage == "gateway" else "ragline_tasks_total"
            assert f"# TYPE {wanted}" in page, (stage, page[:300])

        assert f"ragline: HTTP/JSON API: http://{http_address} (docs/http.md)" in reader.lines
        with urllib.request.urlopen(f"http://{http_address}/healthz", timeout=10) as reply:
            assert json.loads(reply.read()) == {"status": "SERVING"}

        with RaglineClient(addresses["gateway"], timeout=60) as client:
            job = client.ingest(
                "Glassblowers gather molten glass on a blowpipe and shape it while turning.",
                document_id="glass",
            )
            final = client.wait(job.job_id, timeout=120)
            assert final.state is JobState.COMPLETED, f"{final}\n{reader.tail()}"
            (hit,) = client.search("how is molten glass shaped", top_k=1)
            assert hit.document_id == "glass"

        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, reader.tail()
        reader.join()
        assert reader.lines[-1] == "ragline: stopped", reader.tail()
        for stage, address in addresses.items():
            assert not port_open(address), f"the {stage} still answers at {address}"
        assert not port_open(http_address), (
            f"the gateway's HTTP port still answers at {http_address}"
        )
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        reader.join()
        assert process.stdout is not None
        process.stdout.close()
        clean_servers(REDIS_URL, namespace, broker)
