"""One way to open Redis connections, with reconnects that ride out a Redis restart."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ragline.errors import StoreUnavailable

T = TypeVar("T")


def connect(url: str, *, client_name: str | None = None) -> aioredis.Redis:
    """A client that retries a command a few times, with jittered backoff, when its connection
    broke (e.g. Redis restarted): the pool's stale connections are replaced transparently.

    A retried write may run twice; every write ragline makes is idempotent or harmless twice.
    `client_name` names every connection (CLIENT LIST shows it), e.g. a broker's consumer name.
    """
    return aioredis.Redis.from_url(
        url,
        client_name=client_name,
        socket_connect_timeout=5,
        health_check_interval=30,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries=4),
        retry_on_error=[RedisConnectionError, RedisTimeoutError, ConnectionResetError],
    )


async def answered(awaitable: Awaitable[T], what: str) -> T:
    """The result of a Redis call; StoreUnavailable naming `what` (e.g. "the job store") when
    Redis did not answer."""
    try:
        return await awaitable
    except (RedisError, OSError) as exc:
        raise StoreUnavailable(f"{what} (Redis) did not answer: {exc}") from exc


def text(value: object) -> str:
    """A value Redis returned (bytes, or already text) as str."""
    return value.decode() if isinstance(value, bytes) else str(value)
