"""The broker interface every adapter implements, and the records it passes around.

The shape follows what Redis Streams consumer groups and AMQP (aio-pika) both offer:
pull a batch, ack what is done, hand back what should run later, dead-letter what never will.
Delivery is at-least-once: a message not acked by its consumer is delivered again, to it or to
another consumer, so every stage's side effects are idempotent.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Delivery:
    """One message handed to a consumer."""

    queue: str
    body: bytes
    # The broker's id for this delivery (a stream entry id, an AMQP delivery tag).
    broker_id: str
    # How many times the broker has handed this message out, this time included (1 on first delivery).
    delivery_count: int = 1
    # Adapter-private handle (e.g. aio-pika's IncomingMessage); never read by stage code.
    handle: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class DeadLetter:
    """A message a stage gave up on, with why and when. Kept until requeued or purged."""

    queue: str
    body: bytes
    job_id: str
    error_type: str
    error_message: str
    attempts: int
    first_failure_time: float
    last_failure_time: float
    # The dead-letter queue's own id for the record; empty until stored.
    dead_letter_id: str = ""


@dataclass(frozen=True)
class Backlog:
    """A queue's messages by where they stand, for metrics and operators; None where the broker
    cannot tell."""

    # Published and not yet handed to any consumer.
    waiting: int
    # Handed to a consumer and not yet settled (RabbitMQ: None; AMQP does not count them).
    in_flight: int | None
    # Retries scheduled for later, not yet due.
    delayed: int
    # Records in the queue's dead-letter queue.
    dead_letters: int
    # Seconds since the oldest waiting message was published; 0.0 when none waits, None where
    # the broker cannot tell without consuming (RabbitMQ).
    oldest_waiting_age_s: float | None


class Broker(abc.ABC):
    """Durable named queues with at-least-once delivery to competing consumers.

    Each adapter is one connection for one process; `consumer_name` identifies it to the broker.
    Methods raise `BrokerUnavailable` (retryable) when the broker does not answer.
    """

    @abc.abstractmethod
    async def connect(self) -> None:
        """Connects, and creates whatever queues and groups are missing."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Closes the connection. Unacked deliveries go back to the queue."""

    @abc.abstractmethod
    async def health(self) -> None:
        """Returns when the broker answers; raises BrokerUnavailable otherwise."""

    @abc.abstractmethod
    async def publish(self, queue: str, bodies: Sequence[bytes]) -> None:
        """Appends messages to a queue; returns once the broker has them (one round trip)."""

    def redis_stream(self, queue: str) -> str | None:
        """The key of the Redis stream holding `queue`, when this broker keeps its queues as
        streams on the job store's Redis: the job store's scripts may then append tasks to it
        themselves, atomically with their own writes. None for a broker anywhere else."""
        return None

    @abc.abstractmethod
    async def read(self, queue: str, max_count: int, timeout_s: float) -> list[Delivery]:
        """Up to `max_count` deliveries, waiting at most `timeout_s` for the first.

        Includes messages whose consumer died holding them (after the visibility timeout) and
        delayed retries that have come due.
        """

    @abc.abstractmethod
    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Marks deliveries done; they are never delivered again."""

    @abc.abstractmethod
    async def retry_later(self, delivery: Delivery, body: bytes, delay_s: float) -> None:
        """Acks `delivery` and schedules `body` (its next attempt) on the same queue after `delay_s`.

        Atomic: the message is never both lost and never twice scheduled. Never sleeps in the worker.
        """

    @abc.abstractmethod
    async def dead_letter(self, delivery: Delivery, record: DeadLetter) -> None:
        """Acks `delivery` and stores `record` in the queue's dead-letter queue, atomically."""

    async def extend(self, deliveries: Sequence[Delivery]) -> None:
        """Tells the broker the deliveries are still being worked on, so a slow batch is never
        mistaken for a dead consumer's. A no-op where the broker tracks liveness by connection."""
        return

    @abc.abstractmethod
    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Gives deliveries back unsettled, to be delivered again soon (e.g. when an outage
        stopped the work). Best effort: what it cannot give back returns on its own later."""

    @abc.abstractmethod
    async def depth(self, queue: str) -> int:
        """Messages waiting or in flight on a queue (for backpressure and autoscaling)."""


class DeadLetterAdmin(abc.ABC):
    """Looking after a queue rather than working it: its dead letters (listed, requeued,
    purged) and its consumers. The gateway's dead-letter RPCs and `ragline doctor` need this;
    the stages need only `Broker`. Methods raise `BrokerUnavailable` when the broker does not
    answer."""

    @abc.abstractmethod
    async def consumer_count(self, queue: str) -> int:
        """How many consumers are reading the queue now (for `ragline doctor`)."""

    @abc.abstractmethod
    async def backlog(self, queue: str) -> Backlog:
        """The queue's messages by state, read from the broker: the same figures from every
        process, whoever holds the messages."""

    @abc.abstractmethod
    def is_dead_letter_id(self, value: str) -> bool:
        """Whether `value` has the shape of this broker's dead-letter record ids (it may still
        name no record). Callers check ids and page tokens from clients with it first, so a
        malformed one is the client's error on every broker, never a broker failure."""

    @abc.abstractmethod
    async def list_dead_letters(
        self, queue: str, *, limit: int = 100, after: str = ""
    ) -> list[DeadLetter]:
        """Dead letters of `queue`, oldest first, starting after the record id `after`."""

    @abc.abstractmethod
    async def requeue_dead_letters(
        self,
        queue: str,
        ids: Sequence[str] = (),
        transform: Callable[[bytes], bytes] | None = None,
    ) -> list[DeadLetter]:
        """Moves the named dead letters (all when `ids` is empty) back onto `queue`, each body
        passed through `transform` first (e.g. to reset its attempt count). Returns the records
        it moved, as they were in the dead-letter queue: exactly the ones now queued again."""

    @abc.abstractmethod
    async def purge_dead_letters(self, queue: str, ids: Sequence[str] = ()) -> int:
        """Deletes the named dead letters (all when `ids` is empty). Returns how many."""


async def dead_letter_batches(
    admin: DeadLetterAdmin, queue: str, *, after: str = "", size: int = 1000
) -> AsyncIterator[list[DeadLetter]]:
    """`queue`'s dead letters after the record id `after`, oldest first, read `size` per broker
    call and yielded a call's worth at a time (never an empty batch)."""
    while True:
        batch = await admin.list_dead_letters(queue, limit=size, after=after)
        if batch:
            yield batch
        if len(batch) < size:
            return
        after = batch[-1].dead_letter_id


class BrokerAdapter(Broker, DeadLetterAdmin):
    """What each broker adapter implements: the data plane and the admin side, over one
    connection."""
