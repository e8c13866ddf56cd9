"""The broker contract (tests/broker_contract.py) against each real broker: Redis Streams and
RabbitMQ."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from ragline.broker.base import BrokerAdapter
from ragline.broker.rabbitmq import RabbitMQBroker
from ragline.broker.redis_streams import RedisStreamsBroker
from tests.broker_contract import BrokerContract, BrokerFactory
from tests.conftest import REDIS_URL
from tests.stack import delete_rabbitmq_queues

pytestmark = pytest.mark.integration

RABBITMQ_URL = os.environ.get("RAGLINE_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")


class TestRedisStreams(BrokerContract):
    @pytest.fixture
    async def broker_factory(
        self, namespace: str, redis_client: aioredis.Redis
    ) -> AsyncIterator[BrokerFactory]:
        """Connected brokers in the test's namespace (`redis_client` deletes its keys after)."""
        made: list[BrokerAdapter] = []

        async def make(name: str, visibility_s: float = 60.0, prefetch: int = 128) -> BrokerAdapter:
            broker = RedisStreamsBroker(
                REDIS_URL,
                namespace=namespace,
                consumer_name=name,
                visibility_timeout_s=visibility_s,
            )
            await broker.connect()
            made.append(broker)
            return broker

        yield make
        for broker in made:
            await broker.close()


class TestRabbitMQ(BrokerContract):
    @pytest.fixture
    async def broker_factory(self, namespace: str) -> AsyncIterator[BrokerFactory]:
        """Connected brokers in the test's namespace; deletes its queues after."""
        made: list[BrokerAdapter] = []

        async def make(name: str, visibility_s: float = 60.0, prefetch: int = 128) -> BrokerAdapter:
            # No visibility timeout: RabbitMQ redelivers when a consumer's connection drops.
            broker = RabbitMQBroker(
                RABBITMQ_URL, namespace=namespace, consumer_name=name, prefetch=prefetch
            )
            await broker.connect()
            made.append(broker)
            return broker

        yield make
        for broker in made:
            await broker.close()
        await delete_rabbitmq_queues(namespace, ["q"])
