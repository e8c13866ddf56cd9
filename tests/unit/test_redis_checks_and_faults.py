"""The Redis settings check and the fault-injection rules: pure logic."""

from __future__ import annotations

import pytest

from ragline.errors import ConfigurationError, PermanentTaskError, TransientError
from ragline.faults import Faults, InjectedFault, parse_faults
from ragline.redis_checks import assess

pytestmark = pytest.mark.unit


def test_a_durable_non_evicting_redis_passes_silently() -> None:
    assert assess(
        {"maxmemory-policy": "noeviction", "appendonly": "yes", "appendfsync": "everysec"}
    ) == ([], None)


@pytest.mark.parametrize(
    "policy", ["allkeys-lru", "volatile-lru", "allkeys-random", "volatile-ttl"]
)
def test_an_evicting_policy_is_refused_naming_it_and_the_fix(policy: str) -> None:
    _, refusal = assess({"maxmemory-policy": policy, "appendonly": "yes"})
    assert refusal is not None
    assert policy in refusal
    assert "noeviction" in refusal


def test_no_append_only_file_warns() -> None:
    warnings, refusal = assess({"maxmemory-policy": "noeviction", "appendonly": "no"})
    assert refusal is None
    assert len(warnings) == 1
    assert "appendonly yes" in warnings[0]


def test_fsync_left_to_the_os_warns() -> None:
    warnings, _ = assess(
        {"maxmemory-policy": "noeviction", "appendonly": "yes", "appendfsync": "no"}
    )
    assert len(warnings) == 1
    assert "appendfsync everysec" in warnings[0]


def test_fault_rules_parse() -> None:
    rules = parse_faults("embed:transient:FLAKY:2, chunk:crash:BOOM")
    assert [(r.stage, r.kind, r.marker, r.times) for r in rules] == [
        ("embed", "transient", "FLAKY", 2),
        ("chunk", "crash", "BOOM", 1),
    ]
    assert parse_faults("") == []
    (rule,) = parse_faults("gateway:crash_after_commit:GONE")
    assert (rule.stage, rule.kind, rule.marker) == ("gateway", "crash_after_commit", "GONE")


@pytest.mark.parametrize(
    "bad", ["embed:explode:X", "embed:transient", "embed:transient:", "a:b:c:d:e"]
)
def test_a_malformed_fault_rule_is_a_configuration_error(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="STAGE:KIND:MARKER"):
        parse_faults(bad)


def test_faults_fire_only_for_their_stage_marker_and_attempts() -> None:
    faults = Faults(
        "embed:transient:FLAKY:2,embed:permanent:BAD,embed:poison:TOXIC,chunk:crash:BOOM", "embed"
    )
    faults.check(["harmless", "BOOM is the chunker's marker"], attempt=1)
    with pytest.raises(TransientError):
        faults.check(["a FLAKY chunk"], attempt=2)
    faults.check(["a FLAKY chunk"], attempt=3)  # past its attempts: goes through
    with pytest.raises(PermanentTaskError):
        faults.check(["BAD"], attempt=9)
    with pytest.raises(InjectedFault):
        faults.check(["TOXIC"], attempt=9)
    assert not Faults("", "embed")


def test_a_stall_rule_asks_for_the_hold_without_sleeping() -> None:
    faults = Faults("index:stall:SLOW:30", "index")
    assert faults.check(["SLOW"]) == 30.0  # returned at once: the caller decides how to wait
    assert faults.check(["quick"]) == 0.0


def test_a_crash_after_commit_rule_fires_only_at_its_own_point() -> None:
    faults = Faults("gateway:crash_after_commit:GONE", "gateway")
    assert faults
    faults.check(["GONE"])  # the stage-work check ignores it
    faults.crash_after_commit(["nothing to see"])  # no marker: returns
    Faults("gateway:crash_after_commit:GONE", "chunk").crash_after_commit(["GONE"])
