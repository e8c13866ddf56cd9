"""Chooses the broker adapter from the settings."""

from __future__ import annotations

from ragline.broker.base import BrokerAdapter
from ragline.config import Settings
from ragline.errors import ConfigurationError


def make_broker(settings: Settings) -> BrokerAdapter:
    """The broker `settings.broker` names, not yet connected."""
    if settings.broker == "redis":
        from ragline.broker.redis_streams import RedisStreamsBroker

        return RedisStreamsBroker(
            settings.redis_url,
            namespace=settings.namespace,
            visibility_timeout_s=settings.visibility_timeout_s,
        )
    if settings.broker == "rabbitmq":
        from ragline.broker.rabbitmq import RabbitMQBroker

        # RabbitMQ returns a dead consumer's messages as soon as its connection drops, so the
        # visibility timeout is the server's business (its consumer_timeout); the prefetch lets
        # a consumer hold two batches: the one in hand and the next.
        return RabbitMQBroker(
            settings.rabbitmq_url,
            namespace=settings.namespace,
            prefetch=2 * settings.read_batch_size,
            # The broker's own limit is a backstop; the stage counts crashes precisely.
            max_deliveries=settings.retry_policy().raw_delivery_limit,
        )
    raise ConfigurationError(
        f"the {settings.broker!r} broker is unknown; use RAGLINE_BROKER=redis or rabbitmq"
    )
