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
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from ragline.broker.base import Backlog, BrokerAdapter, DeadLetter, Delivery
from ragline.errors import BrokerUnavailable
from ragline.redis_client import connect, text
from ragline.redis_scripts import lua_script

log = logging.getLogger(__name__)

GROUP = "workers"
BODY = b"b"

# A stream entry id: milliseconds and a sequence number, each an unsigned 64-bit integer.
_ENTRY_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
_MAX_U64 = 2**64 - 1


def default_consumer_name() -> str:
    """host-pid-random: unique per process, readable in XINFO CONSUMERS."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class RedisStreamsBroker(BrokerAdapter):
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
        self._safe_url = _without_password(url)
        self._ns = namespace
        self.consumer_name = consumer_name or default_consumer_name()
        self._visibility_ms = int(visibility_timeout_s * 1000)
        self._redis: aioredis.Redis | None = client
        self._groups_ready: set[str] = set()
        # Queues this process has joined as a consumer (see read).
        self._joined: set[str] = set()
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
            # Named as the consumer, so that consumer_count can tell a live one from a dead one.
            self._redis = connect(self._url, client_name=self.consumer_name)
        self._promote = self._redis.register_script(lua_script("broker", "promote_due"))
        self._publish = self._redis.register_script(lua_script("broker", "publish"))
        await self.health()

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def health(self) -> None:
        async with self._guard("answer a health check"):
            await self.redis.ping()

    @contextlib.asynccontextmanager
    async def _guard(self, what: str) -> AsyncIterator[None]:
        """Re-raises Redis and network errors as BrokerUnavailable, saying what failed."""
        try:
            yield
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"Redis at {self._safe_url}: could not {what}: {exc}") from exc

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
        async with self._guard(f"publish to {queue}"):
            await self._publish(keys=[self.stream_key(queue)], args=list(bodies))

    def redis_stream(self, queue: str) -> str | None:
        # One RAGLINE_REDIS_URL serves the job store and this broker: the same server.
        return self.stream_key(queue)

    # -- consuming --------------------------------------------------------------------------
    async def read(self, queue: str, max_count: int, timeout_s: float) -> list[Delivery]:
        async with self._guard(f"read {queue}"):
            try:
                await self._ensure_group(queue)
                if queue not in self._joined:
                    # Joined up front: Redis only adds a consumer to the group when a read hands
                    # it something, and consumer_count must see a reader of an empty queue.
                    await self.redis.xgroup_createconsumer(
                        self.stream_key(queue), GROUP, self.consumer_name
                    )
                    self._joined.add(queue)
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
                if "NOGROUP" not in str(exc):
                    raise
                # The stream or group vanished (e.g. Redis restarted without persistence).
                self._groups_ready.discard(queue)
                self._joined.discard(queue)
                return []
        out: list[Delivery] = []
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                if fields and BODY in fields:
                    out.append(Delivery(queue, fields[BODY], text(entry_id), 1))
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
        next_start, claimed = text(result[0]), result[1]
        self._next_autoclaim[queue] = next_start
        deliveries: list[Delivery] = []
        live = [(entry_id, fields) for entry_id, fields in claimed if fields]
        counts = await self._delivery_counts(queue, [text(e) for e, _ in live])
        for entry_id, fields in live:
            eid = text(entry_id)
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
        return {text(r["message_id"]): int(r["times_delivered"]) for r in rows}

    # -- settling ---------------------------------------------------------------------------
    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        by_queue: dict[str, list[str]] = {}
        for d in deliveries:
            by_queue.setdefault(d.queue, []).append(d.broker_id)
        async with self._guard("ack"), self.redis.pipeline(transaction=True) as pipe:
            for queue, ids in by_queue.items():
                pipe.xack(self.stream_key(queue), GROUP, *ids)
                pipe.xdel(self.stream_key(queue), *ids)
            await pipe.execute()

    async def retry_later(self, delivery: Delivery, body: bytes, delay_s: float) -> None:
        key = self.stream_key(delivery.queue)
        async with (
            self._guard(f"schedule a retry on {delivery.queue}"),
            self.redis.pipeline(transaction=True) as pipe,
        ):
            pipe.zadd(self.delayed_key(delivery.queue), {body: time.time() + delay_s})
            pipe.xack(key, GROUP, delivery.broker_id)
            pipe.xdel(key, delivery.broker_id)
            await pipe.execute()

    async def dead_letter(self, delivery: Delivery, record: DeadLetter) -> None:
        key = self.stream_key(delivery.queue)
        async with (
            self._guard(f"dead-letter a message of {delivery.queue}"),
            self.redis.pipeline(transaction=True) as pipe,
        ):
            pipe.xadd(self.dlq_key(delivery.queue), _encode_dead_letter(record))
            pipe.xack(key, GROUP, delivery.broker_id)
            pipe.xdel(key, delivery.broker_id)
            await pipe.execute()

    async def extend(self, deliveries: Sequence[Delivery]) -> None:
        # Claiming a message for its own consumer resets its idle time.
        async with self._guard(f"extend the claim on {len(deliveries)} message(s)"):
            await self._claim_own(deliveries, idle_ms=None)

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        # Marked idle for longer than the visibility timeout, the next sweep of any consumer
        # (this one included) reclaims them at once. If Redis is away, they stay pending and
        # are reclaimed after the visibility timeout anyway.
        with contextlib.suppress(BrokerUnavailable):
            async with self._guard("release deliveries"):
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
        async with (
            self._guard(f"read the depth of {queue}"),
            self.redis.pipeline(transaction=False) as pipe,
        ):
            pipe.xlen(self.stream_key(queue))
            pipe.zcard(self.delayed_key(queue))
            stream_len, delayed = await pipe.execute()
        return int(stream_len) + int(delayed)

    async def backlog(self, queue: str) -> Backlog:
        # Acked entries are deleted, so the stream holds exactly the waiting and the pending
        # (in flight) ones; the first waiting entry follows the group's last-delivered id, and
        # its id is its publish time on the Redis server's clock (read in the same round trip).
        stream = self.stream_key(queue)
        async with self._guard(f"read the backlog of {queue}"):
            await self._ensure_group(queue)
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.xlen(stream)
                pipe.xinfo_groups(stream)
                pipe.zcard(self.delayed_key(queue))
                pipe.xlen(self.dlq_key(queue))
                pipe.time()
                length, groups, delayed, dead, (secs, micros) = await pipe.execute()
            group = next(g for g in groups if text(g["name"]) == GROUP)
            pending = int(group["pending"])
            waiting = max(0, int(length) - pending)
            age = 0.0
            if waiting:
                first: Any = await self.redis.xrange(
                    stream, min=f"({text(group['last-delivered-id'])}", max="+", count=1
                )
                if first:
                    published_ms = _id_key(text(first[0][0]))[0]
                    age = max(0.0, int(secs) + int(micros) / 1e6 - published_ms / 1000)
        return Backlog(
            waiting=waiting,
            in_flight=pending,
            delayed=int(delayed),
            dead_letters=int(dead),
            oldest_waiting_age_s=age,
        )

    async def consumer_count(self, queue: str) -> int:
        # A group keeps a consumer's entry after its process dies: count those whose process
        # still holds a connection under the consumer's name. Where CLIENT LIST is not allowed
        # (some managed Redis), count those that read or claimed within a visibility timeout.
        async with self._guard(f"list the consumers of {queue}"):
            await self._ensure_group(queue)
            consumers = await self.redis.xinfo_consumers(self.stream_key(queue), GROUP)
            try:
                connected = {text(c.get("name", "")) for c in await self.redis.client_list()}
            except ResponseError:
                return sum(1 for c in consumers if int(c["idle"]) < self._visibility_ms)
        return sum(1 for c in consumers if text(c["name"]) in connected)

    # -- dead letters -----------------------------------------------------------------------
    def is_dead_letter_id(self, value: str) -> bool:
        return _entry_id(value) is not None

    async def list_dead_letters(
        self, queue: str, *, limit: int = 100, after: str = ""
    ) -> list[DeadLetter]:
        if _entry_id(after) == (_MAX_U64, _MAX_U64):
            return []  # nothing can follow the largest id, and Redis refuses the range
        start = f"({after}" if after else "-"
        async with self._guard(f"list the dead letters of {queue}"):
            rows: Any = await self.redis.xrange(
                self.dlq_key(queue), min=start, max="+", count=limit
            )
        return [_decode_dead_letter(queue, text(i), f) for i, f in rows]

    async def _find_dead_letters(self, queue: str, ids: Sequence[str]) -> list[DeadLetter]:
        """The named records that exist (all of them when `ids` is empty), oldest first."""
        if not ids:
            every: Any = await self.redis.xrange(self.dlq_key(queue), min="-", max="+")
            return [_decode_dead_letter(queue, text(i), f) for i, f in every]
        async with self.redis.pipeline(transaction=False) as pipe:
            for i in dict.fromkeys(ids):
                pipe.xrange(self.dlq_key(queue), min=i, max=i, count=1)
            replies: list[Any] = await pipe.execute()
        return [_decode_dead_letter(queue, text(i), f) for rows in replies for i, f in rows]

    async def requeue_dead_letters(
        self,
        queue: str,
        ids: Sequence[str] = (),
        transform: Callable[[bytes], bytes] | None = None,
    ) -> list[DeadLetter]:
        async with self._guard(f"requeue the dead letters of {queue}"):
            found = await self._find_dead_letters(queue, ids)
            if not found:
                return []
            # One transaction: each record is either back on the queue or still a dead letter.
            async with self.redis.pipeline(transaction=True) as pipe:
                for letter in found:
                    body = transform(letter.body) if transform else letter.body
                    pipe.xadd(self.stream_key(queue), {BODY: body})
                    pipe.xdel(self.dlq_key(queue), letter.dead_letter_id)
                await pipe.execute()
        return found

    async def purge_dead_letters(self, queue: str, ids: Sequence[str] = ()) -> int:
        async with self._guard(f"purge the dead letters of {queue}"):
            if not ids:
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.xlen(self.dlq_key(queue))
                    pipe.delete(self.dlq_key(queue))
                    count, _ = await pipe.execute()
                return int(count)
            return int(await self.redis.xdel(self.dlq_key(queue), *ids))


def _entry_id(value: str) -> tuple[int, int] | None:
    """A stream entry id's two numbers, or None when `value` is not one."""
    match = _ENTRY_ID.fullmatch(value)
    if match is None:
        return None
    ms, seq = int(match[1]), int(match[2])
    return (ms, seq) if ms <= _MAX_U64 and seq <= _MAX_U64 else None


def _without_password(url: str) -> str:
    """`url` fit for messages and logs: any password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username or ''}:***@{host}").geturl()


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
