"""Chooses the broker adapter from the settings."""

from __future__ import annotations

from ragline.broker.base import Broker
from ragline.config import Settings
from ragline.errors import ConfigurationError


def make_broker(settings: Settings) -> Broker:
    """The broker `settings.broker` names, not yet connected."""
    if settings.broker == "redis":
        from ragline.broker.redis_streams import RedisStreamsBroker

        return RedisStreamsBroker(
            settings.redis_url,
            namespace=settings.namespace,
            visibility_timeout_s=settings.visibility_timeout_s,
        )
    raise ConfigurationError(
        f"the {settings.broker!r} broker is not available in this version; use RAGLINE_BROKER=redis"
    )
