"""API keys and the keys file's content: the key format, making a key, the file's entries, and
checking the key a call presents. Pure logic; reading, writing and reloading the file is
access.keys_file.

A key is ``rl_<id>_<secret>``. The id (12 hex digits) is public: it finds the key's entry, and
logs, errors and `ragline keys list` name keys by it. The secret is 32 random bytes from
`secrets`, url-safe base64. The file holds, per key, its tenant, scopes, creation time and the
sha256 of the whole key, never the key itself:

    [keys.3f9a2b1c4d5e]
    tenant = "acme"
    scopes = ["ingest", "read"]
    created = 2026-12-01T12:00:00Z
    sha256 = "…64 hex digits…"

A fast hash is right here, not a slow password hash (bcrypt, argon2): the secret is 256 random
bits, so there is nothing guessable for a slow hash to protect, and a call's check stays in
microseconds. Digests are compared with hmac.compare_digest.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import tomllib
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import tomli_w

from ragline.access.policy import Caller, Scope, parse_scopes, with_implied
from ragline.errors import ConfigurationError, Unauthenticated
from ragline.tenants import check_tenant

KEY_PREFIX = "rl_"
_KEY = re.compile(r"rl_(?P<id>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43,})")
_KEY_ID = re.compile(r"[0-9a-f]{12}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_FIELDS = ("tenant", "scopes", "created", "sha256")
_HEADER = (
    "# ragline API keys: the sha256 of each key, never the key itself.\n"
    "# Managed with `ragline keys create | list | revoke`; the gateway reloads this file when it\n"
    "# changes. Revoke a key by deleting its section.\n\n"
)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class KeyEntry:
    """One key in the keys file: everything but the key itself."""

    key_id: str
    tenant: str
    scopes: frozenset[Scope]
    created: datetime
    sha256: str = field(repr=False)

    def matches(self, key: str) -> bool:
        return hmac.compare_digest(_digest(key), self.sha256)

    def caller(self) -> Caller:
        return Caller(tenant=self.tenant, scopes=with_implied(self.scopes), key_id=self.key_id)


def new_key(
    tenant: str, scopes: Iterable[Scope], *, now: datetime, taken: Container[str] = ()
) -> tuple[str, KeyEntry]:
    """A new key and its entry; `taken` holds the ids already in use."""
    check_tenant(tenant, "the new key")
    held = frozenset(scopes)
    if not held:
        raise ConfigurationError("the new key: name at least one scope")
    key_id = secrets.token_hex(6)
    while key_id in taken:
        key_id = secrets.token_hex(6)
    key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    created = now.astimezone(UTC).replace(microsecond=0)
    return key, KeyEntry(key_id, tenant, held, created, _digest(key))


@dataclass(frozen=True)
class KeyRing:
    """The keys of one keys file, by id."""

    entries: Mapping[str, KeyEntry] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def parse(cls, text: str, source: str) -> KeyRing:
        """The keys in a keys file's text; ConfigurationError naming `source` and the entry at
        fault when it is not a valid keys file. Messages never quote a digest."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"keys file {source} is not valid TOML: {exc}") from None
        unknown = sorted(set(data) - {"keys"})
        if unknown:
            raise ConfigurationError(
                f"keys file {source}: unknown top-level entries {unknown}; it holds only "
                "[keys.<id>] tables"
            )
        tables = data.get("keys", {})
        if not isinstance(tables, dict):
            raise ConfigurationError(f"keys file {source}: `keys` must be [keys.<id>] tables")
        entries = {}
        for key_id, table in tables.items():
            entries[key_id] = _entry(key_id, table, f"keys file {source}, key {key_id!r}")
        return cls(MappingProxyType(entries))

    def dumps(self) -> str:
        """The keys file's text for these keys."""
        tables = {
            e.key_id: {
                "tenant": e.tenant,
                "scopes": [s.value for s in Scope if s in e.scopes],
                "created": e.created,
                "sha256": e.sha256,
            }
            for e in sorted(self.entries.values(), key=lambda e: (e.created, e.key_id))
        }
        return _HEADER + tomli_w.dumps({"keys": tables})

    def with_entry(self, entry: KeyEntry) -> KeyRing:
        return KeyRing(MappingProxyType({**self.entries, entry.key_id: entry}))

    def without(self, key_id: str) -> KeyRing:
        return KeyRing(MappingProxyType({k: e for k, e in self.entries.items() if k != key_id}))

    def authenticate(self, authorization: Sequence[str | bytes]) -> Caller:
        """The caller behind a call's `authorization` metadata values; Unauthenticated when there
        is none, it is malformed, or its key is unknown, revoked or wrong. Messages name at most
        the key's public id, never its secret."""
        if not authorization:
            raise Unauthenticated(
                "this call carries no API key: send the metadata `authorization: Bearer <key>` "
                "(an operator creates keys with `ragline keys create`)"
            )
        if len(authorization) > 1:
            raise Unauthenticated(
                f"this call carries {len(authorization)} authorization entries; send exactly one, "
                "`authorization: Bearer <key>`"
            )
        (value,) = authorization
        scheme, _, token = value.strip().partition(" ") if isinstance(value, str) else ("", "", "")
        if scheme.lower() != "bearer":
            raise Unauthenticated(
                "the authorization metadata is not a bearer token: send "
                "`authorization: Bearer <key>`"
            )
        match = _KEY.fullmatch(token.strip())
        if match is None:
            raise Unauthenticated(
                "the API key is malformed: ragline keys look like rl_<id>_<secret>; send the key "
                "exactly as `ragline keys create` printed it"
            )
        entry = self.entries.get(match["id"])
        if entry is None or not entry.matches(match.group(0)):
            raise Unauthenticated(
                f"API key {match['id']} is unknown or revoked (or its secret is wrong); ask for "
                "a new key (`ragline keys create`)"
            )
        return entry.caller()


def _entry(key_id: str, table: Any, where: str) -> KeyEntry:
    if not _KEY_ID.fullmatch(key_id):
        raise ConfigurationError(f"{where}: a key id is 12 lowercase hex digits")
    if not isinstance(table, dict):
        raise ConfigurationError(f"{where}: must be a table with {', '.join(_FIELDS)}")
    missing = [f for f in _FIELDS if f not in table]
    unknown = sorted(set(table) - set(_FIELDS))
    if missing or unknown:
        raise ConfigurationError(
            f"{where}: "
            + "; ".join(
                [
                    *([f"missing {', '.join(missing)}"] if missing else []),
                    *([f"unknown fields {', '.join(unknown)}"] if unknown else []),
                ]
            )
            + f" (a key has exactly {', '.join(_FIELDS)})"
        )
    tenant, scopes, created, sha256 = (table[f] for f in _FIELDS)
    if not isinstance(tenant, str):
        raise ConfigurationError(f"{where}: tenant must be a string")
    check_tenant(tenant, where)
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise ConfigurationError(f"{where}: scopes must be a list of strings")
    if not isinstance(created, datetime):
        raise ConfigurationError(f"{where}: created must be a date-time, e.g. 2026-12-01T12:00:00Z")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise ConfigurationError(f"{where}: sha256 must be 64 lowercase hex digits")
    return KeyEntry(key_id, tenant, parse_scopes(scopes, where), created, sha256)
