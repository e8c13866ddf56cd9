"""`ragline keys`: create, list and revoke the gateway's API keys in a keys file.

The file holds only each key's hash (see ragline.access.keys); `create` prints the key itself
once. The gateway reloads the file when it changes, so none of this needs a restart.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime

from ragline.access.keys import KeyEntry, KeyRing, new_key
from ragline.access.keys_file import read_keys, write_keys
from ragline.access.policy import Scope, parse_scopes
from ragline.cli.client_commands import UsageError

_SCOPES = ", ".join(s.value for s in Scope)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds the `keys` subcommand and its `create`, `list` and `revoke` commands."""
    keys = subparsers.add_parser(
        "keys",
        help="create, list or revoke API keys in the gateway's keys file",
        description="API keys for the gateway. The keys file (--file, default $RAGLINE_KEYS_FILE) "
        "holds only hashes; the gateway reloads it when it changes. Scopes: ingest (Ingest, "
        "IngestBatch, CancelJob, DeleteDocument), read (GetJob, WatchJob, Search, GetDocument), "
        "admin (the dead-letter calls), operator (every tenant; implies admin).",
    )
    commands = keys.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)

    p = commands.add_parser("create", help="make a new key; prints it once")
    p.add_argument("--tenant", required=True, help="the tenant the key acts for")
    p.add_argument(
        "--scopes", required=True, metavar="LIST", help=f"comma-separated, of: {_SCOPES}"
    )
    _add_file(p)
    p.set_defaults(handler=cmd_create)

    p = commands.add_parser("list", help="show the keys: id, tenant, scopes, created")
    _add_file(p)
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(handler=cmd_list)

    p = commands.add_parser("revoke", help="remove a key; calls with it fail from the next reload")
    p.add_argument("key_id", metavar="KEY_ID", help="the key's id, as `ragline keys list` shows")
    _add_file(p)
    p.set_defaults(handler=cmd_revoke)


def _add_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--file", metavar="PATH", help="the keys file (default: $RAGLINE_KEYS_FILE)"
    )


def _path(args: argparse.Namespace) -> str:
    path: str | None = args.file or os.environ.get("RAGLINE_KEYS_FILE")
    if not path:
        raise UsageError("which keys file? Pass --file PATH or set RAGLINE_KEYS_FILE")
    return path


def cmd_create(args: argparse.Namespace) -> int:
    """`ragline keys create`: adds a key to the file (making the file if needed) and prints it."""
    path = _path(args)
    scopes = parse_scopes([s for s in args.scopes.split(",") if s.strip()], "--scopes")
    ring = read_keys(path)[1] if os.path.exists(path) else KeyRing()
    key, entry = new_key(args.tenant, scopes, now=datetime.now(UTC), taken=ring.entries)
    write_keys(path, ring.with_entry(entry))
    print(key)
    print(
        f"Created key {entry.key_id} for tenant {entry.tenant!r} ({_scope_list(entry)}) in {path}. "
        "Store the key now: it is shown only this once, and the file keeps only its hash. "
        "Clients send it as `authorization: Bearer <key>` (the CLI: --api-key or RAGLINE_API_KEY).",
        file=sys.stderr,
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """`ragline keys list`: the keys in the file, oldest first; never their hashes."""
    path = _path(args)
    entries = sorted(read_keys(path)[1].entries.values(), key=lambda e: (e.created, e.key_id))
    if args.json:
        rows = [
            {
                "id": e.key_id,
                "tenant": e.tenant,
                "scopes": [s.value for s in Scope if s in e.scopes],
                "created": e.created.isoformat(),
            }
            for e in entries
        ]
        print(json.dumps(rows, indent=2))
        return 0
    if not entries:
        print(f"no keys in {path} (add one with `ragline keys create`)", file=sys.stderr)
        return 0
    width = max(len(e.tenant) for e in entries)
    print(f"{'ID':<12}  {'TENANT':<{width}}  {'CREATED':<25}  SCOPES")
    for e in entries:
        created = e.created.isoformat()
        print(f"{e.key_id:<12}  {e.tenant:<{width}}  {created:<25}  {_scope_list(e)}")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    """`ragline keys revoke`: removes a key from the file."""
    path = _path(args)
    ring = read_keys(path)[1]
    entry = ring.entries.get(args.key_id)
    if entry is None:
        raise UsageError(f"no key {args.key_id!r} in {path}; `ragline keys list` shows the ids")
    write_keys(path, ring.without(entry.key_id))
    print(
        f"Revoked key {entry.key_id} (tenant {entry.tenant!r}). A gateway reading {path} refuses "
        "it from its next reload (RAGLINE_KEYS_RELOAD_S)."
    )
    return 0


def _scope_list(entry: KeyEntry) -> str:
    return ",".join(s.value for s in Scope if s in entry.scopes)
