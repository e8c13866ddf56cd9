"""The Redis Streams broker's own machinery against a real Redis.

The behaviour every broker shares is in tests/broker_contract.py; these tests cover what only the
Redis adapter does: reclaiming by visibility timeout, recreating a vanished consumer group, and
answering BrokerUnavailable for every Redis failure.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
import redis
import redis.asyncio as aioredis

from ragline.broker.base import DeadLetter, Delivery
from ragline.broker.redis_streams import RedisStreamsBroker
from ragline.errors import BrokerUnavailable
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.integration


async def make_broker(
    redis_client: aioredis.Redis, namespace: str, name: str, visibility_s: float = 60.0
) -> RedisStreamsBroker:
    broker = RedisStreamsBroker(
        REDIS_URL, namespace=namespace, consumer_name=name, visibility_timeout_s=visibility_s
    )
    await broker.connect()
    return broker


async def test_message_is_not_reclaimed_before_the_visibility_timeout(redis_client, namespace):
    holder = await make_broker(redis_client, namespace, "holder", visibility_s=30)
    other = await make_broker(redis_client, namespace, "other", visibility_s=30)
    await holder.publish("q", [b"slow"])
    assert len(await holder.read("q", 1, 0.5)) == 1
    await asyncio.sleep(0.3)
    assert await other.read("q", 10, 0.2) == []
    await holder.close()
    await other.close()


async def test_group_is_recreated_when_the_stream_vanishes(redis_client, namespace):
    broker = await make_broker(redis_client, namespace, "c")
    await broker.publish("q", [b"a"])
    await broker.ack(await broker.read("q", 1, 0.5))
    await redis_client.delete(broker.stream_key("q"))
    assert await broker.read("q", 1, 0.1) == []  # notices the missing group
    await broker.publish("q", [b"b"])
    assert [d.body for d in await broker.read("q", 1, 0.5)] == [b"b"]
    await broker.close()


async def test_publish_appends_every_body_in_order_even_after_the_script_cache_is_flushed(
    redis_client, namespace
):
    broker = await make_broker(redis_client, namespace, "c")
    bodies = [f"m{i}".encode() * (i + 1) for i in range(50)] + [b"", b"\x00\xff" * 1000]
    await broker.publish("q", bodies[:10])
    await redis_client.script_flush()  # e.g. Redis restarted: the publish script must come back
    await broker.publish("q", bodies[10:])
    got = await broker.read("q", 100, 0.5)
    assert [d.body for d in got] == bodies
    await broker.close()


async def test_paging_after_the_largest_entry_id_is_an_empty_page(redis_client, namespace):
    broker = await make_broker(redis_client, namespace, "c")
    largest = f"{2**64 - 1}-{2**64 - 1}"
    assert broker.is_dead_letter_id(largest)
    assert await broker.list_dead_letters("q", after=largest) == []  # Redis refuses "(" + largest
    assert await broker.list_dead_letters("q", after="0-0") == []
    await broker.close()


HELD = Delivery("q", b"x", "1-0")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket closes


@pytest.mark.parametrize(
    "call",
    [
        lambda b: b.health(),
        lambda b: b.publish("q", [b"x"]),
        lambda b: b.read("q", 1, 0.1),
        lambda b: b.depth("q"),
        lambda b: b.ack([HELD]),
        lambda b: b.extend([HELD]),
        lambda b: b.retry_later(HELD, b"x", 1.0),
        lambda b: b.dead_letter(HELD, DeadLetter("q", b"x", "j", "E", "m", 1, 0.0, 0.0)),
        lambda b: b.list_dead_letters("q"),
        lambda b: b.list_dead_letters("q", after="1-0"),
        lambda b: b.requeue_dead_letters("q"),
        lambda b: b.requeue_dead_letters("q", ["1-0"]),
        lambda b: b.purge_dead_letters("q"),
        lambda b: b.purge_dead_letters("q", ["1-0"]),
    ],
    ids=[
        "health",
        "publish",
        "read",
        "depth",
        "ack",
        "extend",
        "retry-later",
        "dead-letter",
        "list",
        "list-after",
        "requeue-all",
        "requeue-ids",
        "purge-all",
        "purge-ids",
    ],
)
async def test_every_call_raises_broker_unavailable_when_redis_does_not_answer(call):
    client = aioredis.Redis.from_url(
        f"redis://:secret@127.0.0.1:{_closed_port()}/0", socket_connect_timeout=1
    )
    broker = RedisStreamsBroker("redis://:secret@127.0.0.1:1/0", client=client)
    with pytest.raises(BrokerUnavailable):
        await broker.connect()  # loads its scripts, then finds Redis away
    with pytest.raises(BrokerUnavailable) as caught:
        await call(broker)
    assert isinstance(caught.value.__cause__, redis.RedisError | OSError)
    assert "could not" in str(caught.value)
    assert "secret" not in str(caught.value)
    await client.aclose()
