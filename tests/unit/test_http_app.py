"""ragline.http.app's transport on a loopback port, in front of a scripted servicer: what the
stack cannot show cheaply. An event stream that fails midway, keepalives in a quiet stream,
streams ended by a stopping gateway, the caller bound for the servicer, the request counter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from aiohttp import ClientSession

from ragline import metrics
from ragline.access import current_caller
from ragline.access.policy import AUTH_OFF_CALLER, Caller
from ragline.config import Settings
from ragline.errors import NotFound, StoreUnavailable, Unauthenticated
from ragline.http.app import HttpGateway
from ragline.tenants import DEFAULT_TENANT
from ragline.v1 import ingest_service_pb2 as pb
from ragline.v1 import job_pb2
from tests.stack import free_port

pytestmark = pytest.mark.unit


class Scripted:
    """Stands in for the IngestServicer: each job id scripts what WatchJob does."""

    def __init__(self) -> None:
        self.tenants: list[str] = []
        self.metadata: list[Any] = []

    async def GetJob(self, request: pb.GetJobRequest, context: Any) -> pb.GetJobResponse:
        self.tenants.append(current_caller().tenant)
        self.metadata.append(dict(context.invocation_metadata()))
        if request.job_id == "missing":
            raise NotFound("job 'missing' does not exist")
        return pb.GetJobResponse(job=job_pb2.Job(job_id=request.job_id))

    async def WatchJob(
        self, request: pb.WatchJobRequest, context: Any
    ) -> AsyncIterator[pb.WatchJobResponse]:
        if request.job_id == "missing":
            raise NotFound("job 'missing' does not exist")
        yield pb.WatchJobResponse(job=job_pb2.Job(job_id=request.job_id))
        if request.job_id == "fails":
            raise StoreUnavailable("Redis at 127.0.0.1:6379 did not answer")
        if request.job_id == "quiet":
            await asyncio.sleep(3600)


def authenticate(authorization: Sequence[str | bytes]) -> Caller:
    if authorization == ["Bearer wrong"]:
        raise Unauthenticated("API key 0123456789ab is unknown or revoked")
    return AUTH_OFF_CALLER


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[HttpGateway, Scripted, str]]:
    servicer = Scripted()
    address = f"127.0.0.1:{free_port()}"
    gw = HttpGateway(
        address,
        servicer,
        authenticate,
        Settings(),
        keepalive_s=0.05,  # type: ignore[arg-type]
    )
    await gw.start()
    yield gw, servicer, f"http://{address}"
    await gw.stop(1)


async def test_a_unary_route_binds_the_caller_and_passes_the_trace_headers(
    gateway: tuple[HttpGateway, Scripted, str],
) -> None:
    _, servicer, url = gateway
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with ClientSession() as http:
        reply = await http.get(
            f"{url}/v1/jobs/j1", headers={"traceparent": traceparent, "Authorization": "Bearer k"}
        )
        assert reply.status == 200 and (await reply.json())["job"]["jobId"] == "j1"
    assert servicer.tenants == [DEFAULT_TENANT]
    assert servicer.metadata[0]["traceparent"] == traceparent
    assert "authorization" not in servicer.metadata[0]  # the key goes no further than admit()


async def test_an_error_midway_through_a_stream_is_an_error_event(
    gateway: tuple[HttpGateway, Scripted, str],
) -> None:
    _, _, url = gateway
    async with ClientSession() as http:
        reply = await http.get(f"{url}/v1/jobs/fails:watch")
        text = await reply.text()
    assert reply.status == 200
    job, error = text.split("\n\n")[:2]
    assert job == 'event: job\ndata: {"jobId":"fails",' + job.split('"fails",', 1)[1]
    assert error.startswith("event: error\ndata: ")
    assert '"status":"UNAVAILABLE"' in error and "did not answer" in error


async def test_a_quiet_stream_gets_keepalives_and_ends_when_the_gateway_stops(
    gateway: tuple[HttpGateway, Scripted, str],
) -> None:
    gw, _, url = gateway
    async with ClientSession() as http:
        reply = await http.get(f"{url}/v1/jobs/quiet:watch")
        assert reply.headers["Content-Type"] == "text/event-stream"
        first = await reply.content.readuntil(b"\n\n")
        assert first.startswith(b"event: job\n")
        assert await reply.content.readuntil(b"\n\n") == b": keepalive\n\n"
        await asyncio.wait_for(gw.stop(5), 5)  # within the test, not the grace
        await asyncio.wait_for(reply.read(), 5)  # the server ended the stream


async def test_refusals_and_unknown_jobs_come_before_a_stream_starts(
    gateway: tuple[HttpGateway, Scripted, str],
) -> None:
    _, _, url = gateway
    async with ClientSession() as http:
        refused = await http.get(
            f"{url}/v1/jobs/j1:watch", headers={"Authorization": "Bearer wrong"}
        )
        assert refused.status == 401
        assert (await refused.json())["error"]["message"].startswith("API key 0123456789ab")
        missing = await http.get(f"{url}/v1/jobs/missing:watch")
        assert missing.status == 404 and missing.content_type == "application/json"


async def test_requests_are_counted_by_rpc_and_status(
    gateway: tuple[HttpGateway, Scripted, str],
) -> None:
    _, _, url = gateway

    def count(rpc: str, status: str) -> float:
        value: float = metrics.HTTP_REQUESTS.labels(rpc, status)._value.get()
        return value

    before = (count("GetJob", "200"), count("GetJob", "404"), count("none", "404"))
    async with ClientSession() as http:
        for path in ("/v1/jobs/j1", "/v1/jobs/missing", "/nowhere"):
            (await http.get(url + path)).close()
    after = (count("GetJob", "200"), count("GetJob", "404"), count("none", "404"))
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]
