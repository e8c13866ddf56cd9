"""The Redis Streams broker against a real Redis."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from ragline.broker.base import DeadLetter
from ragline.broker.redis_streams import RedisStreamsBroker

pytestmark = pytest.mark.integration


async def make_broker(
    redis_client: aioredis.Redis, namespace: str, name: str, visibility_s: float = 60.0
) -> RedisStreamsBroker:
    from tests.conftest import REDIS_URL

    broker = RedisStreamsBroker(
        REDIS_URL, namespace=namespace, consumer_name=name, visibility_timeout_s=visibility_s
    )
    await broker.connect()
    return broker


async def test_publish_then_read_in_order_and_ack_removes(redis_client, namespace):
    broker = await make_broker(redis_client, namespace, "c1")
    await broker.publish("q", [b"one", b"two", b"three"])
    got = await broker.read("q", 10, 0.5)
    assert [d.body for d in got] == [b"one", b"two", b"three"]
    assert all(d.delivery_count == 1 for d in got)
    assert await broker.depth("q") == 3  # in flight until acked
    await broker.ack(got)
    assert await broker.depth("q") == 0
    assert await broker.read("q", 10, 0.1) == []
    await broker.close()


async def test_batch_read_is_bounded(redis_client, namespace):
    broker = await make_broker(redis_client, namespace, "c1")
    await broker.publish("q", [str(i).encode() for i in range(25)])
    first = await broker.read("q", 10, 0.5)
    assert len(first) == 10
    await broker.close()


async def test_competing_consumers_share_without_overlap(redis_client, namespace):
    a = await make_broker(redis_client, namespace, "a")
    b = await make_broker(redis_client, namespace, "b")
    await a.publish("q", [str(i).encode() for i in range(20)])
    got_a = await a.read("q", 10, 0.5)
    got_b = await b.read("q", 10, 0.5)
    bodies = [d.body for d in got_a + got_b]
    assert sorted(bodies) == sorted(str(i).encode() for i in range(20))
    await a.close()
    await b.close()


async def test_unacked_message_is_redelivered_to_a_live_consumer(redis_client, namespace):
    dead = await make_broker(redis_client, namespace, "dead", visibility_s=0.3)
    live = await make_broker(redis_client, namespace, "live", visibility_s=0.3)
    await dead.publish("q", [b"work"])
    taken = await dead.read("q", 10, 0.5)
    assert [d.body for d in taken] == [b"work"]
    await dead.close()  # dies holding the message, never acks
    await asyncio.sleep(0.5)
    again = []
    for _ in range(10):
        again = await live.read("q", 10, 0.2)
        if again:
            break
    assert [d.body for d in again] == [b"work"]
    assert again[0].delivery_count == 2
    await live.ack(again)
    assert await live.depth("q") == 0
    await live.close()


async def test_message_is_not_reclaimed_before_the_visibility_timeout(redis_client, namespace):
    holder = await make_broker(redis_client, namespace, "holder", visibility_s=30)
    other = await make_broker(redis_client, namespace, "other", visibility_s=30)
    await holder.publish("q", [b"slow"])
    assert len(await holder.read("q", 1, 0.5)) == 1
    await asyncio.sleep(0.3)
    assert await other.read("q", 10, 0.2) == []
    await holder.close()
    await other.close()


async def test_retry_later_comes_back_after_the_delay_not_before(redis_client, namespace):
    broker = await make_broker(redis_client, namespace, "c")
    await broker.publish("q", [b"attempt-1"])
    (d,) = await broker.read("q", 1, 0.5)
    start = time.monotonic()
    await broker.retry_later(d, b"attempt-2", delay_s=0.6)
    assert await broker.depth("q") == 1  # waiting in the delayed set
    got = []
    while not got and time.monotonic() - start < 5:
        got = await broker.read("q", 10, 0.1)
    assert [x.body for x in got] == [b"attempt-2"]
    assert time.monotonic() - start >= 0.55
    await broker.close()


async def test_dead_letter_keeps_the_original_and_can_be_requeued_or_purged(
    redis_client, namespace
):
    broker = await make_broker(redis_client, namespace, "c")
    await broker.publish("q", [b"poison", b"also-poison"])
    got = await broker.read("q", 10, 0.5)
    now = time.time()
    for d in got:
        await broker.dead_letter(
            d, DeadLetter("q", d.body, "job-1", "PermanentTaskError", "bad pdf", 3, now, now)
        )
    assert await broker.depth("q") == 0
    letters = await broker.list_dead_letters("q")
    assert [(x.body, x.error_message, x.attempts) for x in letters] == [
        (b"poison", "bad pdf", 3),
        (b"also-poison", "bad pdf", 3),
    ]
    page = await broker.list_dead_letters("q", limit=1, after=letters[0].dead_letter_id)
    assert [x.body for x in page] == [b"also-poison"]
    assert await broker.requeue_dead_letters("q", [letters[0].dead_letter_id]) == 1
    assert [d.body for d in await broker.read("q", 10, 0.5)] == [b"poison"]
    assert await broker.purge_dead_letters("q") == 1
    assert await broker.list_dead_letters("q") == []
    await broker.close()


async def test_group_is_recreated_when_the_stream_vanishes(redis_client, namespace):
    broker = await make_broker(redis_client, namespace, "c")
    await broker.publish("q", [b"a"])
    await broker.ack(await broker.read("q", 1, 0.5))
    await redis_client.delete(broker.stream_key("q"))
    assert await broker.read("q", 1, 0.1) == []  # notices the missing group
    await broker.publish("q", [b"b"])
    assert [d.body for d in await broker.read("q", 1, 0.5)] == [b"b"]
    await broker.close()
