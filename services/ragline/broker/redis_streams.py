"""The broker on Redis Streams: one stream per queue, one consumer group per stream.

Keys, under the deployment's namespace:
    {ns}:q:{queue}        the stream; entries carry the message body in field "b"
    {ns}:delayed:{queue}  a sorted set of retries by due time (score, epoch seconds)
    {ns}:dlq:{queue}      the dead-letter stream

An entry is deleted from the stream when acked (XACK + XDEL in one transaction), so the
stream's length is exactly the work waiting or in flight: the backpressure signal.
Messages held by a consumer that died are reclaimed with XAUTOCLAIM after the visibility timeout.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from ragline.broker.base import Broker, DeadLetter, Delivery
from ragline.errors import BrokerUnavailable
from ragline.redis_client import connect

log = logging.getLogger(__name__)

GROUP = "workers"
BODY = b"b"

# Moves due retries from the delayed set onto the stream, atomically, so a crash between the two
# steps can neither lose nor duplicate a retry.
_PROMOTE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, body in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'b', body)
  redis.call('ZREM', KEYS[1], body)
end
return #due
"""

# Appends every body in one call: a pipeline of XADDs costs redis-py a command each, and the
# gateway publishes a few documents per commit, so the per-command cost was most of it. One script
# is also all or nothing, where a pipeline broken midway left part of the messages queued.
_PUBLISH = """
for i = 1, #ARGV do redis.call('XADD', KEYS[1], '*', 'b', ARGV[i]) end
return #ARGV
"""


def default_consumer_name() -> str:
    """host-pid-random: unique per process, readable in XINFO CONSUMERS."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class RedisStreamsBroker(Broker):
    """Redis Streams with consumer groups."""

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "ragline",
        consumer_name: str | None = None,
        visibility_timeout_s: float = 60.0,
        client: aioredis.Redis | None = None,
    ) -> None:
        self._url = url
        self._ns = namespace
        self.consumer_name = consumer_name or default_consumer_name()
        self._visibility_ms = int(visibility_timeout_s * 1000)
        self._redis: aioredis.Redis | None = client
        self._groups_ready: set[str] = set()
        self._promote: Any = None
        self._publish: Any = None
        # When each queue was last checked for reclaimable and due messages: those checks cost a
        # round trip each, so they run at most a few times a second, not on every read.
        self._last_sweep: dict[str, float] = {}
        self._next_autoclaim: dict[str, str] = {}

    # -- keys -------------------------------------------------------------------------------
    def stream_key(self, queue: str) -> str:
        return f"{self._ns}:q:{queue}"

    def delayed_key(self, queue: str) -> str:
        return f"{self._ns}:delayed:{queue}"

    def dlq_key(self, queue: str) -> str:
        return f"{self._ns}:dlq:{queue}"

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("RedisStreamsBroker.connect() was not called")
        return self._redis

    async def connect(self) -> None:
        if self._redis is None:
            self._redis = connect(self._url)
        self._promote = self._redis.register_script(_PROMOTE_DUE)
        self._publish = self._redis.register_script(_PUBLISH)
        await self.health()

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def health(self) -> None:
        try:
            await self.redis.ping()
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"Redis at {self._url} did not answer: {exc}") from exc

    async def _ensure_group(self, queue: str) -> None:
        if queue in self._groups_ready:
            return
        try:
            # id 0: a group created after messages were published still sees them all.
            await self.redis.xgroup_create(self.stream_key(queue), GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups_ready.add(queue)

    # -- publishing -------------------------------------------------------------------------
    async def publish(self, queue: str, bodies: Sequence[bytes]) -> None:
        if not bodies:
            return
        try:
            await self._publish(keys=[self.stream_key(queue)], args=list(bodies))
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"could not publish to {queue}: {exc}") from exc

    def redis_stream(self, queue: str) -> str | None:
        # One RAGLINE_REDIS_URL serves the job store and this broker: the same server.
        return self.stream_key(queue)

    # -- consuming --------------------------------------------------------------------------
    async def read(self, queue: str, max_count: int, timeout_s: float) -> list[Delivery]:
        try:
            await self._ensure_group(queue)
            deliveries = await self._sweep(queue, max_count)
            if deliveries:
                return deliveries
            reply: Any = await self.redis.xreadgroup(
                GROUP,
                self.consumer_name,
                {self.stream_key(queue): ">"},
                count=max_count,
                block=max(1, int(timeout_s * 1000)),
            )
        except ResponseError as exc:
            if "NOGROUP" in str(exc):
                # The stream or group vanished (e.g. Redis restarted without persistence).
                self._groups_ready.discard(queue)
                return []
            raise BrokerUnavailable(f"could not read {queue}: {exc}") from exc
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"could not read {queue}: {exc}") from exc
        out: list[Delivery] = []
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                if fields and BODY in fields:
                    out.append(Delivery(queue, fields[BODY], _s(entry_id), 1))
        return out

    async def _sweep(self, queue: str, max_count: int) -> list[Delivery]:
        """Promotes due retries and reclaims messages from dead consumers, a few times a second."""
        now = time.monotonic()
        if now - self._last_sweep.get(queue, 0.0) < 0.25:
            return []
        self._last_sweep[queue] = now
        await self._promote(
            keys=[self.delayed_key(queue), self.stream_key(queue)], args=[time.time(), max_count]
        )
        start = self._next_autoclaim.get(queue, "0-0")
        result = await self.redis.xautoclaim(
            self.stream_key(queue),
            GROUP,
            self.consumer_name,
            min_idle_time=self._visibility_ms,
            start_id=start,
            count=max_count,
        )
        next_start, claimed = _s(result[0]), result[1]
        self._next_autoclaim[queue] = next_start
        deliveries: list[Delivery] = []
        live = [(entry_id, fields) for entry_id, fields in claimed if fields]
        counts = await self._delivery_counts(queue, [_s(e) for e, _ in live])
        for entry_id, fields in live:
            eid = _s(entry_id)
            if BODY in fields:
                deliveries.append(Delivery(queue, fields[BODY], eid, counts.get(eid, 2)))
        if deliveries:
            log.warning(
                "reclaimed %d message(s) on %s from a consumer that stopped answering",
                len(deliveries),
                queue,
            )
        return deliveries

    async def _delivery_counts(self, queue: str, ids: list[str]) -> dict[str, int]:
        if not ids:
            return {}
        rows = await self.redis.xpending_range(
            self.stream_key(queue),
            GROUP,
            min=min(ids, key=_id_key),
            max=max(ids, key=_id_key),
            count=len(ids) * 4,
            consumername=self.consumer_name,
        )
        return {_s(r["message_id"]): int(r["times_delivered"]) for r in rows}

    # -- settling ---------------------------------------------------------------------------
    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        by_queue: dict[str, list[str]] = {}
        for d in deliveries:
            by_queue.setdefault(d.queue, []).append(d.broker_id)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                for queue, ids in by_queue.items():
                    pipe.xack(self.stream_key(queue), GROUP, *ids)
                    pipe.xdel(self.stream_key(queue), *ids)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"could not ack: {exc}") from exc

    async def retry_later(self, delivery: Delivery, body: bytes, delay_s: float) -> None:
        key = self.stream_key(delivery.queue)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.zadd(self.delayed_key(delivery.queue), {body: time.time() + delay_s})
                pipe.xack(key, GROUP, delivery.broker_id)
                pipe.xdel(key, delivery.broker_id)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"could not schedule a retry: {exc}") from exc

    async def dead_letter(self, delivery: Delivery, record: DeadLetter) -> None:
        key = self.stream_key(delivery.queue)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.xadd(self.dlq_key(delivery.queue), _encode_dead_letter(record))
                pipe.xack(key, GROUP, delivery.broker_id)
                pipe.xdel(key, delivery.broker_id)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"could not dead-letter: {exc}") from exc

    async def extend(self, deliveries: Sequence[Delivery]) -> None:
        # Claiming a message for its own consumer resets its idle time.
        try:
            await self._claim_own(deliveries, idle_ms=None)
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(
                f"could not extend the claim on {len(deliveries)} message(s): {exc}"
            ) from exc

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        # Marked idle for longer than the visibility timeout, the next sweep of any consumer
        # (this one included) reclaims them at once. If Redis is away, they stay pending and
        # are reclaimed after the visibility timeout anyway.
        with contextlib.suppress(RedisError, OSError):
            await self._claim_own(deliveries, idle_ms=self._visibility_ms + 1000)

    async def _claim_own(self, deliveries: Sequence[Delivery], idle_ms: int | None) -> None:
        """XCLAIM the deliveries for this consumer, setting their idle time (JUSTID: the delivery
        count stays as it is)."""
        by_queue: dict[str, list[str]] = {}
        for d in deliveries:
            by_queue.setdefault(d.queue, []).append(d.broker_id)
        for queue, ids in by_queue.items():
            await self.redis.xclaim(
                self.stream_key(queue),
                GROUP,
                self.consumer_name,
                0,
                list[Any](ids),
                idle=idle_ms,
                justid=True,
            )

    async def depth(self, queue: str) -> int:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.xlen(self.stream_key(queue))
                pipe.zcard(self.delayed_key(queue))
                stream_len, delayed = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"could not read the depth of {queue}: {exc}") from exc
        return int(stream_len) + int(delayed)

    # -- dead letters -----------------------------------------------------------------------
    async def list_dead_letters(
        self, queue: str, *, limit: int = 100, after: str = ""
    ) -> list[DeadLetter]:
        start = f"({after}" if after else "-"
        rows: Any = await self.redis.xrange(self.dlq_key(queue), min=start, max="+", count=limit)
        return [_decode_dead_letter(queue, _s(i), f) for i, f in rows]

    async def _dead_letter_ids(self, queue: str, ids: Sequence[str]) -> list[tuple[str, bytes]]:
        if ids:
            out: list[tuple[str, bytes]] = []
            for i in ids:
                rows: Any = await self.redis.xrange(self.dlq_key(queue), min=i, max=i, count=1)
                out.extend((_s(r[0]), r[1][BODY]) for r in rows)
            return out
        every: Any = await self.redis.xrange(self.dlq_key(queue), min="-", max="+")
        return [(_s(r[0]), r[1][BODY]) for r in every]

    async def requeue_dead_letters(
        self,
        queue: str,
        ids: Sequence[str] = (),
        transform: Callable[[bytes], bytes] | None = None,
    ) -> int:
        found = await self._dead_letter_ids(queue, ids)
        if not found:
            return 0
        async with self.redis.pipeline(transaction=True) as pipe:
            for dlq_id, body in found:
                pipe.xadd(self.stream_key(queue), {BODY: transform(body) if transform else body})
                pipe.xdel(self.dlq_key(queue), dlq_id)
            await pipe.execute()
        return len(found)

    async def purge_dead_letters(self, queue: str, ids: Sequence[str] = ()) -> int:
        if not ids:
            count = int(await self.redis.xlen(self.dlq_key(queue)))
            await self.redis.delete(self.dlq_key(queue))
            return count
        return int(await self.redis.xdel(self.dlq_key(queue), *ids))


def _s(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _encode_dead_letter(record: DeadLetter) -> dict[Any, Any]:
    meta = {
        "job_id": record.job_id,
        "error_type": record.error_type,
        "error_message": record.error_message,
        "attempts": record.attempts,
        "first_failure_time": record.first_failure_time,
        "last_failure_time": record.last_failure_time,
    }
    return {BODY: record.body, b"m": json.dumps(meta).encode()}


def _decode_dead_letter(queue: str, dlq_id: str, fields: dict[bytes, bytes]) -> DeadLetter:
    meta = json.loads(fields.get(b"m", b"{}"))
    return DeadLetter(
        queue=queue,
        body=fields[BODY],
        job_id=meta.get("job_id", ""),
        error_type=meta.get("error_type", ""),
        error_message=meta.get("error_message", ""),
        attempts=int(meta.get("attempts", 0)),
        first_failure_time=float(meta.get("first_failure_time", 0.0)),
        last_failure_time=float(meta.get("last_failure_time", 0.0)),
        dead_letter_id=dlq_id,
    )
