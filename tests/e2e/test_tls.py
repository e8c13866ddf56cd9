"""TLS against a real stack: every service serves mutual TLS and the gateway dials the embedder and
indexer with its client certificate; a second gateway beside it serves TLS without client
certificates. Certificates are made for this module by tests/tls_certs.py."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest

from ragline.config import Settings
from ragline.tls import channel_credentials
from ragline_client import JobState, RaglineClient, UnavailableError
from tests.conftest import REDIS_URL
from tests.e2e.test_cli import LineReader
from tests.stack import TORCH_THREADS, Stack, clean_servers, free_port, serving
from tests.tls_certs import CertificateAuthority, Identity

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420), pytest.mark.xdist_group(__name__)]


@dataclass
class TlsStack:
    stack: Stack
    ca: CertificateAuthority
    other_ca: CertificateAuthority
    client: Identity  # signed by ca
    stranger: Identity  # signed by other_ca
    mtls_gateway: str  # requires a client certificate
    tls_gateway: str  # TLS only


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsStack]:
    certs = tmp_path_factory.mktemp("certs")
    ca = CertificateAuthority(certs / "ca")
    other_ca = CertificateAuthority(certs / "other", "another CA")
    server, gateway_identity = ca.server(), ca.client("gateway")
    stack = Stack(
        tmp_path_factory.mktemp("stack-tls"),
        REDIS_URL,
        broker="redis",
        tls_cert_file=str(server.cert),
        tls_key_file=str(server.key),
        tls_client_ca_file=str(ca.cert),
        tls_ca_file=str(ca.cert),
        tls_client_cert_file=str(gateway_identity.cert),
        tls_client_key_file=str(gateway_identity.key),
    )
    try:
        stack.start()
        # A second gateway on the same stages, TLS without client certificates.
        stack.addresses["gateway-tls"] = f"127.0.0.1:{free_port()}"
        env = {
            **stack.env,
            "RAGLINE_GATEWAY_ADDRESS": stack.addresses["gateway-tls"],
            "RAGLINE_TLS_CLIENT_CA_FILE": "",
        }
        stack.launch("gateway-tls", "gateway", env)
        stack.wait_serving(["gateway-tls"], 60)
    except Exception:
        stack.stop_all()
        raise
    yield TlsStack(
        stack,
        ca,
        other_ca,
        ca.client("alice"),
        other_ca.client("mallory"),
        stack.gateway,
        stack.addresses["gateway-tls"],
    )
    stack.stop_all()


def ragline(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAGLINE_TLS_")}
    return subprocess.run(
        [sys.executable, "-m", "ragline.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=240,
        env={**clean, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


def ingest_and_search(client: RaglineClient, text: str, query: str) -> None:
    """Ingest goes gateway → queues → stages; Search goes gateway → embedder → indexer."""
    document_id = f"tls-{uuid.uuid4().hex[:8]}"
    job = client.wait(client.ingest(text, document_id=document_id).job_id, timeout=180)
    assert job.state is JobState.COMPLETED, job
    hits = client.search(query, top_k=3, document_ids=[document_id])
    assert hits and hits[0].document_id == document_id


def test_services_log_what_they_serve(tls: TlsStack) -> None:
    assert "gateway serving on" in tls.stack.tail("gateway")
    assert f"{tls.mtls_gateway} (mutual TLS)" in tls.stack.tail("gateway", 200)
    assert f"{tls.tls_gateway} (TLS)" in tls.stack.tail("gateway-tls", 200)
    for stage in ("chunker", "embedder", "indexer"):
        assert "(mutual TLS)" in tls.stack.tail(stage, 200), stage


def test_a_plaintext_client_cannot_use_a_tls_port(tls: TlsStack) -> None:
    for address in (tls.tls_gateway, tls.mtls_gateway):
        with RaglineClient(address, timeout=20) as client, pytest.raises(UnavailableError) as e:
            client.get_job("any")
        assert "closed the connection" in str(e.value) and "--ca" in str(e.value)


def test_a_tls_client_with_the_right_ca_ingests_and_searches(tls: TlsStack) -> None:
    with RaglineClient(tls.tls_gateway, ca_file=tls.ca.cert, timeout=60) as client:
        ingest_and_search(
            client,
            "Lighthouse keepers trimmed the wicks every evening before the fog rolled in.",
            "who trimmed the lighthouse wicks?",
        )


def test_a_client_trusting_another_ca_is_refused(tls: TlsStack) -> None:
    with (
        RaglineClient(tls.tls_gateway, ca_file=tls.other_ca.cert, timeout=20) as client,
        pytest.raises(UnavailableError, match="not signed by the CA you gave"),
    ):
        client.get_job("any")


def test_mutual_tls_refuses_a_client_without_a_certificate(tls: TlsStack) -> None:
    with (
        RaglineClient(tls.mtls_gateway, ca_file=tls.ca.cert, timeout=20) as client,
        pytest.raises(UnavailableError, match="requires mutual TLS"),
    ):
        client.get_job("any")


def test_mutual_tls_refuses_a_certificate_from_another_ca(tls: TlsStack) -> None:
    with (
        RaglineClient(
            tls.mtls_gateway,
            ca_file=tls.ca.cert,
            cert_file=tls.stranger.cert,
            key_file=tls.stranger.key,
            timeout=20,
        ) as client,
        pytest.raises(UnavailableError, match="requires mutual TLS"),
    ):
        client.get_job("any")


def test_mutual_tls_with_the_right_certificate_ingests_and_searches(tls: TlsStack) -> None:
    with RaglineClient(
        tls.mtls_gateway,
        ca_file=tls.ca.cert,
        cert_file=tls.client.cert,
        key_file=tls.client.key,
        timeout=60,
    ) as client:
        ingest_and_search(
            client,
            "The orchard's oldest pear tree was grafted with three varieties in 1911.",
            "grafted pear tree varieties",
        )


def https_context(ca: CertificateAuthority, identity: Identity | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.cert))
    if identity is not None:
        context.load_cert_chain(str(identity.cert), str(identity.key))
    return context


def test_the_http_port_serves_https_with_the_same_certificate(tls: TlsStack) -> None:
    mtls = f"https://{tls.stack.http_address}"
    with_cert = httpx.get(f"{mtls}/v1/jobs/no-such-job", verify=https_context(tls.ca, tls.client))
    assert with_cert.status_code == 404 and with_cert.json()["error"]["status"] == "NOT_FOUND"
    # Mutual TLS there too: no client certificate, or one from another CA, and no answer.
    for identity in (None, tls.stranger):
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            httpx.get(f"{mtls}/healthz", verify=https_context(tls.ca, identity))

    only_tls = tls.stack.http_addresses["gateway-tls"]
    assert httpx.get(f"https://{only_tls}/healthz", verify=https_context(tls.ca)).json() == {
        "status": "SERVING"
    }
    with pytest.raises(httpx.ConnectError):  # a client trusting another CA
        httpx.get(f"https://{only_tls}/healthz", verify=https_context(tls.other_ca))
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):  # plaintext to a TLS port
        httpx.get(f"http://{only_tls}/healthz")


def test_the_stages_themselves_require_mutual_tls(tls: TlsStack) -> None:
    """The gateway's searches above reached the embedder and indexer with its certificate; here,
    anything without one is turned away from their ports."""
    no_cert = channel_credentials(Settings(tls_ca_file=str(tls.ca.cert)))
    with_cert = channel_credentials(
        Settings(
            tls_ca_file=str(tls.ca.cert),
            tls_client_cert_file=str(tls.client.cert),
            tls_client_key_file=str(tls.client.key),
        )
    )
    for stage in ("chunker", "embedder", "indexer"):
        address = tls.stack.addresses[stage]
        assert serving(address, with_cert), stage
        assert not serving(address), stage
        assert not serving(address, no_cert), stage
        assert not serving(address, grpc.ssl_channel_credentials(tls.other_ca.cert.read_bytes()))


def test_cli_connects_with_flags_or_the_variables(tls: TlsStack, tmp_path: Path) -> None:
    note = tmp_path / f"tls-cli-{uuid.uuid4().hex[:8]}.txt"
    note.write_text("Beekeepers in the valley smoke the hives gently before lifting the frames.\n")
    run = ragline("--gateway", tls.tls_gateway, "ingest", str(note), "--ca", str(tls.ca.cert))
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    assert "1 of 1 documents ingested" in run.stdout

    identity = [
        "--ca",
        str(tls.ca.cert),
        "--cert",
        str(tls.client.cert),
        "--key",
        str(tls.client.key),
    ]
    search = ["search", "smoking the hives", "--json", "--document-id", note.name]
    run = ragline("--gateway", tls.mtls_gateway, *search, *identity)
    assert run.returncode == 0, run.stderr
    assert note.name in run.stdout

    variables = {
        "RAGLINE_TLS_CA_FILE": str(tls.ca.cert),
        "RAGLINE_TLS_CLIENT_CERT_FILE": str(tls.client.cert),
        "RAGLINE_TLS_CLIENT_KEY_FILE": str(tls.client.key),
    }
    run = ragline("--gateway", tls.mtls_gateway, *search, env=variables)
    assert run.returncode == 0, run.stderr
    assert note.name in run.stdout


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        ((), "closed the connection"),
        (("--ca", "OTHER"), "not signed by the CA you gave"),
        (("--ca", "CA"), "requires mutual TLS"),
    ],
    ids=["plaintext", "another-ca", "no-client-certificate"],
)
def test_cli_handshake_failures_are_one_clear_line(
    tls: TlsStack, flags: tuple[str, ...], said: str
) -> None:
    files = {"CA": str(tls.ca.cert), "OTHER": str(tls.other_ca.cert)}
    args = [files.get(f, f) for f in flags]
    run = ragline("--gateway", tls.mtls_gateway, "document", "any", *args)
    assert run.returncode == 1
    assert run.stderr.startswith("ragline document: "), run.stderr
    assert said in run.stderr
    assert "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr  # gRPC's own lines stay quiet


# -- ragline up --------------------------------------------------------------------------------


def test_ragline_up_serves_a_whole_stack_over_mutual_tls(tmp_path: Path) -> None:
    """`up` hands one set of settings to every service and dials their health over TLS with it."""
    ca = CertificateAuthority(tmp_path / "ca")
    server, identity = ca.server(), ca.client("stack")
    namespace = f"test-{uuid.uuid4().hex[:10]}"
    addresses = {
        s: f"127.0.0.1:{free_port()}" for s in ("gateway", "chunker", "embedder", "indexer")
    }
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RAGLINE_TLS_")},
        "RAGLINE_REDIS_URL": REDIS_URL,
        "RAGLINE_NAMESPACE": namespace,
        "RAGLINE_MILVUS_URI": str(tmp_path / "milvus.db"),
        "RAGLINE_MILVUS_COLLECTION": "chunks_" + uuid.uuid4().hex[:8],
        **{f"RAGLINE_{s.upper()}_ADDRESS": a for s, a in addresses.items()},
        "RAGLINE_TORCH_THREADS": TORCH_THREADS,
        "RAGLINE_TLS_CERT_FILE": str(server.cert),
        "RAGLINE_TLS_KEY_FILE": str(server.key),
        "RAGLINE_TLS_CLIENT_CA_FILE": str(ca.cert),
        "RAGLINE_TLS_CA_FILE": str(ca.cert),
        "RAGLINE_TLS_CLIENT_CERT_FILE": str(identity.cert),
        "RAGLINE_TLS_CLIENT_KEY_FILE": str(identity.key),
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        "RAGLINE_HTTP_ADDRESS": (http_address := f"127.0.0.1:{free_port()}"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "ragline.cli.main", "up", "--no-redis-start"],
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
        ready = next(line for line in reader.lines if line.startswith("ragline: ready"))
        assert f"gateway at {addresses['gateway']} over mutual TLS" in ready
        assert f"ragline: HTTP/JSON API: https://{http_address} (docs/http.md)" in reader.lines
        health = httpx.get(f"https://{http_address}/healthz", verify=https_context(ca, identity))
        assert health.json() == {"status": "SERVING"}
        with RaglineClient(
            addresses["gateway"],
            ca_file=ca.cert,
            cert_file=identity.cert,
            key_file=identity.key,
            timeout=60,
        ) as client:
            ingest_and_search(
                client,
                "Cartographers drew sea monsters where the charts ran out of soundings.",
                "what did cartographers draw at the edge of charts?",
            )
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, reader.tail()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        reader.join()
        assert process.stdout is not None
        process.stdout.close()
        clean_servers(REDIS_URL, namespace, "redis")


def test_ragline_up_refuses_tls_settings_its_services_could_not_use(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "ca")
    server = ca.server()
    serving_only = {
        "RAGLINE_TLS_CERT_FILE": str(server.cert),
        "RAGLINE_TLS_KEY_FILE": str(server.key),
    }
    run = ragline("up", "--no-redis-start", env=serving_only)
    assert run.returncode == 1
    assert "set RAGLINE_TLS_CA_FILE" in run.stdout, run.stdout + run.stderr
    mutual = {
        **serving_only,
        "RAGLINE_TLS_CLIENT_CA_FILE": str(ca.cert),
        "RAGLINE_TLS_CA_FILE": str(ca.cert),
    }
    run = ragline("up", "--no-redis-start", env=mutual)
    assert run.returncode == 1
    assert "set RAGLINE_TLS_CLIENT_CERT_FILE" in run.stdout, run.stdout + run.stderr


def test_a_gateway_that_does_not_trust_the_stages_says_which_setting_to_check(
    tls: TlsStack,
) -> None:
    name = "gateway-wrong-ca"
    tls.stack.addresses[name] = f"127.0.0.1:{free_port()}"
    env = {
        **tls.stack.env,
        "RAGLINE_GATEWAY_ADDRESS": tls.stack.addresses[name],
        "RAGLINE_TLS_CLIENT_CA_FILE": "",
        "RAGLINE_TLS_CA_FILE": str(tls.other_ca.cert),
        "RAGLINE_TLS_CLIENT_CERT_FILE": "",
        "RAGLINE_TLS_CLIENT_KEY_FILE": "",
    }
    tls.stack.launch(name, "gateway", env)
    try:
        # Its own port is TLS with the stack's certificate: the harness dials it with that CA.
        deadline_s = 60
        credentials = grpc.ssl_channel_credentials(tls.ca.cert.read_bytes())
        for _ in range(deadline_s * 5):
            if serving(tls.stack.addresses[name], credentials):
                break
            time.sleep(0.2)
        with (
            RaglineClient(tls.stack.addresses[name], ca_file=tls.ca.cert, timeout=30) as client,
            pytest.raises(UnavailableError) as e,
        ):
            client.search("anything")
        said = str(e.value)
        assert "the embedder at" in said and "RAGLINE_TLS_CA_FILE" in said, said
        assert "the CA you gave" not in said, said  # not the client's CA that is wrong
    finally:
        tls.stack.stop(name)


@pytest.mark.parametrize("service", ["gateway", "embedder"])
def test_a_service_given_a_missing_certificate_stops_at_once_saying_which(
    service: str, tmp_path: Path
) -> None:
    missing = tmp_path / "server.pem"
    key = CertificateAuthority(tmp_path / "ca").server().key
    run = subprocess.run(
        [sys.executable, "-m", "ragline.cli.main", "serve", service],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("RAGLINE_")},
            "RAGLINE_REDIS_URL": REDIS_URL,
            "RAGLINE_LISTEN_ADDRESS": f"127.0.0.1:{free_port()}",
            "RAGLINE_TLS_CERT_FILE": str(missing),
            "RAGLINE_TLS_KEY_FILE": str(key),
        },
    )
    out = run.stdout + run.stderr
    assert run.returncode == 2, out
    assert f"{service} cannot start: RAGLINE_TLS_CERT_FILE names {missing}" in out, out
    assert "Traceback" not in out
    assert "BEGIN" not in out  # no key material in the log
