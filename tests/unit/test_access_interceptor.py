"""access.interceptor on a real in-process grpc.aio server: refusals get their status before the
request is decoded, the health service stays open, and each call's servicer sees its own caller."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]

from ragline.access.interceptor import AccessInterceptor
from ragline.access.keys import KeyRing, new_key
from ragline.access.policy import Scope, current_caller
from ragline.grpc_status import ErrorInterceptor
from ragline_client.v1 import ingest_service_pb2 as pb
from ragline_client.v1 import ingest_service_pb2_grpc, job_pb2

pytestmark = pytest.mark.unit


class _WhoAmI(ingest_service_pb2_grpc.IngestServiceServicer):
    """Answers with the current caller's tenant and key id, after a pause that lets other calls
    run in between."""

    async def GetJob(self, request: pb.GetJobRequest, context: Any) -> pb.GetJobResponse:
        await asyncio.sleep(0.05)
        caller = current_caller()
        return pb.GetJobResponse(job=job_pb2.Job(job_id=f"{caller.tenant}/{caller.key_id}"))

    async def WatchJob(
        self, request: pb.WatchJobRequest, context: Any
    ) -> AsyncIterator[pb.WatchJobResponse]:
        for _ in range(3):
            await asyncio.sleep(0.02)
            caller = current_caller()
            yield pb.WatchJobResponse(job=job_pb2.Job(job_id=f"{caller.tenant}/{caller.key_id}"))


@pytest.fixture
def keys() -> tuple[KeyRing, dict[str, str]]:
    ring = KeyRing()
    made = {}
    for tenant, scopes in [("acme", {Scope.READ}), ("globex", {Scope.READ}), ("w", {Scope.INGEST})]:
        key, entry = new_key(tenant, scopes, now=datetime.now(UTC))
        ring = ring.with_entry(entry)
        made[tenant] = key
    return ring, made


@pytest.fixture
async def channel(keys: tuple[KeyRing, dict[str, str]]) -> AsyncIterator[aio.Channel]:
    ring, _ = keys
    server = aio.server(interceptors=[ErrorInterceptor(), AccessInterceptor(ring.authenticate)])
    ingest_service_pb2_grpc.add_IngestServiceServicer_to_server(_WhoAmI(), server)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        yield ch
    await server.stop(None)


def _bearer(key: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {key}"),)


async def test_concurrent_calls_each_see_their_own_caller(
    channel: aio.Channel, keys: tuple[KeyRing, dict[str, str]]
) -> None:
    _, made = keys
    stub = ingest_service_pb2_grpc.IngestServiceStub(channel)
    tenants = ["acme", "globex"] * 10
    replies = await asyncio.gather(
        *(
            stub.GetJob(pb.GetJobRequest(job_id="x"), metadata=_bearer(made[t]), timeout=10)
            for t in tenants
        )
    )
    assert [r.job.job_id for r in replies] == [f"{t}/{made[t][3:15]}" for t in tenants]


async def test_a_stream_sees_its_caller_throughout(
    channel: aio.Channel, keys: tuple[KeyRing, dict[str, str]]
) -> None:
    _, made = keys
    stub = ingest_service_pb2_grpc.IngestServiceStub(channel)

    async def watch(tenant: str) -> list[str]:
        call = stub.WatchJob(pb.WatchJobRequest(job_id="x"), metadata=_bearer(made[tenant]))
        return [r.job.job_id async for r in call]

    acme, globex = await asyncio.gather(watch("acme"), watch("globex"))
    assert acme == [f"acme/{made['acme'][3:15]}"] * 3
    assert globex == [f"globex/{made['globex'][3:15]}"] * 3


async def test_refusals_carry_their_status_for_unary_and_streaming_calls(
    channel: aio.Channel, keys: tuple[KeyRing, dict[str, str]]
) -> None:
    _, made = keys
    stub = ingest_service_pb2_grpc.IngestServiceStub(channel)
    cases = [
        ((), grpc.StatusCode.UNAUTHENTICATED),
        ((("authorization", "Bearer nope"),), grpc.StatusCode.UNAUTHENTICATED),
        (_bearer(made["w"]), grpc.StatusCode.PERMISSION_DENIED),
    ]
    for metadata, code in cases:
        with pytest.raises(aio.AioRpcError) as unary:
            await stub.GetJob(pb.GetJobRequest(job_id="x"), metadata=metadata, timeout=10)
        assert unary.value.code() == code
        with pytest.raises(aio.AioRpcError) as stream:
            async for _ in stub.WatchJob(pb.WatchJobRequest(job_id="x"), metadata=metadata):
                pass
        assert stream.value.code() == code
        assert stream.value.details() == unary.value.details().replace("GetJob", "WatchJob")
    assert "lacks" in unary.value.details() and "--scopes read" in unary.value.details()


async def test_an_unauthenticated_call_is_refused_before_its_request_is_decoded(
    channel: aio.Channel,
) -> None:
    raw = channel.unary_unary("/ragline.v1.IngestService/GetJob")
    with pytest.raises(aio.AioRpcError) as caught:
        await raw(b"\xff\xff\xff", timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_the_health_service_needs_no_key(channel: aio.Channel) -> None:
    reply = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(), timeout=10
    )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_refusals_are_logged_without_the_key(
    channel: aio.Channel, keys: tuple[KeyRing, dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    _, made = keys
    caplog.set_level(logging.WARNING, logger="ragline.access.interceptor")
    stub = ingest_service_pb2_grpc.IngestServiceStub(channel)
    forged = made["acme"][:16] + "A" * 43
    for key in (forged, made["w"]):
        with pytest.raises(aio.AioRpcError):
            await stub.GetJob(pb.GetJobRequest(job_id="x"), metadata=_bearer(key), timeout=10)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "UNAUTHENTICATED" in lines[0] and "PERMISSION_DENIED" in lines[1]
    assert all("/ragline.v1.IngestService/GetJob" in line for line in lines)
    for line in lines:
        for key in (forged, *made.values()):
            assert key[16:] not in line
