"""The broker contract, written once and run against every adapter: the real brokers (Redis
Streams, RabbitMQ) in tests/integration/test_broker_contract.py, the in-memory broker in
tests/unit/test_memory_broker_contract.py, as faststream subclasses its tests/brokers/base suites.

A module of the suite for each adapter subclasses `BrokerContract` and gives it a
`broker_factory` fixture. Tests of one broker's own machinery live beside it
(test_redis_broker.py, test_rabbitmq_broker.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from ragline.broker.base import Backlog, BrokerAdapter, DeadLetter, Delivery

# broker_factory(consumer_name, visibility_s=..., prefetch=...) -> a connected broker, in a
# namespace of the test's own. Each adapter takes what applies to it: Redis and the memory
# broker reclaim after the visibility timeout, RabbitMQ pushes up to the prefetch.
BrokerFactory = Callable[..., Awaitable[BrokerAdapter]]

HOSTILE_IDS = [
    "",
    "../../etc/passwd",
    "x\ny",
    "nul\x00byte",
    "-",
    "+",
    "(1-0",
    "1-0 ",
    "\u0661-\u0662",  # Arabic-Indic digits: digits to Python, not to Redis
    "18446744073709551616-0",
    "a" * 5000,
    "sha256-",
]
# Well-formed ids, one of each adapter's shape, that name no record in a fresh namespace.
UNKNOWN_IDS = ("1-1", f"{1:012x}-{0:020x}", "dl-999999999")


class BrokerContract:
    """Every adapter passes every test here."""

    async def test_publish_then_read_in_order_and_ack_removes(
        self, broker_factory: BrokerFactory
    ) -> None:
        broker = await broker_factory("c1")
        await broker.publish("q", [b"one", b"two", b"three"])
        got = await broker.read("q", 10, 0.5)
        assert [d.body for d in got] == [b"one", b"two", b"three"]
        assert all(d.delivery_count == 1 for d in got)
        assert await broker.depth("q") == 3  # in flight until acked
        await broker.ack(got)
        assert await broker.depth("q") == 0
        assert await broker.read("q", 10, 0.1) == []
        await broker.close()

    async def test_batch_read_is_bounded(self, broker_factory: BrokerFactory) -> None:
        broker = await broker_factory("c1")
        await broker.publish("q", [str(i).encode() for i in range(25)])
        first = await broker.read("q", 10, 0.5)
        assert len(first) == 10
        await broker.close()

    async def test_competing_consumers_share_without_overlap(
        self, broker_factory: BrokerFactory
    ) -> None:
        # RabbitMQ pushes up to `prefetch` messages to a consumer as soon as it subscribes, before
        # the application reads them: a consumer with a prefetch of 128 would take all 20 and leave
        # none to its competitor. A prefetch of one batch lets two consumers share; Redis ignores it.
        a = await broker_factory("a", prefetch=10)
        b = await broker_factory("b", prefetch=10)
        await a.publish("q", [str(i).encode() for i in range(20)])
        got_a = await a.read("q", 10, 0.5)
        got_b = await b.read("q", 10, 0.5)
        bodies = [d.body for d in got_a + got_b]
        assert sorted(bodies) == sorted(str(i).encode() for i in range(20))
        await a.close()
        await b.close()

    async def test_unacked_message_is_redelivered_to_a_live_consumer(
        self, broker_factory: BrokerFactory
    ) -> None:
        # Redis reclaims after the visibility timeout; RabbitMQ as soon as the holder's connection
        # closes. Both hand the message to the live consumer with its delivery count raised.
        dead = await broker_factory("dead", visibility_s=0.3)
        live = await broker_factory("live", visibility_s=0.3)
        await dead.publish("q", [b"work"])
        taken = await dead.read("q", 10, 0.5)
        assert [d.body for d in taken] == [b"work"]
        await dead.close()  # dies holding the message, never acks
        await asyncio.sleep(0.5)
        again = []
        for _ in range(10):
            again = await live.read("q", 10, 0.2)
            if again:
                break
        assert [d.body for d in again] == [b"work"]
        assert again[0].delivery_count == 2
        await live.ack(again)
        assert await live.depth("q") == 0
        await live.close()

    async def test_retry_later_comes_back_after_the_delay_not_before(
        self, broker_factory: BrokerFactory
    ) -> None:
        broker = await broker_factory("c")
        await broker.publish("q", [b"attempt-1"])
        (d,) = await broker.read("q", 1, 0.5)
        start = time.monotonic()
        await broker.retry_later(d, b"attempt-2", delay_s=0.6)
        assert await broker.depth("q") == 1  # waiting in the delayed set
        got = []
        while not got and time.monotonic() - start < 5:
            got = await broker.read("q", 10, 0.1)
        assert [x.body for x in got] == [b"attempt-2"]
        assert time.monotonic() - start >= 0.55
        await broker.close()

    async def test_dead_letter_keeps_the_original_and_can_be_requeued_or_purged(
        self, broker_factory: BrokerFactory
    ) -> None:
        broker = await broker_factory("c")
        await broker.publish("q", [b"poison", b"also-poison"])
        got = await broker.read("q", 10, 0.5)
        now = time.time()
        for d in got:
            await broker.dead_letter(
                d, DeadLetter("q", d.body, "job-1", "PermanentTaskError", "bad pdf", 3, now, now)
            )
        assert await broker.depth("q") == 0
        letters = await broker.list_dead_letters("q")
        assert [(x.body, x.error_message, x.attempts) for x in letters] == [
            (b"poison", "bad pdf", 3),
            (b"also-poison", "bad pdf", 3),
        ]
        assert all(
            (x.job_id, x.error_type, x.first_failure_time, x.last_failure_time)
            == ("job-1", "PermanentTaskError", now, now)
            for x in letters
        )
        page = await broker.list_dead_letters("q", limit=1, after=letters[0].dead_letter_id)
        assert [x.body for x in page] == [b"also-poison"]
        assert await broker.requeue_dead_letters("q", [letters[0].dead_letter_id]) == [letters[0]]
        assert [d.body for d in await broker.read("q", 10, 0.5)] == [b"poison"]
        assert await broker.purge_dead_letters("q") == 1
        assert await broker.list_dead_letters("q") == []
        await broker.close()

    async def test_requeue_can_transform_and_purge_can_pick(
        self, broker_factory: BrokerFactory
    ) -> None:
        broker = await broker_factory("c")
        await broker.publish("q", [b"a", b"b", b"c"])
        now = time.time()
        for d in await broker.read("q", 10, 0.5):
            await broker.dead_letter(d, DeadLetter("q", d.body, "j", "E", "m", 1, now, now))
        letters = await broker.list_dead_letters("q")
        assert [x.body for x in letters] == [b"a", b"b", b"c"]
        assert await broker.purge_dead_letters("q", [letters[1].dead_letter_id]) == 1
        assert [x.body for x in await broker.list_dead_letters("q")] == [b"a", b"c"]
        requeued = await broker.requeue_dead_letters("q", transform=lambda body: body.upper())
        assert [x.body for x in requeued] == [b"a", b"c"]  # as they were in the dead-letter queue
        got = await broker.read("q", 10, 0.5)
        assert sorted(d.body for d in got) == [b"A", b"C"]
        assert await broker.list_dead_letters("q") == []
        await broker.close()

    async def test_released_deliveries_come_back_soon_to_the_same_consumer(
        self, broker_factory: BrokerFactory
    ) -> None:
        # Visibility far longer than the test: only release() can bring the message back in time.
        broker = await broker_factory("c", visibility_s=60)
        await broker.publish("q", [b"interrupted"])
        (first,) = await broker.read("q", 1, 0.5)
        await broker.release([first])
        again = []
        deadline = time.monotonic() + 5
        while not again and time.monotonic() < deadline:
            again = await broker.read("q", 10, 0.2)
        assert [d.body for d in again] == [b"interrupted"]
        assert again[0].delivery_count == 2
        await broker.ack(again)
        assert await broker.depth("q") == 0

    async def test_requeue_returns_exactly_the_records_it_moved(
        self, broker_factory: BrokerFactory
    ) -> None:
        broker = await broker_factory("c")
        await broker.publish("q", [b"a", b"b", b"c"])
        now = time.time()
        for i, d in enumerate(await broker.read("q", 10, 0.5)):
            await broker.dead_letter(d, DeadLetter("q", d.body, f"job-{i}", "E", "m", 1, now, now))
        a, b, c = await broker.list_dead_letters("q")
        # A repeated id moves its record once; an id that names no record moves nothing.
        unknown = next(x for x in UNKNOWN_IDS if broker.is_dead_letter_id(x))
        requeued = await broker.requeue_dead_letters(
            "q", [c.dead_letter_id, a.dead_letter_id, c.dead_letter_id, unknown]
        )
        assert sorted(x.job_id for x in requeued) == ["job-0", "job-2"]
        assert {x.dead_letter_id for x in requeued} == {a.dead_letter_id, c.dead_letter_id}
        assert sorted(d.body for d in await broker.read("q", 10, 0.5)) == [b"a", b"c"]
        assert await broker.list_dead_letters("q") == [b]
        assert await broker.requeue_dead_letters("q", [a.dead_letter_id]) == []

    async def test_ids_it_hands_out_are_well_formed_and_hostile_ones_are_not(
        self, broker_factory: BrokerFactory
    ) -> None:
        broker = await broker_factory("c")
        await broker.publish("q", [b"a"])
        now = time.time()
        (d,) = await broker.read("q", 10, 0.5)
        await broker.dead_letter(d, DeadLetter("q", d.body, "j", "E", "m", 1, now, now))
        (letter,) = await broker.list_dead_letters("q")
        assert broker.is_dead_letter_id(letter.dead_letter_id)
        assert [x for x in HOSTILE_IDS if broker.is_dead_letter_id(x)] == []

    async def test_consumer_count_sees_readers_and_forgets_departed_ones(
        self, broker_factory: BrokerFactory
    ) -> None:
        # Redis keeps a departed consumer's entry in the group: it must not count.
        observer = await broker_factory("observer", visibility_s=1.0)
        assert await observer.consumer_count("q") == 0
        reader = await broker_factory("reader", visibility_s=1.0)
        # A reader of an empty queue counts too: the doctor must not say that nobody reads it.
        assert await reader.read("q", 1, 0.1) == []
        assert await observer.consumer_count("q") == 1
        await reader.publish("q", [b"one"])
        assert await reader.read("q", 1, 0.5)
        assert await observer.consumer_count("q") == 1
        await reader.close()  # as a process that died would: its connections close
        deadline = time.monotonic() + 10
        while await observer.consumer_count("q") and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        assert await observer.consumer_count("q") == 0

    async def test_backlog_counts_each_state_from_any_connection(
        self, broker_factory: BrokerFactory
    ) -> None:
        # The observer never reads: the backlog is the broker's, not the connection's. Where a
        # broker cannot tell (RabbitMQ: in flight, oldest age) it says None, never a guess.
        observer = await broker_factory("observer")
        empty = await observer.backlog("q")
        assert (empty.waiting, empty.delayed, empty.dead_letters) == (0, 0, 0)
        assert empty.in_flight in (0, None)
        assert empty.oldest_waiting_age_s in (0.0, None)

        await observer.publish("q", [b"one", b"two", b"three"])
        await asyncio.sleep(0.3)
        waiting = await _backlog_until(observer, lambda b: b.waiting == 3)
        assert waiting.waiting == 3
        assert waiting.oldest_waiting_age_s is None or 0.25 <= waiting.oldest_waiting_age_s < 30

        worker = await broker_factory("worker", prefetch=10)
        got: list[Delivery] = []
        deadline = time.monotonic() + 5
        while len(got) < 3 and time.monotonic() < deadline:
            got += await worker.read("q", 10, 0.5)
        assert len(got) == 3
        held = await _backlog_until(observer, lambda b: b.waiting == 0)
        assert (held.waiting, held.delayed, held.dead_letters) == (0, 0, 0)
        assert held.in_flight in (3, None)
        assert held.oldest_waiting_age_s in (0.0, None)

        now = time.time()
        await worker.retry_later(got[0], b"one-again", delay_s=30)
        await worker.dead_letter(got[1], DeadLetter("q", got[1].body, "j", "E", "m", 1, now, now))
        await worker.ack([got[2]])
        settled = await _backlog_until(observer, lambda b: b.delayed == 1 and b.dead_letters == 1)
        assert (settled.waiting, settled.delayed, settled.dead_letters) == (0, 1, 1)
        assert settled.in_flight in (0, None)
        await worker.close()
        await observer.close()


async def _backlog_until(
    broker: BrokerAdapter, done: Callable[[Backlog], bool], timeout_s: float = 5.0
) -> Backlog:
    """The queue "q"'s backlog once `done` holds of it (a server may count a moment late), or
    the last one read when `timeout_s` passes first."""
    deadline = time.monotonic() + timeout_s
    backlog = await broker.backlog("q")
    while not done(backlog) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        backlog = await broker.backlog("q")
    return backlog
