"""The broker on RabbitMQ (aio-pika): a quorum queue per stage queue, TTL queues for retries.

Names, under the deployment's namespace `ns`, for a queue `q`:

    {ns}.q.{q}             the stage queue: durable, quorum.
                           x-queue-type=quorum, x-delivery-limit=max_deliveries,
                           x-dead-letter-exchange={ns}.dlx, x-dead-letter-routing-key={ns}.dlq.{q},
                           x-dead-letter-strategy=at-least-once, x-overflow=reject-publish
    {ns}.dlx               a durable direct exchange: where the server dead-letters a message
                           of {ns}.q.{q}, under the routing key {ns}.dlq.{q}
    {ns}.limbo.{q}         durable, classic, bound to {ns}.dlx under {ns}.dlq.{q}: what the server
                           dead-lettered, until the stage's runner fails its job (see below)
    {ns}.dlq.{q}           the dead-letter queue: durable, classic (see below)
    {ns}.delay.{q}.{ms}    one retry queue per delay bucket (100 ms * 2**k): durable, classic.
                           x-message-ttl={ms}, x-dead-letter-exchange="" (the default exchange),
                           x-dead-letter-routing-key={ns}.q.{q}, x-expires=24 h

How the `Broker` promises map to AMQP:
- publish: persistent messages (each with a time-ordered message_id) on a channel with publisher
  confirms and mandatory routing; a batch is published concurrently and returns once RabbitMQ has
  confirmed every message.
- read: pull over push. The first read of a queue starts a consumer (manual acks, basic.qos
  prefetch) that fills a local buffer; read takes up to `max_count` from it. A message pushed to
  this process but not yet read is still unacked on the server, so `prefetch` bounds how much one
  consumer can hold back from its competitors.
- redelivery: a consumer that dies loses its connection and RabbitMQ returns its unacked messages
  at once; there is no visibility timeout to wait for (RabbitMQ's own `consumer_timeout`, a server
  setting, covers a consumer that is alive but stuck), so RAGLINE_VISIBILITY_TIMEOUT_S does not
  apply here. Quorum queues count returns in `x-delivery-count`;
  after `max_deliveries` returns the server dead-letters the message (reason `delivery_limit`),
  so a message that kills its worker every time leaves the stage queue. It lands in the limbo
  queue, not the dead-letter queue: the server cannot read task envelopes, so it cannot fail the
  job. read() hands limbo messages out beside the stage queue's, counted as delivered once more
  than the limit, and the stage runner's delivery-count backstop dead-letters them as it does
  any message delivered too often: job failed, a record with the job id and the reason.
- retry_later: publish the next attempt to the delay bucket at or above the delay (confirmed), then
  ack the original. Not atomic: a crash between the two leaves both the retry and the original
  (a duplicate, which idempotent stages absorb), never neither. Delays above the largest bucket
  (819.2 s) are cut to it.
- dead_letter: publish the original body with the record's fields as `x-ragline-*` headers to the
  dead-letter queue (confirmed), then ack: the same duplicate-not-loss trade as retry_later.
- backlog: ready messages of the stage queue and limbo (waiting), of the delay queues (delayed)
  and of the dead-letter queue. In-flight counts and the oldest waiting message's age are not
  reported (None): AMQP tells neither without the management API or consuming the message.
- depth: ready messages of the stage queue and of its delay queues (a declare answers with the
  ready count only) plus the messages this process holds unacked. Messages other processes hold
  unacked are not counted: an approximation, good enough for backpressure and autoscaling.
- dead letters: AMQP has no random access, so listing takes messages from the head of the
  dead-letter queue with basic.get without acking them, then returns them all (nack, requeue).
  Classic queues put requeued messages back in their old places, which keeps the order stable,
  and do not count deliveries (a quorum queue would count each listing as a delivery). One
  process lists at a time; two processes listing at once may each see part of the queue.
  Record ids are the messages' message_id (see new_message_id); ids sort in publish time, so
  paging after an id that has since left the queue continues with the later ids. A message
  published by something else, without such an id, is named by a hash of its id and body.

The classic queues (dead letters, delays) are durable and hold persistent messages, which is enough
on one node; in a cluster, a delay queue's node going down delays its retries until it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aio_pika
import aiormq
import aiormq.abc
import pamqp.exceptions
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
    AbstractRobustQueue,
)
from yarl import URL

from ragline.broker.base import Backlog, BrokerAdapter, DeadLetter, Delivery
from ragline.errors import BrokerUnavailable

log = logging.getLogger(__name__)

# Retry delays are rounded up to one of these, so one TTL queue per bucket keeps FIFO expiry exact.
DELAY_BUCKETS_MS: tuple[int, ...] = tuple(100 * 2**k for k in range(14))  # 0.1 s … 819.2 s
# Unused delay queues (an abandoned namespace) vanish after a day; each use re-declares them.
DELAY_QUEUE_EXPIRES_MS = 24 * 3600 * 1000
# After the first message of a read, how long to wait for the rest of a burst of pushed messages.
_READ_LINGER_S = 0.005

_HEADER = "x-ragline-"
# The two shapes of dead-letter record ids: new_message_id's, and _dead_letter_id's hash.
_DEAD_LETTER_ID = re.compile(r"[0-9a-f]{12}-[0-9a-f]{20}|sha256-[0-9a-f]{32}")
_LIBRARY_ERRORS: tuple[type[BaseException], ...] = (
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    pamqp.exceptions.PAMQPException,
    OSError,
    TimeoutError,
)


def default_consumer_name() -> str:
    """host-pid-random: unique per process, shown as the connection name in RabbitMQ."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def new_message_id() -> str:
    """A unique id that sorts in publish time: milliseconds since the epoch, then 80 random bits."""
    return f"{time.time_ns() // 1_000_000:012x}-{uuid.uuid4().hex[:20]}"


def delay_bucket_ms(delay_s: float) -> int:
    """The smallest delay bucket not shorter than `delay_s` (the largest for longer delays)."""
    wanted = delay_s * 1000
    for bucket in DELAY_BUCKETS_MS:
        if bucket >= wanted:
            return bucket
    return DELAY_BUCKETS_MS[-1]


@dataclass
class _Consumer:
    """One queue's consumer: its channel, and the messages pushed to it but not yet read."""

    channel: AbstractRobustChannel
    queue: AbstractRobustQueue
    tag: str
    limbo: AbstractRobustQueue
    limbo_tag: str
    buffer: asyncio.Queue[AbstractIncomingMessage] = field(default_factory=asyncio.Queue)


class RabbitMQBroker(BrokerAdapter):
    """RabbitMQ through aio-pika: quorum queues, publisher confirms, manual acks."""

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "ragline",
        consumer_name: str | None = None,
        prefetch: int = 128,
        max_deliveries: int = 5,
        reconnect_interval_s: float = 1.0,
        operation_timeout_s: float = 10.0,
    ) -> None:
        self._url = url
        self._safe_url = str(URL(url).with_password(None)) if URL(url).password else url
        self._ns = namespace
        self.consumer_name = consumer_name or default_consumer_name()
        self._prefetch = max(1, prefetch)
        self._max_deliveries = max_deliveries
        self._reconnect_interval_s = reconnect_interval_s
        self._op_timeout_s = operation_timeout_s
        self._conn: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None  # publishes (confirmed) and declares
        self._ready: set[str] = set()
        self._consumers: dict[str, _Consumer] = {}
        # Messages pushed to this process and not yet settled, per queue (for depth).
        self._held: dict[str, set[AbstractIncomingMessage]] = {}
        self._setup_lock = asyncio.Lock()
        self._dlq_lock = asyncio.Lock()

    # -- names ------------------------------------------------------------------------------
    def queue_name(self, queue: str) -> str:
        return f"{self._ns}.q.{queue}"

    def dlq_name(self, queue: str) -> str:
        return f"{self._ns}.dlq.{queue}"

    def limbo_name(self, queue: str) -> str:
        return f"{self._ns}.limbo.{queue}"

    def delay_name(self, queue: str, bucket_ms: int) -> str:
        return f"{self._ns}.delay.{queue}.{bucket_ms}"

    @property
    def dlx_name(self) -> str:
        return f"{self._ns}.dlx"

    def _queue_arguments(self, queue: str) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": self._max_deliveries,
            "x-dead-letter-exchange": self.dlx_name,
            "x-dead-letter-routing-key": self.dlq_name(queue),
            # The server keeps a message until the dead-letter queue has confirmed it
            # (RabbitMQ >= 3.10); this strategy requires x-overflow=reject-publish.
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    def _delay_arguments(self, queue: str, bucket_ms: int) -> dict[str, Any]:
        return {
            "x-message-ttl": bucket_ms,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": self.queue_name(queue),
            "x-expires": DELAY_QUEUE_EXPIRES_MS,
        }

    # -- lifecycle --------------------------------------------------------------------------
    async def connect(self) -> None:
        if self._conn is not None and not self._conn.is_closed:
            return
        try:
            async with asyncio.timeout(self._op_timeout_s):
                self._conn = await aio_pika.connect_robust(
                    self._url,
                    reconnect_interval=self._reconnect_interval_s,
                    client_properties={"connection_name": self.consumer_name},
                )
                self._channel = await self._conn.channel(
                    publisher_confirms=True, on_return_raises=True
                )
        except _LIBRARY_ERRORS as exc:
            await self._drop_connection()
            raise BrokerUnavailable(
                f"RabbitMQ at {self._safe_url} did not answer: {exc!r}"
            ) from exc

    async def close(self) -> None:
        for queue, consumer in list(self._consumers.items()):
            with contextlib.suppress(*_LIBRARY_ERRORS):
                async with asyncio.timeout(2):
                    await consumer.queue.cancel(consumer.tag)
                    await consumer.limbo.cancel(consumer.limbo_tag)
            self._held.pop(queue, None)
        self._consumers.clear()
        self._ready.clear()
        await self._drop_connection()

    async def _drop_connection(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None:
            # Closing the connection returns every unacked message to its queue.
            with contextlib.suppress(*_LIBRARY_ERRORS):
                async with asyncio.timeout(5):
                    await conn.close()

    async def health(self) -> None:
        async with self._guard("answer a health check"):
            channel = await self._underlay()
            await channel.exchange_declare("amq.direct", exchange_type="direct", passive=True)

    def _live_connection(self) -> AbstractRobustConnection:
        if self._conn is None or self._conn.is_closed:
            raise BrokerUnavailable(f"not connected to RabbitMQ at {self._safe_url}")
        if not self._conn.connected.is_set():
            raise BrokerUnavailable(f"RabbitMQ at {self._safe_url} is away; reconnecting")
        return self._conn

    async def _underlay(self) -> aiormq.abc.AbstractChannel:
        self._live_connection()
        assert self._channel is not None
        return await self._channel.get_underlay_channel()

    @contextlib.asynccontextmanager
    async def _guard(self, what: str) -> AsyncIterator[None]:
        """Bounds an operation in time and re-raises library errors as BrokerUnavailable."""
        self._live_connection()
        try:
            async with asyncio.timeout(self._op_timeout_s):
                yield
        except _LIBRARY_ERRORS as exc:
            raise BrokerUnavailable(
                f"RabbitMQ at {self._safe_url}: could not {what}: {exc!r}"
            ) from exc

    # -- topology ---------------------------------------------------------------------------
    async def _ensure_queue(self, queue: str) -> None:
        """Declares the queue, its dead-letter queue and its delay queues, once per process."""
        if queue in self._ready:
            return
        async with self._setup_lock:
            if queue in self._ready:
                return
            channel = await self._underlay()
            await channel.exchange_declare(self.dlx_name, exchange_type="direct", durable=True)
            await channel.queue_declare(self.dlq_name(queue), durable=True)
            # The server's dead letters go to limbo, no longer straight to the dead-letter queue
            # as before limbo existed. Limbo is bound before the old route is removed (a no-op
            # where it is absent) and before a new stage queue exists, so none is unroutable.
            await channel.queue_declare(self.limbo_name(queue), durable=True)
            await channel.queue_bind(self.limbo_name(queue), self.dlx_name, self.dlq_name(queue))
            await channel.queue_unbind(self.dlq_name(queue), self.dlx_name, self.dlq_name(queue))
            await channel.queue_declare(
                self.queue_name(queue), durable=True, arguments=self._queue_arguments(queue)
            )
            for bucket in DELAY_BUCKETS_MS:
                await self._declare_delay(channel, queue, bucket)
            self._ready.add(queue)

    async def _declare_delay(
        self, channel: aiormq.abc.AbstractChannel, queue: str, bucket_ms: int
    ) -> int:
        ok = await channel.queue_declare(
            self.delay_name(queue, bucket_ms),
            durable=True,
            arguments=self._delay_arguments(queue, bucket_ms),
        )
        return int(ok.message_count or 0)

    # -- publishing -------------------------------------------------------------------------
    async def publish(self, queue: str, bodies: Sequence[bytes]) -> None:
        if not bodies:
            return
        async with self._guard(f"publish to {queue}"):
            await self._ensure_queue(queue)
            await self._publish_many(self.queue_name(queue), [(b, None) for b in bodies])

    async def _publish_many(
        self, routing_key: str, items: Sequence[tuple[bytes, dict[str, Any] | None]]
    ) -> None:
        """Publishes concurrently; returns once RabbitMQ confirmed all (raises if any failed)."""
        assert self._channel is not None
        exchange = self._channel.default_exchange
        try:
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            body,
                            headers=headers,
                            message_id=new_message_id(),
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        routing_key=routing_key,
                        mandatory=True,
                    )
                    for body, headers in items
                )
            )
        except aiormq.exceptions.PublishError:
            # Unroutable: the queue vanished (deleted, or a broker reset); declare it again next time.
            self._ready.clear()
            raise

    # -- consuming --------------------------------------------------------------------------
    async def read(self, queue: str, max_count: int, timeout_s: float) -> list[Delivery]:
        async with self._guard(f"start consuming {queue}"):
            consumer = await self._consumer(queue)
        self._live_connection()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        out: list[Delivery] = []
        while len(out) < max_count:
            try:
                msg = consumer.buffer.get_nowait()
            except asyncio.QueueEmpty:
                wait = _READ_LINGER_S if out else deadline - loop.time()
                if wait <= 0:
                    break
                try:
                    async with asyncio.timeout(wait):
                        msg = await consumer.buffer.get()
                except TimeoutError:
                    break
            if _is_stale(msg):
                # Pushed on a channel that has since closed: the server has taken it back.
                self._held.get(queue, set()).discard(msg)
                continue
            headers = msg.headers or {}
            count = _as_int(headers.get("x-delivery-count", 0)) + 1
            if msg.exchange == self.dlx_name:
                # From limbo: past the server's limit, whatever the header says.
                count = max(count, self._max_deliveries + 1)
            out.append(
                Delivery(
                    queue=queue,
                    body=msg.body,
                    broker_id=str(msg.delivery_tag),
                    delivery_count=count,
                    handle=msg,
                )
            )
        return out

    async def _consumer(self, queue: str) -> _Consumer:
        consumer = self._consumers.get(queue)
        if consumer is not None:
            return consumer
        await self._ensure_queue(queue)
        async with self._setup_lock:
            consumer = self._consumers.get(queue)
            if consumer is not None:
                return consumer
            conn = self._live_connection()
            channel = await conn.channel()
            await channel.set_qos(prefetch_count=self._prefetch)
            # Declared through the robust channel, so a reconnect re-declares it and re-consumes.
            amqp_queue = await channel.declare_queue(
                self.queue_name(queue), durable=True, arguments=self._queue_arguments(queue)
            )
            limbo = await channel.declare_queue(self.limbo_name(queue), durable=True)
            buffer: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
            held = self._held.setdefault(queue, set())

            async def on_message(msg: AbstractIncomingMessage) -> None:
                held.add(msg)
                buffer.put_nowait(msg)

            tag = await amqp_queue.consume(
                on_message, no_ack=False, consumer_tag=f"{self.consumer_name}.{queue}"
            )
            # Limbo feeds the same buffer: the runner sees its messages as reads of the queue.
            limbo_tag = await limbo.consume(on_message, no_ack=False, consumer_tag=f"{tag}.limbo")
            consumer = _Consumer(channel, amqp_queue, tag, limbo, limbo_tag, buffer)
            self._consumers[queue] = consumer
            return consumer

    # -- settling ---------------------------------------------------------------------------
    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        async with self._guard("ack"):
            for d in deliveries:
                await self._settle(d)

    async def _settle(self, delivery: Delivery) -> None:
        msg = delivery.handle
        if not isinstance(msg, AbstractIncomingMessage):
            raise TypeError(f"not a RabbitMQ delivery: {delivery!r}")
        self._held.get(delivery.queue, set()).discard(msg)
        if msg.processed:
            return  # acked before: acking twice is a no-op, as with Redis
        # On a closed channel this raises: the server has already taken the message back and
        # delivers it again, so the caller must not treat it as done.
        await msg.ack()

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            msg = delivery.handle
            if not isinstance(msg, AbstractIncomingMessage) or msg.processed:
                continue
            self._held.get(delivery.queue, set()).discard(msg)
            # A closed channel has already given the message back.
            with contextlib.suppress(Exception):
                await msg.nack(requeue=True)

    async def retry_later(self, delivery: Delivery, body: bytes, delay_s: float) -> None:
        bucket = delay_bucket_ms(delay_s)
        async with self._guard(f"schedule a retry on {delivery.queue}"):
            await self._ensure_queue(delivery.queue)
            # Declared again on each use: it keeps an idle bucket from expiring with retries in it.
            await self._declare_delay(await self._underlay(), delivery.queue, bucket)
            await self._publish_many(self.delay_name(delivery.queue, bucket), [(body, None)])
            # Only now: a crash before this ack leaves a duplicate, never a lost message.
            await self._settle(delivery)

    async def dead_letter(self, delivery: Delivery, record: DeadLetter) -> None:
        headers: dict[str, Any] = {
            f"{_HEADER}job-id": record.job_id,
            f"{_HEADER}error-type": record.error_type,
            f"{_HEADER}error-message": record.error_message,
            f"{_HEADER}attempts": record.attempts,
            # As text: exact, and free of AMQP's float encodings.
            f"{_HEADER}first-failure-time": repr(record.first_failure_time),
            f"{_HEADER}last-failure-time": repr(record.last_failure_time),
        }
        async with self._guard(f"dead-letter a message of {delivery.queue}"):
            await self._ensure_queue(delivery.queue)
            await self._publish_many(self.dlq_name(delivery.queue), [(record.body, headers)])
            await self._settle(delivery)

    async def depth(self, queue: str) -> int:
        async with self._guard(f"read the depth of {queue}"):
            await self._ensure_queue(queue)
            channel = await self._underlay()
            ok = await channel.queue_declare(
                self.queue_name(queue), durable=True, arguments=self._queue_arguments(queue)
            )
            total = int(ok.message_count or 0)
            for bucket in DELAY_BUCKETS_MS:
                total += await self._declare_delay(channel, queue, bucket)
        held = self._held.get(queue, set())
        for msg in [m for m in held if _is_stale(m)]:
            held.discard(msg)
        return total + len(held)

    async def backlog(self, queue: str) -> Backlog:
        # A declare answers with a queue's ready messages only: unacked ones are not counted
        # (in_flight unknown; only the management API knows), and no message can be looked at
        # without consuming it, so the age of the oldest is unknown too. Limbo's messages wait
        # to be read beside the stage queue's.
        async with self._guard(f"read the backlog of {queue}"):
            await self._ensure_queue(queue)
            channel = await self._underlay()
            ready = await channel.queue_declare(
                self.queue_name(queue), durable=True, arguments=self._queue_arguments(queue)
            )
            limbo = await channel.queue_declare(self.limbo_name(queue), durable=True)
            dead = await channel.queue_declare(self.dlq_name(queue), durable=True)
            delayed = 0
            for bucket in DELAY_BUCKETS_MS:
                delayed += await self._declare_delay(channel, queue, bucket)
        return Backlog(
            waiting=int(ready.message_count or 0) + int(limbo.message_count or 0),
            in_flight=None,
            delayed=delayed,
            dead_letters=int(dead.message_count or 0),
            oldest_waiting_age_s=None,
        )

    async def consumer_count(self, queue: str) -> int:
        async with self._guard(f"count the consumers of {queue}"):
            await self._ensure_queue(queue)
            ok = await (await self._underlay()).queue_declare(
                self.queue_name(queue), durable=True, arguments=self._queue_arguments(queue)
            )
        return int(ok.consumer_count or 0)

    # -- dead letters -----------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _dead_letter_session(
        self, queue: str
    ) -> AsyncIterator[tuple[aio_pika.abc.AbstractQueue, list[AbstractIncomingMessage]]]:
        """A channel of its own on the dead-letter queue; what it took and did not settle goes
        back (nack with requeue, in order) when the block ends, and at worst when it closes."""
        async with self._dlq_lock, self._guard(f"read the dead letters of {queue}"):
            await self._ensure_queue(queue)
            conn = self._live_connection()
            channel = await conn.channel(publisher_confirms=False)
            taken: list[AbstractIncomingMessage] = []
            try:
                dlq = await channel.get_queue(self.dlq_name(queue), ensure=False)
                yield dlq, taken
                for msg in taken:
                    if not msg.processed:
                        await msg.nack(requeue=True)
            finally:
                with contextlib.suppress(*_LIBRARY_ERRORS):
                    await channel.close()

    async def _take(
        self, dlq: aio_pika.abc.AbstractQueue, taken: list[AbstractIncomingMessage]
    ) -> AbstractIncomingMessage | None:
        msg = await dlq.get(no_ack=False, fail=False)
        if msg is not None:
            taken.append(msg)
        return msg

    def is_dead_letter_id(self, value: str) -> bool:
        return _DEAD_LETTER_ID.fullmatch(value) is not None

    async def list_dead_letters(
        self, queue: str, *, limit: int = 100, after: str = ""
    ) -> list[DeadLetter]:
        async with self._dead_letter_session(queue) as (dlq, taken):
            seen: list[DeadLetter] = []
            out: list[DeadLetter] = []
            found = not after
            while len(out) < limit:
                msg = await self._take(dlq, taken)
                if msg is None:
                    break
                letter = self._decode(queue, msg)
                if found:
                    out.append(letter)
                else:
                    seen.append(letter)
                    found = letter.dead_letter_id == after
        if not found:
            # `after` left the queue since it was listed: go on with the ids published after it.
            out = [x for x in seen if x.dead_letter_id > after][:limit]
        return out

    async def requeue_dead_letters(
        self,
        queue: str,
        ids: Sequence[str] = (),
        transform: Callable[[bytes], bytes] | None = None,
    ) -> list[DeadLetter]:
        wanted = set(ids)
        async with self._dead_letter_session(queue) as (dlq, taken):
            chosen = [m for m in await self._take_all(dlq, taken) if self._chosen(queue, m, wanted)]
            if chosen:
                bodies = [transform(m.body) if transform else m.body for m in chosen]
                await self._publish_many(self.queue_name(queue), [(b, None) for b in bodies])
                for msg in chosen:  # after the confirms: a crash between leaves a duplicate
                    await msg.ack()
        return [self._decode(queue, m) for m in chosen]

    async def purge_dead_letters(self, queue: str, ids: Sequence[str] = ()) -> int:
        wanted = set(ids)
        async with self._dead_letter_session(queue) as (dlq, taken):
            chosen = [m for m in await self._take_all(dlq, taken) if self._chosen(queue, m, wanted)]
            for msg in chosen:
                await msg.ack()
        return len(chosen)

    async def _take_all(
        self, dlq: aio_pika.abc.AbstractQueue, taken: list[AbstractIncomingMessage]
    ) -> list[AbstractIncomingMessage]:
        while await self._take(dlq, taken) is not None:
            pass
        return list(taken)

    def _chosen(self, queue: str, msg: AbstractIncomingMessage, wanted: set[str]) -> bool:
        return not wanted or _dead_letter_id(msg) in wanted

    def _decode(self, queue: str, msg: AbstractIncomingMessage) -> DeadLetter:
        headers = msg.headers or {}
        if f"{_HEADER}error-type" in headers:
            return DeadLetter(
                queue=queue,
                body=msg.body,
                job_id=_as_str(headers.get(f"{_HEADER}job-id")),
                error_type=_as_str(headers.get(f"{_HEADER}error-type")),
                error_message=_as_str(headers.get(f"{_HEADER}error-message")),
                attempts=_as_int(headers.get(f"{_HEADER}attempts")),
                first_failure_time=_as_float(headers.get(f"{_HEADER}first-failure-time")),
                last_failure_time=_as_float(headers.get(f"{_HEADER}last-failure-time")),
                dead_letter_id=_dead_letter_id(msg),
            )
        return self._decode_broker_dead_letter(queue, msg, headers)

    def _decode_broker_dead_letter(
        self, queue: str, msg: AbstractIncomingMessage, headers: dict[str, Any]
    ) -> DeadLetter:
        """A message RabbitMQ dead-lettered itself: no ragline headers, only x-death."""
        deaths = [d for d in _as_list(headers.get("x-death")) if isinstance(d, dict)]
        # x-death lists the most recent death first; a retried message also carries the
        # "expired" death from its delay queue, so look for the stage queue's own entry.
        death = next((d for d in deaths if d.get("queue") == self.queue_name(queue)), None)
        if death is None and deaths:
            death = deaths[0]
        reason = _as_str((death or {}).get("reason") or headers.get("x-first-death-reason"))
        when = (death or {}).get("time")
        at = when.timestamp() if isinstance(when, datetime) else 0.0
        if reason == "delivery_limit":
            error_type = "DeliveryLimitExceeded"
            message = (
                f"RabbitMQ dead-lettered the message after more than {self._max_deliveries} "
                f"deliveries of {self.queue_name(queue)} without an ack (x-delivery-limit): "
                "it likely crashes or stalls its worker"
            )
            attempts = _as_int(headers.get("x-delivery-count")) or self._max_deliveries + 1
        else:
            error_type = "DeadLetteredByBroker"
            message = f"RabbitMQ dead-lettered the message (reason: {reason or 'unknown'})"
            attempts = _as_int(headers.get("x-delivery-count"))
        return DeadLetter(
            queue=queue,
            body=msg.body,
            job_id="",  # the broker does not read task envelopes
            error_type=error_type,
            error_message=message,
            attempts=attempts,
            first_failure_time=at,
            last_failure_time=at,
            dead_letter_id=_dead_letter_id(msg),
        )


def _is_stale(msg: AbstractIncomingMessage) -> bool:
    try:
        msg.channel  # noqa: B018 - raises once the channel it came on has closed
    except aiormq.exceptions.ChannelInvalidStateError:
        return True
    return False


def _dead_letter_id(msg: AbstractIncomingMessage) -> str:
    if msg.message_id and _DEAD_LETTER_ID.fullmatch(msg.message_id):
        return msg.message_id
    # Published by something else, with no id or one of its own shape: its id and content are the
    # most stable name it has, and a hash keeps every record id to the shapes clients may send.
    named = msg.message_id.encode() + b"\0" + msg.body if msg.message_id else msg.body
    return "sha256-" + hashlib.sha256(named).hexdigest()[:32]


def _as_str(value: object) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def _as_int(value: object) -> int:
    try:
        return int(_as_str(value) or 0)
    except ValueError:
        return 0


def _as_float(value: object) -> float:
    try:
        return float(_as_str(value) or 0.0)
    except ValueError:
        return 0.0


def _as_list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []
