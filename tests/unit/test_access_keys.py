"""access.keys: the key format, the keys file's content, and checking a presented key."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime

import pytest

from ragline.access.keys import KeyRing, new_key
from ragline.access.policy import Caller, Scope
from ragline.errors import ConfigurationError, Unauthenticated

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _ring() -> tuple[KeyRing, dict[str, str]]:
    ring = KeyRing()
    keys = {}
    for name, tenant, scopes in [
        ("writer", "acme", {Scope.INGEST}),
        ("reader", "acme", {Scope.READ}),
        ("ops", "ops-team", {Scope.OPERATOR}),
    ]:
        key, entry = new_key(tenant, scopes, now=NOW, taken=ring.entries)
        ring = ring.with_entry(entry)
        keys[name] = key
    return ring, keys


def test_a_key_is_rl_id_secret_with_a_256_bit_secret() -> None:
    key, entry = new_key("acme", {Scope.READ}, now=NOW)
    match = re.fullmatch(r"rl_([0-9a-f]{12})_([A-Za-z0-9_-]+)", key)
    assert match and match.group(1) == entry.key_id
    secret = match.group(2)
    assert len(base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))) >= 32
    assert entry.created == NOW.replace(microsecond=0)
    assert entry.tenant == "acme" and entry.scopes == {Scope.READ}
    assert new_key("acme", {Scope.READ}, now=NOW)[0] != key


def test_the_file_round_trips_and_holds_only_hashes() -> None:
    ring, keys = _ring()
    text = ring.dumps()
    for key in keys.values():
        assert key not in text
        assert key.split("_", 2)[2] not in text  # not even the secret part
    assert KeyRing.parse(text, "keys.toml") == ring
    assert text.startswith("# ragline API keys")
    assert "[keys." in text and "scopes = [" in text


def test_a_right_key_is_its_tenant_with_its_scopes() -> None:
    ring, keys = _ring()
    writer = ring.authenticate([f"Bearer {keys['writer']}"])
    assert writer == Caller("acme", frozenset({Scope.INGEST}), keys["writer"][3:15])
    ops = ring.authenticate([f"bearer {keys['ops']}"])  # the scheme is case-insensitive
    assert ops.tenant == "ops-team" and ops.scopes == {Scope.OPERATOR, Scope.ADMIN}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], "carries no API key: send the metadata `authorization: Bearer <key>`"),
        (["Bearer A", "Bearer B"], "carries 2 authorization entries; send exactly one"),
        (["Basic dXNlcjpwYXNz"], "not a bearer token"),
        (["rl_0123456789ab_" + "x" * 43], "not a bearer token"),
        (["Bearer"], "malformed"),
        (["Bearer not-a-key"], "malformed"),
        (["Bearer rl_0123456789ab_short"], "malformed"),
        (["Bearer rl_XYZ_" + "x" * 43], "malformed"),
        ([b"Bearer rl_0123456789ab_" + b"x" * 43], "not a bearer token"),
        (["Bearer rl_0123456789ab_" + "x" * 43], "API key 0123456789ab is unknown or revoked"),
    ],
)
def test_no_key_a_malformed_key_or_an_unknown_one_is_unauthenticated(
    values: list[str | bytes], expected: str
) -> None:
    ring, _ = _ring()
    with pytest.raises(Unauthenticated, match=re.escape(expected)):
        ring.authenticate(values)


def test_a_known_id_with_a_wrong_secret_is_unauthenticated_without_quoting_it() -> None:
    ring, keys = _ring()
    forged = keys["writer"][:16] + "A" * 43
    with pytest.raises(Unauthenticated) as caught:
        ring.authenticate([f"Bearer {forged}"])
    assert forged[16:] not in str(caught.value)
    assert keys["writer"][3:15] in str(caught.value)  # the public id helps whoever debugs it


def test_a_revoked_key_is_refused() -> None:
    ring, keys = _ring()
    key_id = keys["reader"][3:15]
    with pytest.raises(Unauthenticated, match="unknown or revoked"):
        ring.without(key_id).authenticate([f"Bearer {keys['reader']}"])


def test_an_entry_never_shows_its_hash() -> None:
    ring, _ = _ring()
    entry = next(iter(ring.entries.values()))
    assert entry.sha256 not in repr(entry) and entry.sha256 not in repr(ring)


@pytest.mark.parametrize("tenant", ["Acme", "", "-acme", "a b", "acme.corp", "x" * 64, "é"])
def test_a_bad_tenant_is_refused_at_create(tenant: str) -> None:
    with pytest.raises(ConfigurationError, match="is not a valid tenant id"):
        new_key(tenant, {Scope.READ}, now=NOW)


def test_good_tenants() -> None:
    for tenant in ["a", "acme", "0-team_x", "x" * 63]:
        assert new_key(tenant, {Scope.READ}, now=NOW)[1].tenant == tenant


ENTRY = """
[keys.0123456789ab]
tenant = "acme"
scopes = ["ingest"]
created = 2026-12-01T12:00:00Z
sha256 = "{sha}"
"""
SHA = "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("keys = [", "is not valid TOML"),
        ("version = 1\n", "unknown top-level entries ['version']"),
        ("keys = 3\n", "`keys` must be [keys.<id>] tables"),
        (ENTRY.replace('"acme"', '"Acme Corp"'), "key '0123456789ab': tenant 'Acme Corp' is not"),
        (ENTRY.replace('["ingest"]', '["ingest", "write"]'), "unknown scope 'write'; the scopes"),
        (ENTRY.replace('["ingest"]', "[]"), "at least one scope"),
        (ENTRY.replace('["ingest"]', '"ingest"'), "scopes must be a list of strings"),
        (ENTRY.replace("0123456789ab", "KEY1"), "key 'KEY1': a key id is 12 lowercase hex"),
        (ENTRY.replace("tenant =", "tenants ="), "missing tenant; unknown fields tenants"),
        (ENTRY.replace("2026-12-01T12:00:00Z", '"yesterday"'), "created must be a date-time"),
        (ENTRY.replace("{sha}", "{sha}0"), "sha256 must be 64 lowercase hex digits"),
    ],
)
def test_a_broken_file_is_a_clear_error_naming_the_entry(text: str, expected: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        KeyRing.parse(text.replace("{sha}", SHA), "/etc/ragline/keys.toml")
    message = str(caught.value)
    assert expected in message
    assert "/etc/ragline/keys.toml" in message
    assert SHA not in message


def test_an_empty_file_has_no_keys() -> None:
    assert KeyRing.parse("", "keys.toml").entries == {}
    assert KeyRing.parse("[keys]\n", "keys.toml").entries == {}
    entry = KeyRing.parse(ENTRY.replace("{sha}", SHA), "k").entries["0123456789ab"]
    assert entry.created == datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
