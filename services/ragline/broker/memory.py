"""The broker in memory: the promises of `Broker` and `DeadLetterAdmin` kept in one process, for
tests of code that talks to a broker (the stage runner, a user's own handlers) with no server.

Like faststream's TestBroker beside its real brokers, it passes the same contract suite as the
Redis Streams and RabbitMQ adapters (tests/broker_contract.py). Nothing outlives the process, so
it is never a deployment's broker: the factory does not offer it.

A `MemoryServer` holds the queues; each `MemoryBroker` is one connection to it with its own
consumer name. Brokers on one server are competing consumers, or the processes of a test: one
that "dies" holding messages is closed without acking them.

How the promises are kept:
- a queue hands out its waiting messages in publish order; a message that comes back (released,
  reclaimed, or its holder closed) keeps its place, ahead of later ones;
- what a connection holds unacked goes back at once when it closes, as RabbitMQ returns a
  dropped connection's messages; with a visibility timeout, a reader also reclaims messages held
  longer than that without `extend`, as Redis Streams' XAUTOCLAIM does (None: never);
- `delivery_count` counts every hand-out of a message; a retry or a requeued dead letter is a
  new message and starts at 1;
- depth counts waiting, held and delayed messages exactly;
- each change is made without yielding to the event loop, so it is atomic.
It is asyncio only: one event loop, no threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import itertools
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ragline.broker.base import Backlog, BrokerAdapter, DeadLetter, Delivery
from ragline.errors import BrokerUnavailable

__all__ = ["MemoryBroker", "MemoryServer"]

# Dead-letter record ids: "dl-" and a number that grows with each record on the server.
_DEAD_LETTER_ID = re.compile(r"dl-([0-9]{1,19})")


@dataclass
class _Message:
    broker_id: str
    body: bytes
    # Publish order: a message that comes back is handed out before those published after it.
    seq: int
    delivery_count: int = 0
    # The connection holding it (None while it waits), and when it last took or extended it.
    holder: MemoryBroker | None = None
    held_since: float = 0.0
    # When it was published (epoch seconds), for the backlog's oldest-waiting age.
    published: float = field(default_factory=time.time)


@dataclass
class _Queue:
    """One queue's messages, its delayed retries, its dead letters and its consumers."""

    # Every message not yet acked, waiting or held, by broker id.
    messages: dict[str, _Message] = field(default_factory=dict)
    # (seq, broker id) of waiting messages; entries of messages acked meanwhile are skipped.
    waiting: list[tuple[int, str]] = field(default_factory=list)
    held: dict[str, _Message] = field(default_factory=dict)
    # (due time on the monotonic clock, tie-breaker, body) of retries not yet due.
    delayed: list[tuple[float, int, bytes]] = field(default_factory=list)
    # Insertion order is id order: oldest first.
    dead: dict[str, DeadLetter] = field(default_factory=dict)
    consumers: set[MemoryBroker] = field(default_factory=set)
    # Set on every change a waiting reader may care about (new, returned or due messages).
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, message: _Message) -> None:
        message.holder = None
        heapq.heappush(self.waiting, (message.seq, message.broker_id))
        self.changed.set()

    def give_back(self, message: _Message) -> None:
        self.held.pop(message.broker_id, None)
        self.put(message)

    def remove(self, broker_id: str) -> None:
        self.messages.pop(broker_id, None)
        self.held.pop(broker_id, None)

    def append(self, message: _Message) -> None:
        self.messages[message.broker_id] = message
        self.put(message)

    def reclaim_idle(self, now: float, idle_s: float) -> None:
        for message in [m for m in self.held.values() if now - m.held_since >= idle_s]:
            self.give_back(message)

    def take(self, holder: MemoryBroker, max_count: int, now: float) -> list[_Message]:
        out: list[_Message] = []
        while self.waiting and len(out) < max_count:
            _, broker_id = heapq.heappop(self.waiting)
            message = self.messages.get(broker_id)
            if message is None or message.holder is not None:
                continue  # acked while it waited
            message.holder, message.held_since = holder, now
            message.delivery_count += 1
            self.held[broker_id] = message
            out.append(message)
        return out

    def next_change(self, now: float, idle_s: float | None) -> float:
        """When, without anyone publishing or settling, a reader may find something: the first
        delayed retry's due time, or when the longest-held message becomes reclaimable."""
        times = [self.delayed[0][0]] if self.delayed else []
        if idle_s is not None and self.held:
            times.append(min(m.held_since for m in self.held.values()) + idle_s)
        return min(times, default=float("inf"))


class MemoryServer:
    """The queues of in-memory brokers: every `MemoryBroker` made with this server shares them."""

    def __init__(self) -> None:
        self._queues: dict[str, _Queue] = {}
        self._seq = itertools.count(1)
        self._dead_seq = itertools.count(1)

    def _queue(self, name: str) -> _Queue:
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = _Queue()
        return queue

    def _consumed_by(self, holder: MemoryBroker) -> list[_Queue]:
        # Reading makes a connection a consumer: every message it holds is in one of these.
        return [q for q in self._queues.values() if holder in q.consumers]

    def _append(self, queue: _Queue, body: bytes) -> None:
        """Appends a new message (its own id and delivery count) to the queue's tail."""
        seq = next(self._seq)
        queue.append(_Message(broker_id=str(seq), body=body, seq=seq))

    def _promote_due(self, queue: _Queue, now: float) -> None:
        """Moves retries that have come due onto the queue, each a new message (as Redis
        Streams' broker appends a due retry to its stream)."""
        while queue.delayed and queue.delayed[0][0] <= now:
            _, _, body = heapq.heappop(queue.delayed)
            self._append(queue, body)

    def _schedule(self, queue: _Queue, body: bytes, delay_s: float) -> None:
        due = time.monotonic() + max(0.0, delay_s)
        heapq.heappush(queue.delayed, (due, next(self._seq), body))
        queue.changed.set()  # a waiting reader's next wake-up may now be sooner

    def _new_dead_letter_id(self) -> str:
        return f"dl-{next(self._dead_seq)}"


class MemoryBroker(BrokerAdapter):
    """One connection to a `MemoryServer` (a server of its own when none is given).

    `visibility_timeout_s`: how long another message's holder may keep it without `extend`
    before this connection's reads reclaim it; None (the default) waits for an ack, a release
    or the holder's close, whatever the time.
    """

    def __init__(
        self,
        server: MemoryServer | None = None,
        *,
        consumer_name: str | None = None,
        visibility_timeout_s: float | None = None,
    ) -> None:
        self.server = server or MemoryServer()
        self.consumer_name = consumer_name or f"memory-{uuid.uuid4().hex[:6]}"
        self._visibility_s = visibility_timeout_s
        self._connected = False

    def __repr__(self) -> str:
        return f"MemoryBroker(consumer_name={self.consumer_name!r})"

    # -- lifecycle --------------------------------------------------------------------------
    async def connect(self) -> None:
        self._connected = True

    async def close(self) -> None:
        if not self._connected:
            return
        self._connected = False
        # As a dropped connection: what it held goes back, and it no longer consumes.
        for queue in self.server._consumed_by(self):
            for message in [m for m in queue.held.values() if m.holder is self]:
                queue.give_back(message)
            queue.consumers.discard(self)
            queue.changed.set()  # wakes this connection's own reads, which then raise

    async def health(self) -> None:
        self._check_connected()

    def _check_connected(self) -> None:
        if not self._connected:
            raise BrokerUnavailable(
                f"the in-memory broker connection {self.consumer_name!r} is not open: "
                "call connect() first (or again, after close())"
            )

    def _open_queue(self, name: str) -> _Queue:
        self._check_connected()
        return self.server._queue(name)

    # -- publishing -------------------------------------------------------------------------
    async def publish(self, queue: str, bodies: Sequence[bytes]) -> None:
        q = self._open_queue(queue)
        for body in bodies:
            self.server._append(q, body)

    # -- consuming --------------------------------------------------------------------------
    async def read(self, queue: str, max_count: int, timeout_s: float) -> list[Delivery]:
        q = self._open_queue(queue)
        q.consumers.add(self)
        deadline = time.monotonic() + timeout_s
        while True:
            now = time.monotonic()
            self.server._promote_due(q, now)
            if self._visibility_s is not None:
                q.reclaim_idle(now, self._visibility_s)
            taken = q.take(self, max_count, now)
            if taken or now >= deadline or max_count < 1:
                return [Delivery(queue, m.body, m.broker_id, m.delivery_count) for m in taken]
            # Nothing can arrive between this check and the wait: no other task runs in between.
            q.changed.clear()
            wake = min(deadline, q.next_change(now, self._visibility_s))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, wake - now)):
                    await q.changed.wait()
            self._check_connected()

    # -- settling ---------------------------------------------------------------------------
    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        self._check_connected()
        for d in deliveries:
            # Acking twice is a no-op. A late ack of a message another consumer has reclaimed
            # since still acks it, as XACK does: its work was done.
            self.server._queue(d.queue).remove(d.broker_id)

    async def retry_later(self, delivery: Delivery, body: bytes, delay_s: float) -> None:
        q = self._open_queue(delivery.queue)
        q.remove(delivery.broker_id)
        self.server._schedule(q, body, delay_s)

    async def dead_letter(self, delivery: Delivery, record: DeadLetter) -> None:
        q = self._open_queue(delivery.queue)
        q.remove(delivery.broker_id)
        letter_id = self.server._new_dead_letter_id()
        q.dead[letter_id] = dataclasses.replace(
            record, queue=delivery.queue, dead_letter_id=letter_id
        )

    async def extend(self, deliveries: Sequence[Delivery]) -> None:
        self._check_connected()
        now = time.monotonic()
        for d in deliveries:
            message = self.server._queue(d.queue).held.get(d.broker_id)
            if message is not None and message.holder is self:
                message.held_since = now

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        if not self._connected:
            return  # closing gave them back already
        for d in deliveries:
            q = self.server._queue(d.queue)
            message = q.held.get(d.broker_id)
            if message is not None and message.holder is self:
                q.give_back(message)

    async def depth(self, queue: str) -> int:
        q = self._open_queue(queue)
        return len(q.messages) + len(q.delayed)

    async def consumer_count(self, queue: str) -> int:
        return len(self._open_queue(queue).consumers)

    async def backlog(self, queue: str) -> Backlog:
        q = self._open_queue(queue)
        waiting = [m.published for m in q.messages.values() if m.holder is None]
        return Backlog(
            waiting=len(waiting),
            in_flight=len(q.held),
            delayed=len(q.delayed),
            dead_letters=len(q.dead),
            oldest_waiting_age_s=max(0.0, time.time() - min(waiting)) if waiting else 0.0,
        )

    # -- dead letters -----------------------------------------------------------------------
    def is_dead_letter_id(self, value: str) -> bool:
        return _DEAD_LETTER_ID.fullmatch(value) is not None

    async def list_dead_letters(
        self, queue: str, *, limit: int = 100, after: str = ""
    ) -> list[DeadLetter]:
        letters = list(self._open_queue(queue).dead.values())
        if after:
            # Ids grow with each record, so paging after one that has left goes on with later ones.
            start = _dead_letter_number(after)
            letters = [x for x in letters if _dead_letter_number(x.dead_letter_id) > start]
        return letters[: max(0, limit)]

    def _chosen(self, queue: _Queue, ids: Sequence[str]) -> list[DeadLetter]:
        """The named records that exist (all when `ids` is empty), oldest first."""
        if not ids:
            return list(queue.dead.values())
        wanted = set(ids)
        return [x for x in queue.dead.values() if x.dead_letter_id in wanted]

    async def requeue_dead_letters(
        self,
        queue: str,
        ids: Sequence[str] = (),
        transform: Callable[[bytes], bytes] | None = None,
    ) -> list[DeadLetter]:
        q = self._open_queue(queue)
        chosen = self._chosen(q, ids)
        # Every body is transformed before anything moves: a transform that raises moves none.
        bodies = [transform(x.body) if transform else x.body for x in chosen]
        for letter, body in zip(chosen, bodies, strict=True):
            del q.dead[letter.dead_letter_id]
            self.server._append(q, body)
        return chosen

    async def purge_dead_letters(self, queue: str, ids: Sequence[str] = ()) -> int:
        q = self._open_queue(queue)
        chosen = self._chosen(q, ids)
        for letter in chosen:
            del q.dead[letter.dead_letter_id]
        return len(chosen)


def _dead_letter_number(value: str) -> int:
    match = _DEAD_LETTER_ID.fullmatch(value)
    if match is None:
        raise ValueError(
            f"{value!r} is not an in-memory dead-letter id (dl- and a number); "
            "check ids with is_dead_letter_id first"
        )
    return int(match[1])
