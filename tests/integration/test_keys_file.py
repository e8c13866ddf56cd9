"""access.keys_file.KeysFile on a real file system: reloads on a change of content, through a
Kubernetes-style `..data` symlink swap too; a broken file keeps the last good keys."""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ragline.access.keys import KeyRing, new_key
from ragline.access.keys_file import KeysFile, write_keys
from ragline.access.policy import Scope
from ragline.errors import ConfigurationError, Unauthenticated

pytestmark = pytest.mark.integration


def _ring(*tenants: str) -> tuple[KeyRing, list[str]]:
    ring, keys = KeyRing(), []
    for tenant in tenants:
        key, entry = new_key(tenant, {Scope.READ}, now=datetime.now(UTC))
        ring, keys = ring.with_entry(entry), [*keys, key]
    return ring, keys


def _ok(keys: KeysFile, key: str) -> bool:
    try:
        keys.authenticate([f"Bearer {key}"])
    except Unauthenticated:
        return False
    return True


def test_a_missing_or_broken_file_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist: create it with `ragline keys"):
        KeysFile(str(tmp_path / "absent.toml"), 2)
    (tmp_path / "bad.toml").write_text("[keys.0123456789ab]\ntenant = 1\n")
    with pytest.raises(ConfigurationError, match=r"bad\.toml, key .0123456789ab.: missing"):
        KeysFile(str(tmp_path / "bad.toml"), 2)


def test_a_change_is_loaded_and_a_broken_file_keeps_the_last_good_keys(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "keys.toml"
    ring, (a, b) = _ring("acme", "globex")
    write_keys(path, ring)
    keys = KeysFile(str(path), 2)
    assert _ok(keys, a) and _ok(keys, b)
    assert keys.reload() is False  # nothing changed

    write_keys(path, ring.without(a[3:15]))
    assert keys.reload() is True
    assert not _ok(keys, a) and _ok(keys, b)

    caplog.set_level(logging.INFO, logger="ragline.access.keys_file")
    path.write_text("this is = not toml [")
    assert keys.reload() is False and keys.reload() is False
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, "a broken file is reported once, not at every check"
    assert "is not valid TOML" in errors[0].getMessage()
    assert "still using the 1 keys loaded before" in errors[0].getMessage()
    assert _ok(keys, b)

    path.unlink()
    assert keys.reload() is False and _ok(keys, b)
    last_error = [r for r in caplog.records if r.levelno == logging.ERROR][-1]
    assert "does not exist" in last_error.getMessage()

    ring2, (c,) = _ring("initech")
    write_keys(path, ring.without(a[3:15]).with_entry(next(iter(ring2.entries.values()))))
    assert keys.reload() is True and _ok(keys, c) and _ok(keys, b)
    for record in caplog.records:
        for key in (a, b, c):
            assert key[16:] not in record.getMessage()


def test_a_secret_volume_symlink_swap_is_seen(tmp_path: Path) -> None:
    """As the kubelet updates a Secret volume: keys.toml -> ..data/keys.toml, and ..data is a
    symlink to a timestamped folder, swapped atomically for a new one."""
    ring, (a, b) = _ring("acme", "globex")
    old = tmp_path / "..2026_12_01_12_00_00.1"
    old.mkdir()
    write_keys(old / "keys.toml", ring)
    (tmp_path / "..data").symlink_to(old.name)
    (tmp_path / "keys.toml").symlink_to("..data/keys.toml")
    keys = KeysFile(str(tmp_path / "keys.toml"), 2)
    assert _ok(keys, a)

    new = tmp_path / "..2026_12_01_12_01_00.2"
    new.mkdir()
    write_keys(new / "keys.toml", ring.without(a[3:15]))
    os.utime(new / "keys.toml", ns=(0, 0))  # mtime tells nothing: the content does
    (tmp_path / "..data_tmp").symlink_to(new.name)
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
    assert keys.reload() is True
    assert not _ok(keys, a) and _ok(keys, b)


async def test_watch_reloads_on_its_own_and_stops_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    ring, (a,) = _ring("acme")
    write_keys(path, KeyRing())
    keys = KeysFile(str(path), 0.05)
    task = asyncio.create_task(keys.watch())
    write_keys(path, ring)
    for _ in range(100):
        if _ok(keys, a):
            break
        await asyncio.sleep(0.02)
    assert _ok(keys, a)
    keys.stop()
    await asyncio.wait_for(task, 2)
