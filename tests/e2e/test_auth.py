"""API keys on the whole stack (each service its own process, real Redis, Milvus Lite and model):
the full auth matrix for every IngestService RPC, the keys file reloading without a restart, the
client and the CLI with a key, and the gateway's start with auth off or a missing keys file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from ragline.http.errors import HTTP_STATUS
from ragline.http.routes import ROUTES, Route
from ragline_client import (
    NotFoundError,
    PermissionDeniedError,
    RaglineClient,
    UnauthenticatedError,
)
from ragline_client.v1 import ingest_service_pb2 as pb
from ragline_client.v1 import job_pb2
from tests.conftest import REDIS_URL
from tests.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group(__name__)]

SERVICE = pb.DESCRIPTOR.services_by_name["IngestService"]
OK = grpc.StatusCode.OK
# A dummy request per RPC and the exact status a key with the right scope gets for it.
DUMMY: dict[str, tuple[Any, grpc.StatusCode]] = {
    "Ingest": (pb.IngestRequest(), grpc.StatusCode.INVALID_ARGUMENT),
    "IngestBatch": (pb.IngestBatchRequest(), grpc.StatusCode.INVALID_ARGUMENT),
    "CancelJob": (pb.CancelJobRequest(job_id="no-such-job"), grpc.StatusCode.NOT_FOUND),
    "DeleteDocument": (
        pb.DeleteDocumentRequest(document_id="no-such-document"),
        grpc.StatusCode.NOT_FOUND,
    ),
    "GetJob": (pb.GetJobRequest(job_id="no-such-job"), grpc.StatusCode.NOT_FOUND),
    "WatchJob": (pb.WatchJobRequest(job_id="no-such-job"), grpc.StatusCode.NOT_FOUND),
    "Search": (pb.SearchRequest(query=""), grpc.StatusCode.INVALID_ARGUMENT),
    "GetDocument": (pb.GetDocumentRequest(document_id="no-such-doc"), grpc.StatusCode.NOT_FOUND),
    "ListDeadLetters": (pb.ListDeadLettersRequest(stage=job_pb2.STAGE_CHUNK), OK),
    "RequeueDeadLetters": (pb.RequeueDeadLettersRequest(), grpc.StatusCode.INVALID_ARGUMENT),
    "PurgeDeadLetters": (pb.PurgeDeadLettersRequest(), grpc.StatusCode.INVALID_ARGUMENT),
}
# The scope each RPC needs, as the issue gives it (the server's table is checked against this).
NEEDS = {
    **dict.fromkeys(["Ingest", "IngestBatch", "CancelJob", "DeleteDocument"], "ingest"),
    **dict.fromkeys(["GetJob", "WatchJob", "Search", "GetDocument"], "read"),
    **dict.fromkeys(["ListDeadLetters", "RequeueDeadLetters", "PurgeDeadLetters"], "admin"),
}
# A key of the same tenant that lacks the scope.
LACKING = {"ingest": "read", "read": "ingest", "admin": "ingest_read"}
KEYS = {
    "ingest": ("acme", "ingest"),
    "read": ("acme", "read"),
    "admin": ("acme", "admin"),
    "ingest_read": ("acme", "ingest,read"),
    "operator": ("ops", "operator"),
}
RELOAD_S = 1.0
# How long a change to the keys file may take to apply: a reload interval, plus room for a busy
# machine.
APPLIES_WITHIN_S = 5.0


def keys_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ragline.cli.main", "keys", *argv],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )


def create_key(path: Path, tenant: str, scopes: str) -> str:
    return keys_cli(
        "create", "--file", str(path), "--tenant", tenant, "--scopes", scopes
    ).stdout.strip()


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys") / "keys.toml"


@pytest.fixture(scope="module")
def keys(keys_file: Path) -> dict[str, str]:
    return {name: create_key(keys_file, *spec) for name, spec in KEYS.items()}


@pytest.fixture(scope="module")
def auth_stack(
    tmp_path_factory: pytest.TempPathFactory, keys_file: Path, keys: dict[str, str]
) -> Iterator[Stack]:
    s = Stack(
        tmp_path_factory.mktemp("auth-stack"),
        REDIS_URL,
        broker="redis",
        keys_file=str(keys_file),
        keys_reload_s=str(RELOAD_S),
    )
    try:
        s.start()  # waits for SERVING: the health service answers without a key
    except Exception:
        s.stop_all()
        raise
    yield s
    s.stop_all()


@pytest.fixture(scope="module")
def channel(auth_stack: Stack) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(auth_stack.gateway) as ch:
        yield ch


def call(
    channel: grpc.Channel, rpc: str, metadata: tuple[tuple[str, str], ...]
) -> grpc.RpcError | None:
    """Calls `rpc` with its dummy request; the error it failed with, or None."""
    method = SERVICE.methods_by_name[rpc]
    request, _ = DUMMY[rpc]
    response_type = getattr(pb, method.output_type.name)
    path = f"/{SERVICE.full_name}/{rpc}"
    try:
        if method.server_streaming:
            stream = channel.unary_stream(
                path,
                request_serializer=type(request).SerializeToString,
                response_deserializer=response_type.FromString,
            )(request, metadata=metadata, timeout=30)
            for _ in stream:
                pass
        else:
            channel.unary_unary(
                path,
                request_serializer=type(request).SerializeToString,
                response_deserializer=response_type.FromString,
            )(request, metadata=metadata, timeout=60)
    except grpc.RpcError as exc:
        return exc
    return None


def code_of(error: grpc.RpcError | None) -> grpc.StatusCode:
    return OK if error is None else error.code()  # type: ignore[no-any-return, attr-defined]


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


def test_the_matrix_covers_every_rpc() -> None:
    assert set(DUMMY) == set(NEEDS) == set(SERVICE.methods_by_name)


@pytest.mark.parametrize("rpc", sorted(DUMMY))
def test_auth_matrix(channel: grpc.Channel, keys: dict[str, str], rpc: str) -> None:
    needed = NEEDS[rpc]
    right = keys[needed]
    unknown_key = "rl_0123456789ab_" + "A" * 43
    wrong_secret = right[:16] + "B" * (len(right) - 16)
    cases: list[tuple[str, tuple[tuple[str, str], ...], grpc.StatusCode, str]] = [
        ("no key", (), grpc.StatusCode.UNAUTHENTICATED, "carries no API key"),
        (
            "not bearer",
            (("authorization", f"Basic {right}"),),
            grpc.StatusCode.UNAUTHENTICATED,
            "not a bearer token",
        ),
        ("malformed", bearer("not-a-ragline-key"), grpc.StatusCode.UNAUTHENTICATED, "malformed"),
        ("unknown key", bearer(unknown_key), grpc.StatusCode.UNAUTHENTICATED, "unknown or revoked"),
        (
            "wrong secret",
            bearer(wrong_secret),
            grpc.StatusCode.UNAUTHENTICATED,
            "unknown or revoked",
        ),
        (
            "no scope",
            bearer(keys[LACKING[needed]]),
            grpc.StatusCode.PERMISSION_DENIED,
            f"needs the `{needed}` scope",
        ),
    ]
    for name, metadata, code, words in cases:
        error = call(channel, rpc, metadata)
        assert code_of(error) == code, f"{rpc} with {name}"
        assert error is not None and words in error.details(), f"{rpc} with {name}"  # type: ignore[attr-defined]
        assert right[16:] not in error.details()  # type: ignore[attr-defined]
    _, expected = DUMMY[rpc]
    assert code_of(call(channel, rpc, bearer(right))) == expected, f"{rpc} with the right key"
    if needed == "admin":
        assert code_of(call(channel, rpc, bearer(keys["operator"]))) == expected, "operator"
    else:
        denied = call(channel, rpc, bearer(keys["operator"]))
        assert code_of(denied) == grpc.StatusCode.PERMISSION_DENIED, "operator is not every scope"


# The same dummy requests over HTTP: the body (or query) of each route, its path's ids unknown.
HTTP_BODIES: dict[str, dict[str, Any]] = {
    "Ingest": {},
    "IngestBatch": {},
    "Search": {"query": ""},
    "RequeueDeadLetters": {},
    "PurgeDeadLetters": {},
}
HTTP_QUERIES = {"ListDeadLetters": {"stage": "STAGE_CHUNK"}}
PATH_IDS = {"jobId": "no-such-job", "documentId": "no-such-document"}


def http_call(url: str, route: Route, authorization: str | None) -> httpx.Response:
    path = route.path
    for name in route.path_fields:
        path = path.replace(f"{{{name}}}", PATH_IDS[name])
    headers = {"authorization": authorization} if authorization else {}
    return httpx.request(
        route.method,
        url + path,
        headers=headers,
        json=HTTP_BODIES.get(route.rpc),
        params=HTTP_QUERIES.get(route.rpc),
        timeout=60,
    )


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.rpc)
def test_http_auth_matrix(auth_stack: Stack, keys: dict[str, str], route: Route) -> None:
    """HTTP admits calls as gRPC does: the same keys, the same scope table, the same words."""
    needed = NEEDS[route.rpc]
    right = keys[needed]
    cases = [
        ("no key", None, 401, "UNAUTHENTICATED", "carries no API key"),
        ("malformed", "Bearer not-a-ragline-key", 401, "UNAUTHENTICATED", "malformed"),
        (
            "no scope",
            f"Bearer {keys[LACKING[needed]]}",
            403,
            "PERMISSION_DENIED",
            f"needs the `{needed}` scope",
        ),
    ]
    for name, authorization, status, code, words in cases:
        reply = http_call(auth_stack.http_url, route, authorization)
        assert reply.status_code == status, f"{route.rpc} with {name}: {reply.text}"
        error = reply.json()["error"]
        assert error["status"] == code and words in error["message"], f"{route.rpc} with {name}"
        assert right[16:] not in reply.text
    _, expected = DUMMY[route.rpc]
    reply = http_call(auth_stack.http_url, route, f"Bearer {right}")
    assert reply.status_code == HTTP_STATUS[expected], (
        f"{route.rpc} with the right key: {reply.text}"
    )


def test_http_health_and_openapi_answer_without_a_key_and_refusals_log_no_key(
    auth_stack: Stack, keys: dict[str, str]
) -> None:
    assert httpx.get(auth_stack.http_url + "/healthz").json() == {"status": "SERVING"}
    assert httpx.get(auth_stack.http_url + "/openapi.json").status_code == 200
    wrong = keys["read"][:16] + "E" * 43
    (get_job,) = [r for r in ROUTES if r.rpc == "GetJob"]
    assert http_call(auth_stack.http_url, get_job, f"Bearer {wrong}").status_code == 401
    log = auth_stack.log_path("gateway").read_text()
    assert "refused GET /v1/jobs/{jobId}" in log
    assert "E" * 43 not in log and all(key[16:] not in log for key in keys.values())


def test_health_and_reflection_answer_without_a_key(channel: grpc.Channel) -> None:
    # Probes and grpcurl's discovery come before any key; neither reveals any tenant's data.
    services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert {"ragline.v1.IngestService", "grpc.health.v1.Health"} <= services
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_refusals_are_logged_without_the_keys(
    auth_stack: Stack, channel: grpc.Channel, keys: dict[str, str]
) -> None:
    call(channel, "GetJob", bearer(keys["read"][:16] + "C" * 43))
    call(channel, "ListDeadLetters", bearer(keys["read"]))
    log = auth_stack.log_path("gateway").read_text()
    assert "refused /ragline.v1.IngestService/GetJob" in log
    assert "PERMISSION_DENIED: ListDeadLetters needs the `admin` scope" in log
    for key in keys.values():
        assert key[16:] not in log
    assert "C" * 43 not in log


def wait_until(check: Callable[[], bool], within_s: float) -> float:
    """Seconds until `check()` held; fails after `within_s`."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < within_s, f"not within {within_s}s"
        time.sleep(0.1)
    return time.monotonic() - start


def test_keys_file_reload_revokes_and_adds_keys_without_a_restart(
    auth_stack: Stack, channel: grpc.Channel, keys_file: Path
) -> None:
    pid = auth_stack.processes["gateway"].pid
    new = create_key(keys_file, "initech", "read")
    wait_until(
        lambda: code_of(call(channel, "GetJob", bearer(new))) == grpc.StatusCode.NOT_FOUND,
        APPLIES_WITHIN_S,
    )

    keys_cli("revoke", new[3:15], "--file", str(keys_file))
    wait_until(
        lambda: code_of(call(channel, "GetJob", bearer(new))) == grpc.StatusCode.UNAUTHENTICATED,
        APPLIES_WITHIN_S,
    )
    error = call(channel, "GetJob", bearer(new))
    assert error is not None and f"API key {new[3:15]} is unknown or revoked" in error.details()  # type: ignore[attr-defined]
    assert (
        auth_stack.processes["gateway"].pid == pid
        and auth_stack.processes["gateway"].poll() is None
    )


def test_a_broken_keys_file_keeps_the_last_good_keys(
    auth_stack: Stack, channel: grpc.Channel, keys_file: Path, keys: dict[str, str]
) -> None:
    good = keys_file.read_text()
    try:
        keys_file.write_text(good.replace('tenant = "acme"', 'tenant = "Acme Corp"', 1))
        log = auth_stack.log_path("gateway")
        wait_until(lambda: "is not a valid tenant id" in log.read_text(), APPLIES_WITHIN_S)
        assert "ERROR" in next(
            line for line in log.read_text().splitlines() if "is not a valid tenant id" in line
        )
        assert code_of(call(channel, "GetJob", bearer(keys["read"]))) == grpc.StatusCode.NOT_FOUND
    finally:
        keys_file.write_text(good)
    later = create_key(keys_file, "globex", "read")
    wait_until(
        lambda: code_of(call(channel, "GetJob", bearer(later))) == grpc.StatusCode.NOT_FOUND,
        APPLIES_WITHIN_S,
    )


def test_the_python_client_sends_its_key_on_unary_calls_and_streams(
    auth_stack: Stack, keys: dict[str, str]
) -> None:
    with RaglineClient(auth_stack.gateway, api_key=keys["ingest_read"], timeout=60) as client:
        job = client.ingest("Keys are checked on every call.", document_id="auth-doc")
        done = client.wait(job.job_id, timeout=120)  # WatchJob: a stream
        assert done.state.value == "completed", done
        assert any(h.document_id == "auth-doc" for h in client.search("keys checked"))
    with RaglineClient(auth_stack.gateway, api_key=keys["read"]) as client:
        with pytest.raises(NotFoundError):
            client.get_job("no-such-job")
        with pytest.raises(PermissionDeniedError) as denied:
            client.ingest("x", document_id="nope")
        assert "--scopes ingest" in str(denied.value)
    wrong = keys["read"][:16] + "D" * 43
    with RaglineClient(auth_stack.gateway, api_key=wrong) as client:
        assert wrong not in repr(client)
        with pytest.raises(UnauthenticatedError) as refused:
            list(client.watch(job.job_id, timeout=30))
        assert "D" * 43 not in str(refused.value) and "D" * 43 not in repr(refused.value)
    with RaglineClient(auth_stack.gateway) as client, pytest.raises(UnauthenticatedError) as none:
        client.get_job(job.job_id)
    assert "authorization: Bearer <key>" in str(none.value)


def test_the_cli_takes_the_key_from_the_environment_or_the_flag(
    auth_stack: Stack, keys: dict[str, str]
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RAGLINE_API_KEY"}
    base = [sys.executable, "-m", "ragline.cli.main", "--gateway", auth_stack.gateway]

    def run(*argv: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
        extra = {"RAGLINE_API_KEY": key} if key else {}
        return subprocess.run(
            [*base, *argv], env={**env, **extra}, capture_output=True, text=True, timeout=60
        )

    found = run("document", "no-such-doc", key=keys["read"])
    assert found.returncode == 1 and "never ingested" in found.stderr, found.stderr
    bare = run("document", "no-such-doc")
    assert bare.returncode == 1 and "authorization: Bearer <key>" in bare.stderr
    flag = run("dlq", "list", "chunk", "--api-key", keys["admin"])
    assert flag.returncode == 0, flag.stderr
    denied = run("dlq", "list", "chunk", "--api-key", keys["read"])
    assert denied.returncode == 1 and "--scopes admin" in denied.stderr
    assert keys["read"] not in denied.stderr + denied.stdout


def test_a_gateway_with_a_missing_keys_file_refuses_to_start(tmp_path: Path) -> None:
    s = Stack(tmp_path, REDIS_URL, keys_file=str(tmp_path / "absent.toml"))
    s.launch("gateway", "gateway", s.env)
    code = s.processes["gateway"].wait(120)
    s.processes.pop("gateway")
    assert code != 0
    log = s.log_path("gateway").read_text()
    assert "absent.toml does not exist: create it with `ragline keys create" in log


def test_a_gateway_without_a_keys_file_warns_that_auth_is_off(tmp_path: Path) -> None:
    s = Stack(tmp_path, REDIS_URL)
    s.env.pop("RAGLINE_KEYS_FILE", None)
    try:
        s.start("gateway")
        with RaglineClient(s.gateway) as client, pytest.raises(NotFoundError):
            client.get_job("no-such-job")  # no key needed
    finally:
        s.stop_all()
    (line,) = [t for t in s.log_path("gateway").read_text().splitlines() if "API keys are OFF" in t]
    assert "WARNING" in line and s.gateway in line and "RAGLINE_KEYS_FILE" in line
