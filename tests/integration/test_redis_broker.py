"""The Redis Streams broker's own machinery against a real Redis.

The behaviour every broker shares is in test_broker_contract.py; these tests cover what only the
Redis adapter does: reclaiming by visibility timeout and recreating a vanished consumer group.
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from ragline.broker.redis_streams import RedisStreamsBroker
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
