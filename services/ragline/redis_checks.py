"""Start-up checks of the Redis settings ragline's promises depend on.

Redis holds the job records and (by default) the queues, so it must neither evict keys nor lose
more than a second of writes in a crash: `maxmemory-policy noeviction` and
`appendonly yes` with `appendfsync everysec` (or always).
"""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from ragline.errors import ConfigurationError
from ragline.redis_client import text

log = logging.getLogger(__name__)


def assess(config: dict[str, str]) -> tuple[list[str], str | None]:
    """(warnings, refusal) for a Redis CONFIG GET result. Pure."""
    warnings = []
    policy = config.get("maxmemory-policy", "noeviction")
    refusal = None
    if policy != "noeviction":
        refusal = (
            f"Redis evicts keys (maxmemory-policy {policy}): it could silently drop queued "
            "documents and job records. Set `maxmemory-policy noeviction` and restart ragline."
        )
    if config.get("appendonly", "no") != "yes":
        warnings.append(
            "Redis runs without the append-only file (appendonly no): a Redis restart loses "
            "queued documents and job records. For production set `appendonly yes` and "
            "`appendfsync everysec`."
        )
    elif config.get("appendfsync", "everysec") == "no":
        warnings.append(
            "Redis leaves fsync to the OS (appendfsync no): a machine crash can lose recent "
            "writes. Set `appendfsync everysec`."
        )
    return warnings, refusal


async def check_redis_durability(client: aioredis.Redis) -> None:
    """Warns about settings that risk data; raises ConfigurationError under an evicting policy."""
    config: dict[str, str] = {}
    try:
        for key in ("maxmemory-policy", "appendonly", "appendfsync"):
            reply = await client.config_get(key)
            config.update({text(k): text(v) for k, v in reply.items()})
    except ResponseError:
        # Managed Redis services often disable CONFIG; say so rather than guess.
        log.warning(
            "cannot read the Redis configuration (CONFIG is disabled); make sure it runs with "
            "maxmemory-policy noeviction and appendonly yes"
        )
        return
    except (RedisError, OSError) as exc:
        log.warning("cannot check the Redis configuration yet: %s", exc)
        return
    warnings, refusal = assess(config)
    for warning in warnings:
        log.warning("%s", warning)
    if refusal:
        raise ConfigurationError(refusal)
