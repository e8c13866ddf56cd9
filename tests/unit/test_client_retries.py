"""The clients' retry policy, against a tiny real grpc.aio IngestService in this process that fails
as told before it answers (tests/scripted_gateway.py). Every case runs for RaglineClient and
AsyncRaglineClient."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from ragline_client import (
    InvalidArgumentError,
    JobState,
    ResourceExhaustedError,
    RetryPolicy,
    UnavailableError,
)
from ragline_client._errors import RaglineClientError
from tests.client_flavours import FLAVOURS, AwaitedClient, connected
from tests.scripted_gateway import (
    Failure,
    ScriptedGateway,
    bad_request,
    retry_info,
    scripted_gateway,
)

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]

# Short, exact waits (no jitter) so the cases can check each one.
FAST = RetryPolicy(maximum_attempts=3, initial_interval_s=0.05, backoff_coefficient=4.0, jitter=0.0)


@pytest.fixture
async def gateway() -> AsyncIterator[ScriptedGateway]:
    async with scripted_gateway() as running:
        yield running


@pytest.fixture(params=FLAVOURS)
async def client(
    request: pytest.FixtureRequest, gateway: ScriptedGateway
) -> AsyncIterator[AwaitedClient]:
    async with connected(request.param, gateway.address, timeout=5, retry=FAST) as c:
        yield c


async def test_resource_exhausted_with_retry_info_waits_that_long_then_succeeds(
    client: AwaitedClient, gateway: ScriptedGateway
) -> None:
    gateway.failures = [
        Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, "queue full", [retry_info(0.4)])
    ]
    job = await client.get_job("j-1")
    assert (job.job_id, job.state) == ("j-1", JobState.ACTIVE)
    (gap,) = gateway.gaps()
    assert 0.4 <= gap < 1.0, gap  # the gateway's delay, not FAST's 0.05 s (slack for a busy CPU)


async def test_unavailable_is_retried_with_growing_backoff_up_to_the_limit(
    client: AwaitedClient, gateway: ScriptedGateway
) -> None:
    gateway.failures = [Failure(grpc.StatusCode.UNAVAILABLE, "draining")] * 5
    with pytest.raises(UnavailableError, match="draining") as caught:
        await client.get_job("j-1")
    assert isinstance(caught.value.__cause__, grpc.RpcError)
    assert len(gateway.arrivals) == FAST.maximum_attempts
    first, second = gateway.gaps()
    assert 0.05 <= first < 1.0, first  # (slack for a busy CPU)
    assert 0.2 <= second < 1.0, second  # 4x the first wait


async def test_unavailable_then_an_answer_returns_the_answer(
    client: AwaitedClient, gateway: ScriptedGateway
) -> None:
    gateway.failures = [Failure(grpc.StatusCode.UNAVAILABLE, "restarting")] * 2
    assert (await client.get_job("j-2")).job_id == "j-2"
    assert len(gateway.arrivals) == 3


async def test_invalid_argument_is_not_retried_and_names_the_field(
    client: AwaitedClient, gateway: ScriptedGateway
) -> None:
    gateway.failures = [
        Failure(grpc.StatusCode.INVALID_ARGUMENT, "job_id: empty", [bad_request("job_id", "empty")])
    ]
    with pytest.raises(InvalidArgumentError) as caught:
        await client.get_job("")
    assert (caught.value.field, caught.value.details) == ("job_id", "job_id: empty")
    assert len(gateway.arrivals) == 1


async def test_resource_exhausted_without_a_delay_is_a_limit_and_not_retried(
    client: AwaitedClient, gateway: ScriptedGateway
) -> None:
    gateway.failures = [Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, "content: over 64 MiB")]
    with pytest.raises(ResourceExhaustedError) as caught:
        await client.get_job("j-1")
    assert caught.value.retry_after is None
    assert len(gateway.arrivals) == 1


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_the_gateways_delay_is_on_the_error_when_no_retry_is_left(
    flavour: str, gateway: ScriptedGateway
) -> None:
    gateway.failures = [Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, "full", [retry_info(2.5)])]
    async with connected(flavour, gateway.address, retry=RetryPolicy(maximum_attempts=1)) as c:
        with pytest.raises(ResourceExhaustedError) as caught:
            await c.get_job("j-1")
    assert caught.value.retry_after == 2.5
    assert len(gateway.arrivals) == 1


async def test_opening_a_watch_is_retried(client: AwaitedClient, gateway: ScriptedGateway) -> None:
    gateway.failures = [Failure(grpc.StatusCode.UNAVAILABLE, "restarting")]
    jobs = await client.collect("watch", "j-3")
    assert [job.state for job in jobs] == [JobState.ACTIVE, JobState.COMPLETED]
    assert len(gateway.arrivals) == 2


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_the_api_key_travels_with_every_attempt(
    flavour: str, gateway: ScriptedGateway
) -> None:
    key = "rl_0123456789ab_" + "k" * 32
    gateway.failures = [Failure(grpc.StatusCode.UNAVAILABLE, "restarting")]
    async with connected(flavour, gateway.address, api_key=key, retry=FAST) as c:
        await c.get_job("j-1")
        assert key not in repr(c.client) and key not in repr(c.client._connection)
    assert [m.get("authorization") for m in gateway.metadata] == [f"Bearer {key}"] * 2


def test_policy_delays() -> None:
    policy = RetryPolicy(
        maximum_attempts=5, initial_interval_s=1.0, maximum_interval_s=3.0, jitter=0.5
    )
    unavailable = UnavailableError("down", code="UNAVAILABLE")
    assert [policy.delay(n, unavailable, rand=lambda: 0.0) for n in (1, 2, 3, 4, 5)] == [
        1.0,
        2.0,
        3.0,  # capped
        3.0,
        None,  # the fifth attempt was the last
    ]
    assert policy.delay(1, unavailable, rand=lambda: 1.0) == 0.5  # jitter shortens, by half here
    full = ResourceExhaustedError("full", retry_after=2.5)
    assert policy.delay(1, full) == 2.5  # the gateway's delay, exactly
    assert policy.delay(1, ResourceExhaustedError("full", retry_after=7.0)) is None  # too long
    assert policy.delay(1, ResourceExhaustedError("too big")) is None
    tls = UnavailableError("not signed by the CA you gave", retryable=False)
    assert policy.delay(1, tls) is None  # the settings are wrong: no retry can fix them
    for final in ("NOT_FOUND", "DEADLINE_EXCEEDED", "INTERNAL"):
        assert policy.delay(1, RaglineClientError("no", code=final)) is None


@pytest.mark.parametrize(
    "bad",
    [
        {"maximum_attempts": 0},
        {"initial_interval_s": -1.0},
        {"initial_interval_s": 2.0, "maximum_interval_s": 1.0},
        {"backoff_coefficient": 0.5},
        {"jitter": 1.5},
    ],
)
def test_a_policy_that_makes_no_sense_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        RetryPolicy(**bad)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_a_gateway_back_from_an_outage_is_reached_within_the_default_retries(
    flavour: str,
) -> None:
    """While the gateway is down gRPC waits ever longer between reconnects, failing calls at once
    meanwhile; the clients cap that wait, so the default retries reach a gateway that is back
    even after an outage long enough for gRPC's own waits to outgrow them."""
    async with scripted_gateway() as first:
        address = first.address
        async with connected(flavour, address, timeout=5) as client:
            assert (await client.get_job("j-1")).state is JobState.ACTIVE
            await first.stop()
            for _ in range(2):  # an app calling on through the outage
                with pytest.raises(UnavailableError):
                    await client.get_job("j-1")
            async with scripted_gateway(address):  # back, on the same port
                assert (await client.get_job("j-1")).state is JobState.ACTIVE
