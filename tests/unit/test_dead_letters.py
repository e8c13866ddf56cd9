"""DeadLetterOps: malformed ids and page tokens are the client's error on every broker, and a
requeue reopens exactly the jobs whose tasks it put back, only once they are back."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from ragline.broker.base import Backlog, DeadLetter, DeadLetterAdmin
from ragline.broker.memory import MemoryBroker
from ragline.broker.rabbitmq import RabbitMQBroker, new_message_id
from ragline.broker.redis_streams import RedisStreamsBroker
from ragline.errors import BrokerUnavailable, InvalidArgument
from ragline.gateway.dead_letters import DeadLetterOps
from ragline.jobs.model import Stage
from ragline.stage import envelope

pytestmark = pytest.mark.unit

# No adapter connects until asked: their id checks need no server.
ADAPTERS = {
    "redis": RedisStreamsBroker("redis://127.0.0.1:1"),
    "rabbitmq": RabbitMQBroker("amqp://guest:guest@127.0.0.1:1/"),
    "memory": MemoryBroker(),
}
WELL_FORMED = {
    "redis": ["0-0", "1714000000000-0", "1714000000000-17", f"{2**64 - 1}-{2**64 - 1}"],
    "rabbitmq": [new_message_id(), "018f3a2b4c5d-0123456789abcdef0123", "sha256-" + "0" * 32],
    "memory": ["dl-1", "dl-42", "dl-" + "9" * 19],
}
HOSTILE = [
    "",
    "../../etc/passwd",
    "x\ny",
    "1-0\n",
    "1-0\x00",
    "\x00",
    "-",
    "+",
    "(1-0",
    "1-",
    "-1",
    "1",
    "+1-0",
    "\u0661-\u0662",
    f"{2**64}-0",
    "1" * 40 + "-0",
    "018F3A2B4C5D-0123456789ABCDEF0123",
    "sha256-" + "0" * 31,
    "sha256-" + "g" * 32,
    "é" * 100,
]


@pytest.mark.parametrize("kind", sorted(ADAPTERS))
def test_each_adapter_knows_its_own_ids_and_refuses_hostile_ones(kind: str) -> None:
    broker = ADAPTERS[kind]
    assert all(broker.is_dead_letter_id(x) for x in WELL_FORMED[kind])
    assert [x for x in HOSTILE if broker.is_dead_letter_id(x)] == []


class RecordingBroker(DeadLetterAdmin):
    """Holds dead letters in memory and records the order of the calls DeadLetterOps makes:
    DeadLetterOps needs only the admin side of a broker."""

    def __init__(self, letters: Sequence[DeadLetter], log: list[str]) -> None:
        self.letters = list(letters)
        self.log = log
        self.fail_requeue = False
        # The ids it pretends to requeue when asked for all: lets a test make the broker move
        # fewer than it listed (e.g. one was purged meanwhile).
        self.requeue_only: set[str] | None = None

    def is_dead_letter_id(self, value: str) -> bool:
        return value.startswith("dl-")

    async def list_dead_letters(
        self, queue: str, *, limit: int = 100, after: str = ""
    ) -> list[DeadLetter]:
        self.log.append(f"list {queue} after={after!r}")
        ids = [x.dead_letter_id for x in self.letters]
        start = ids.index(after) + 1 if after in ids else 0
        return self.letters[start : start + limit]

    async def requeue_dead_letters(
        self,
        queue: str,
        ids: Sequence[str] = (),
        transform: Callable[[bytes], bytes] | None = None,
    ) -> list[DeadLetter]:
        self.log.append(f"requeue {queue} {sorted(ids)}")
        if self.fail_requeue:
            raise BrokerUnavailable("the broker went away")
        wanted = set(ids) if ids else self.requeue_only
        moved = [x for x in self.letters if wanted is None or x.dead_letter_id in wanted]
        self.letters = [x for x in self.letters if x not in moved]
        return moved

    async def purge_dead_letters(self, queue: str, ids: Sequence[str] = ()) -> int:
        self.log.append(f"purge {queue} {sorted(ids)}")
        return 0

    async def consumer_count(self, queue: str) -> int:
        return 0

    async def backlog(self, queue: str) -> Backlog:
        return Backlog(0, 0, 0, len(self.letters), 0.0)


class RecordingJobs:
    """The one JobStore method DeadLetterOps calls, recorded in the shared log."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def reopen(self, job_id: str) -> bool:
        self.log.append(f"reopen {job_id}")
        return True


def letter(n: int, job_id: str, tenant: str = "") -> DeadLetter:
    env = envelope.new_envelope(job_id)
    env.chunk.document.tenant = tenant
    body = env.SerializeToString()
    return DeadLetter("chunk", body, job_id, "E", "m", 3, 1.0, 2.0, dead_letter_id=f"dl-{n}")


def ops(letters: Sequence[DeadLetter]) -> tuple[DeadLetterOps, RecordingBroker, list[str]]:
    log: list[str] = []
    broker = RecordingBroker(letters, log)
    jobs: Any = RecordingJobs(log)
    return DeadLetterOps(broker, jobs), broker, log


async def test_requeue_reopens_exactly_the_requeued_jobs_after_the_requeue() -> None:
    dead_letters, broker, log = ops(
        [letter(1, "job-a"), letter(2, "job-b"), letter(3, "job-a"), letter(4, "")]
    )
    assert await dead_letters.requeue(Stage.CHUNK, ["dl-3", "dl-1", "dl-4"], tenant=None) == 3
    # One requeue, then each job of a moved letter once; job-b's letter stayed dead.
    assert log == ["requeue chunk ['dl-1', 'dl-3', 'dl-4']", "reopen job-a"]
    assert [x.dead_letter_id for x in broker.letters] == ["dl-2"]


async def test_requeue_of_all_reopens_only_what_the_broker_moved() -> None:
    dead_letters, broker, log = ops([letter(1, "job-a"), letter(2, "job-b"), letter(3, "job-c")])
    broker.requeue_only = {"dl-1", "dl-3"}
    assert await dead_letters.requeue(Stage.CHUNK, [], tenant=None) == 2
    assert log == ["requeue chunk []", "reopen job-a", "reopen job-c"]


async def test_a_failed_requeue_reopens_no_job() -> None:
    dead_letters, broker, log = ops([letter(1, "job-a"), letter(2, "job-b")])
    broker.fail_requeue = True
    with pytest.raises(BrokerUnavailable):
        await dead_letters.requeue(Stage.CHUNK, [], tenant=None)
    assert not [x for x in log if x.startswith("reopen")]
    assert len(broker.letters) == 2


@pytest.mark.parametrize("bad", ["../../etc/passwd", "x\ny", "", "\x00"])
@pytest.mark.parametrize("operation", ["requeue", "purge"])
async def test_a_malformed_dead_letter_id_is_invalid_argument_naming_it(
    operation: str, bad: str
) -> None:
    dead_letters, _, log = ops([letter(1, "job-a")])
    with pytest.raises(InvalidArgument) as caught:
        await getattr(dead_letters, operation)(Stage.CHUNK, ["dl-1", bad], tenant=None)
    assert caught.value.field == "dead_letter_ids[1]"
    assert "ListDeadLetters" in caught.value.problem
    assert log == []  # refused before the broker or the job store saw anything


@pytest.mark.parametrize("bad", ["../../etc/passwd", "x\ny", "\x00", "(dl-1"])
async def test_a_malformed_page_token_is_invalid_argument_naming_it(bad: str) -> None:
    dead_letters, _, log = ops([letter(1, "job-a")])
    with pytest.raises(InvalidArgument) as caught:
        await dead_letters.list(Stage.CHUNK, 10, bad, tenant=None)
    assert caught.value.field == "page_token"
    assert "next_page_token" in caught.value.problem
    assert log == []


async def test_pages_follow_their_tokens() -> None:
    dead_letters, _, _ = ops([letter(n, f"job-{n}") for n in range(5)])
    page, token = await dead_letters.list(Stage.CHUNK, 2, "", tenant=None)
    assert [d.dead_letter_id for d, _ in page] == ["dl-0", "dl-1"] and token == "dl-1"
    page, token = await dead_letters.list(Stage.CHUNK, 3, token, tenant=None)
    assert [d.dead_letter_id for d, _ in page] == ["dl-2", "dl-3", "dl-4"] and token == ""


# -- tenants ---------------------------------------------------------------------------------


def mixed() -> list[DeadLetter]:
    """Letters of tenants a and b, one written before tenancy (the default tenant's) and one
    whose body cannot be read (nobody's but the operator's)."""
    unreadable = DeadLetter("chunk", b"\xff\xff", "", "E", "m", 1, 1.0, 2.0, dead_letter_id="dl-9")
    return [
        letter(1, "job-a1", "a"),
        letter(2, "job-b1", "b"),
        letter(3, "job-a2", "a"),
        letter(4, "job-d", ""),
        unreadable,
        letter(5, "job-b2", "b"),
    ]


async def test_a_tenant_lists_only_its_own_letters_page_by_page() -> None:
    dead_letters, _, _ = ops(mixed())
    page, token = await dead_letters.list(Stage.CHUNK, 1, "", tenant="b")
    assert [d.dead_letter_id for d, _ in page] == ["dl-2"] and token == "dl-2"
    page, token = await dead_letters.list(Stage.CHUNK, 1, token, tenant="b")
    assert [d.dead_letter_id for d, _ in page] == ["dl-5"] and token == ""
    page, _ = await dead_letters.list(Stage.CHUNK, 10, "", tenant="default")
    assert [d.dead_letter_id for d, _ in page] == ["dl-4"]
    page, _ = await dead_letters.list(Stage.CHUNK, 10, "", tenant=None)
    assert len(page) == 6


async def test_a_tenant_requeues_and_purges_only_its_own_letters() -> None:
    dead_letters, broker, log = ops(mixed())
    # All of a's, then b's ids named by a: skipped as if they were not there.
    assert await dead_letters.requeue(Stage.CHUNK, [], tenant="a") == 2
    assert await dead_letters.requeue(Stage.CHUNK, ["dl-2", "dl-5"], tenant="a") == 0
    assert await dead_letters.purge(Stage.CHUNK, ["dl-2"], tenant="a") == 0
    assert [x for x in log if not x.startswith("list")] == [
        "requeue chunk ['dl-1', 'dl-3']",
        "reopen job-a1",
        "reopen job-a2",
    ]
    assert [x.dead_letter_id for x in broker.letters] == ["dl-2", "dl-4", "dl-9", "dl-5"]
    await dead_letters.purge(Stage.CHUNK, [], tenant="b")
    assert log[-1] == "purge chunk ['dl-2', 'dl-5']"


async def test_a_long_scan_for_a_tenants_letters_stops_with_a_token_to_go_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ragline.gateway import dead_letters as module

    monkeypatch.setattr(module, "SCAN_BATCH", 2)
    monkeypatch.setattr(module, "MAX_SCAN", 4)
    # b's letters only after five of a's: the first call gives up after four without one.
    letters = [letter(n, f"job-a{n}", "a") for n in range(5)] + [letter(9, "job-b", "b")]
    dead_letters, _, _ = ops(letters)
    page, token = await dead_letters.list(Stage.CHUNK, 10, "", tenant="b")
    assert page == [] and token == "dl-3"
    page, token = await dead_letters.list(Stage.CHUNK, 10, token, tenant="b")
    assert [d.dead_letter_id for d, _ in page] == ["dl-9"] and token == ""
