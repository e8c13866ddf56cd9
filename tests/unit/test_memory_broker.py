"""The in-memory broker's own machinery: waking a blocked read, connections that are not open,
reclaiming by visibility timeout, and all-or-nothing requeues. What every broker shares is in
tests/broker_contract.py (test_memory_broker_contract.py runs it here)."""

from __future__ import annotations

import asyncio
import time

import pytest

from ragline.broker.base import DeadLetter
from ragline.broker.memory import MemoryBroker, MemoryServer
from ragline.errors import BrokerUnavailable

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]


async def connected(server: MemoryServer, name: str, **options: float) -> MemoryBroker:
    broker = MemoryBroker(server, consumer_name=name, **options)
    await broker.connect()
    return broker


async def test_a_blocked_read_wakes_for_a_publish_and_for_a_retry_coming_due() -> None:
    server = MemoryServer()
    reader, writer = await connected(server, "reader"), await connected(server, "writer")

    async def publish_soon() -> None:
        await asyncio.sleep(0.1)
        await writer.publish("q", [b"first"])

    publishing = asyncio.create_task(publish_soon())
    started = time.monotonic()
    (first,) = await reader.read("q", 10, 5.0)
    await publishing
    assert first.body == b"first"
    assert time.monotonic() - started < 2.5  # woken by the publish, not by the timeout
    await reader.retry_later(first, b"second", delay_s=0.2)
    started = time.monotonic()
    (second,) = await reader.read("q", 10, 5.0)
    waited = time.monotonic() - started
    assert (second.body, second.delivery_count) == (b"second", 1)
    assert 0.15 <= waited < 2.5  # woken when it came due, not before and not at the timeout


async def test_a_connection_that_is_not_open_says_so_and_a_blocked_read_ends_with_it() -> None:
    server = MemoryServer()
    never = MemoryBroker(server, consumer_name="never")
    with pytest.raises(BrokerUnavailable, match="'never' is not open: call connect"):
        await never.publish("q", [b"x"])
    reader = await connected(server, "reader")
    blocked = asyncio.create_task(reader.read("q", 10, 5.0))
    await asyncio.sleep(0.05)
    await reader.close()
    with pytest.raises(BrokerUnavailable):
        await asyncio.wait_for(blocked, 1.0)
    await reader.connect()  # a closed connection may open again
    assert await reader.depth("q") == 0


async def test_without_extend_a_held_message_is_reclaimed_after_the_visibility_timeout() -> None:
    server = MemoryServer()
    holder = await connected(server, "holder", visibility_timeout_s=0.2)
    rival = await connected(server, "rival", visibility_timeout_s=0.2)
    await holder.publish("q", [b"slow"])
    (held,) = await holder.read("q", 1, 0.1)
    started = time.monotonic()
    (reclaimed,) = await rival.read("q", 10, 2.0)  # wakes when it becomes reclaimable
    assert time.monotonic() - started >= 0.15
    assert (reclaimed.body, reclaimed.delivery_count) == (b"slow", 2)
    # The first holder's late ack still settles it (its work was done), as XACK would.
    await holder.ack([held])
    assert await rival.depth("q") == 0
    assert await rival.read("q", 10, 0.3) == []


async def test_without_a_visibility_timeout_only_the_holder_gives_a_message_back() -> None:
    server = MemoryServer()
    holder, rival = await connected(server, "holder"), await connected(server, "rival")
    await holder.publish("q", [b"held"])
    assert len(await holder.read("q", 1, 0.1)) == 1
    assert await rival.read("q", 10, 0.2) == []
    assert await rival.consumer_count("q") == 2
    await holder.close()
    (again,) = await rival.read("q", 10, 0.1)
    assert (again.body, again.delivery_count) == (b"held", 2)


async def test_a_requeue_whose_transform_fails_moves_nothing() -> None:
    broker = await connected(MemoryServer(), "c")
    await broker.publish("q", [b"a", b"b"])
    for d in await broker.read("q", 10, 0.1):
        await broker.dead_letter(d, DeadLetter("q", d.body, "j", "E", "m", 1, 0.0, 0.0))

    def upper_but_not_b(body: bytes) -> bytes:
        if body == b"b":
            raise ValueError("cannot transform b")
        return body.upper()

    with pytest.raises(ValueError, match="cannot transform b"):
        await broker.requeue_dead_letters("q", transform=upper_but_not_b)
    assert [x.body for x in await broker.list_dead_letters("q")] == [b"a", b"b"]
    assert await broker.depth("q") == 0


async def test_paging_after_a_malformed_id_is_refused_by_name() -> None:
    # Callers check ids with is_dead_letter_id first (DeadLetterOps does): this is a bug's error.
    broker = await connected(MemoryServer(), "c")
    assert not broker.is_dead_letter_id("1-0")
    with pytest.raises(ValueError, match="'1-0' is not an in-memory dead-letter id"):
        await broker.list_dead_letters("q", after="1-0")
