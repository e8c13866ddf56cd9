"""The metrics' own logic without a stack: what the runner counts per outcome, the RPC interceptor's
final status codes, scrape-time collectors on the memory broker, tenant labels, the address."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc import aio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ragline import metrics
from ragline.broker.memory import MemoryBroker
from ragline.cli.stack import metrics_addresses
from ragline.config import Settings
from ragline.errors import (
    ConfigurationError,
    InvalidArgument,
    NotFound,
    PermanentTaskError,
    ResourceExhausted,
    StoreUnavailable,
)
from ragline.grpc_metrics import RpcMetricsInterceptor
from ragline.grpc_server import GrpcServer
from ragline.jobs.model import JobState
from ragline.stage.runner import StageRunner
from tests.runner_tasks import FAST, FakeHandler, embed_task
from tests.unit.memory_jobs import MemoryJobs, MemorySoloRuns

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]


def outcome(name: str) -> float:
    return metrics.TASKS.labels("embed", name)._value.get()


def samples(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
async def broker() -> AsyncIterator[MemoryBroker]:
    b = MemoryBroker(consumer_name="metrics-test")
    await b.connect()
    yield b
    await b.close()


async def test_the_runner_counts_each_outcome_once_per_task(broker: MemoryBroker) -> None:
    jobs = MemoryJobs()
    ok, retried, dead, cancelled = (jobs.create() for _ in range(4))
    jobs.move(cancelled, JobState.CANCELLED)
    handler = FakeHandler()
    handler.failures[retried] = RuntimeError("the GPU hiccuped")
    handler.failures[dead] = PermanentTaskError("not a PDF")
    runner = StageRunner(handler, broker, jobs, solo_runs=MemorySoloRuns(), policy=FAST)
    before = {o: outcome(o) for o in ("ok", "retried", "dead_lettered", "dropped")}
    batches = metrics.BATCH_TASKS.labels("embed")._sum.get()
    await broker.publish("embed", [embed_task(j) for j in (ok, retried, dead, cancelled)])
    await runner.process(await broker.read("embed", 10, 0.5))
    assert {o: outcome(o) - before[o] for o in before} == {
        "ok": 1,
        "retried": 1,
        "dead_lettered": 1,
        "dropped": 1,
    }
    # The batch handled held the three live tasks (the cancelled one was dropped before it).
    assert metrics.BATCH_TASKS.labels("embed")._sum.get() - batches == 3


async def test_backlog_is_read_on_the_loop_at_scrape_time_and_a_failed_read_says_so(
    broker: MemoryBroker,
) -> None:
    loop = asyncio.get_running_loop()
    registry = CollectorRegistry()
    registry.register(metrics.BacklogCollector(loop, "embed", lambda: broker.backlog("embed")))
    await broker.publish("embed", [b"one", b"two"])
    (held,) = await broker.read("embed", 1, 0.5)
    found = await asyncio.to_thread(samples, registry)  # scrapes come from another thread
    assert found[("ragline_queue_up", frozenset({("stage", "embed")}))] == 1
    waiting = frozenset({("stage", "embed"), ("state", "waiting")})
    in_flight = frozenset({("stage", "embed"), ("state", "in_flight")})
    assert found[("ragline_queue_messages", waiting)] == 1
    assert found[("ragline_queue_messages", in_flight)] == 1
    assert found[("ragline_queue_oldest_waiting_age_seconds", frozenset({("stage", "embed")}))] >= 0

    async def unreachable() -> Any:
        raise StoreUnavailable("Redis at redis://x did not answer")

    down = CollectorRegistry()
    down.register(metrics.BacklogCollector(loop, "embed", unreachable))
    found = await asyncio.to_thread(samples, down)
    assert found == {("ragline_queue_up", frozenset({("stage", "embed")})): 0}
    await broker.ack([held])


async def test_the_server_serves_its_registry_over_http_and_stops() -> None:
    loop = asyncio.get_running_loop()

    async def three() -> int:
        return 3

    server = metrics.start_metrics_server(
        "127.0.0.1:0", "test", [*metrics.STAGE, metrics.StuckJobsCollector(loop, three)]
    )
    assert server is not None
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        page = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read())
        names = {f.name for f in text_string_to_metric_families(page.decode())}
        assert {"ragline_tasks", "ragline_jobs_stuck", "process_cpu_seconds"} <= names
        assert "ragline_embedder_chunks" not in names  # another service's metrics
    finally:
        await asyncio.to_thread(server.close)
    assert metrics.start_metrics_server("", "test", []) is None


class _Servicer:
    """Answers /test.Svc/Echo: OK, or the error its request names."""

    async def echo(self, request: bytes, context: Any) -> bytes:
        if request == b"bad":
            raise InvalidArgument("name", "must not be bad")
        if request == b"missing":
            raise NotFound("no such thing")
        return request


@pytest.fixture
async def echo_server() -> AsyncIterator[str]:
    servicer = _Servicer()

    def register(server: aio.Server) -> None:
        handler = grpc.method_handlers_generic_handler(
            "test.Svc", {"Echo": grpc.unary_unary_rpc_method_handler(servicer.echo)}
        )
        server.add_generic_rpc_handlers((handler,))

    server = GrpcServer(
        "127.0.0.1:0", [register], "test", outer_interceptors=[RpcMetricsInterceptor()]
    )
    await server.start()
    yield f"127.0.0.1:{server.port}"
    await server.stop(0)


def handled(code: str) -> float:
    return metrics.RPCS.labels("test.Svc", "Echo", code)._value.get()


async def test_rpcs_are_counted_by_the_status_the_client_saw(echo_server: str) -> None:
    before = {c: handled(c) for c in ("OK", "INVALID_ARGUMENT", "NOT_FOUND")}
    async with aio.insecure_channel(echo_server) as channel:
        echo = channel.unary_unary("/test.Svc/Echo")
        assert await echo(b"hello") == b"hello"
        for request, code in ((b"bad", "INVALID_ARGUMENT"), (b"missing", "NOT_FOUND")):
            with pytest.raises(aio.AioRpcError) as err:
                await echo(request)
            assert err.value.code().name == code
    # An abort sends the status before the handler's coroutine resumes to count it, so the client
    # can see the last error a moment before the server's counter moves.
    want = {"OK": 1, "INVALID_ARGUMENT": 1, "NOT_FOUND": 1}
    deadline = asyncio.get_running_loop().time() + 5
    while (seen := {c: handled(c) - before[c] for c in before}) != want:
        assert asyncio.get_running_loop().time() < deadline, seen
        await asyncio.sleep(0.01)


def test_only_listed_tenants_get_a_label_of_their_own() -> None:
    label = metrics.TenantLabels(" default, acme ,,")
    assert [label(t) for t in ("default", "acme", "globex", "")] == [
        "default",
        "acme",
        "other",
        "other",
    ]
    assert metrics.TenantLabels("")("default") == "other"


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (InvalidArgument("content_type", "is empty"), "invalid"),
        (ResourceExhausted("64 MiB is over the limit"), "too_large"),
        (ResourceExhausted("the queue is full", retry_after_s=1.0), "queue_full"),
        (StoreUnavailable("Redis did not answer"), "unavailable"),
        (RuntimeError("a bug"), "error"),
    ],
)
def test_refusals_are_labelled_by_why(error: BaseException, reason: str) -> None:
    assert metrics.refusal_reason(error) == reason


@pytest.mark.parametrize("address", ["9464", "host:", "host:port", "host:70000"])
def test_a_malformed_metrics_address_is_refused_naming_the_setting(address: str) -> None:
    with pytest.raises(ConfigurationError, match="RAGLINE_METRICS_ADDRESS"):
        Settings.from_env({"RAGLINE_METRICS_ADDRESS": address})
    with pytest.raises(ConfigurationError, match="RAGLINE_METRICS_ADDRESS"):
        metrics.parse_address(address)


def test_metrics_addresses_parse() -> None:
    assert metrics.parse_address("0.0.0.0:9464") == ("0.0.0.0", 9464)
    assert metrics.parse_address(":9464") == ("0.0.0.0", 9464)
    assert metrics.parse_address("[::1]:9464") == ("::1", 9464)
    assert Settings.from_env({"RAGLINE_METRICS_ADDRESS": "127.0.0.1:9464"}).metrics_address


def test_ragline_up_gives_each_service_its_own_metrics_port() -> None:
    assert metrics_addresses("127.0.0.1:9464") == {
        "gateway": "127.0.0.1:9464",
        "chunker": "127.0.0.1:9465",
        "embedder": "127.0.0.1:9466",
        "indexer": "127.0.0.1:9467",
    }
    assert metrics_addresses("") == {}


async def test_a_scrape_on_the_event_loop_itself_skips_the_read_instead_of_blocking_it(
    broker: MemoryBroker,
) -> None:
    registry = CollectorRegistry()
    loop = asyncio.get_running_loop()
    registry.register(metrics.BacklogCollector(loop, "embed", lambda: broker.backlog("embed")))
    assert samples(registry) == {("ragline_queue_up", frozenset({("stage", "embed")})): 0}
