"""`ragline keys create | list | revoke` on a keys file in a temporary folder."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest

from ragline.access.keys_file import read_keys
from ragline.cli.main import main

pytestmark = pytest.mark.unit


def _create(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[str, str]:
    argv = ["keys", "create", "--file", str(path), "--tenant", "acme", "--scopes", "ingest,read"]
    assert main([*argv, *extra]) == 0
    out, err = capsys.readouterr()
    return out, err


def test_create_prints_the_key_once_and_writes_only_its_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.toml"
    out, err = _create(path, capsys)
    (key,) = out.split()  # stdout is the key alone, for KEY=$(ragline keys create ...)
    assert re.fullmatch(r"rl_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", key)
    assert "Store the key now" in err and key[3:15] in err and key not in err
    text = path.read_text()
    assert key not in text and key[16:] not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    _, ring = read_keys(path)
    (entry,) = ring.entries.values()
    assert (entry.key_id, entry.tenant, sorted(entry.scopes)) == (
        key[3:15],
        "acme",
        ["ingest", "read"],
    )
    assert ring.authenticate([f"Bearer {key}"]).tenant == "acme"
    assert not list(tmp_path.glob(".*tmp")), "the temporary file was left behind"


def test_create_adds_to_an_existing_file_and_keeps_its_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.toml"
    first, _ = _create(path, capsys)
    path.chmod(0o640)
    second, _ = _create(path, capsys)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    ring = read_keys(path)[1]
    assert {first.strip()[3:15], second.strip()[3:15]} == set(ring.entries)


def test_create_follows_a_symlink_instead_of_replacing_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real = tmp_path / "real.toml"
    link = tmp_path / "keys.toml"
    link.symlink_to(real)
    _create(link, capsys)
    assert link.is_symlink() and len(read_keys(real)[1].entries) == 1


def test_list_shows_ids_tenants_and_scopes_never_hashes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.toml"
    key = _create(path, capsys)[0].strip()
    assert main(["keys", "list", "--file", str(path)]) == 0
    out = capsys.readouterr().out
    (entry,) = read_keys(path)[1].entries.values()
    assert key[3:15] in out and "acme" in out and "ingest,read" in out
    assert entry.sha256 not in out
    assert main(["keys", "list", "--file", str(path), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row.keys() == {"id", "tenant", "scopes", "created"}
    assert row["scopes"] == ["ingest", "read"]


def test_revoke_removes_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "keys.toml"
    key = _create(path, capsys)[0].strip()
    keep = _create(path, capsys)[0].strip()
    assert main(["keys", "revoke", key[3:15], "--file", str(path)]) == 0
    assert "Revoked key" in capsys.readouterr().out
    assert set(read_keys(path)[1].entries) == {keep[3:15]}
    assert main(["keys", "revoke", key[3:15], "--file", str(path)]) == 2
    assert "no key" in capsys.readouterr().err


def test_the_file_defaults_to_ragline_keys_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAGLINE_KEYS_FILE", raising=False)
    assert main(["keys", "list"]) == 2
    assert "--file PATH or set RAGLINE_KEYS_FILE" in capsys.readouterr().err
    monkeypatch.setenv("RAGLINE_KEYS_FILE", str(tmp_path / "env.toml"))
    assert main(["keys", "create", "--tenant", "t1", "--scopes", "admin"]) == 0
    assert len(read_keys(tmp_path / "env.toml")[1].entries) == 1


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--tenant", "acme", "--scopes", "ingest,write"],
            "unknown scope 'write'; the scopes are ingest, read, admin, operator",
        ),
        (["--tenant", "acme", "--scopes", ","], "at least one scope"),
        (["--tenant", "Acme Corp", "--scopes", "read"], "'Acme Corp' is not a valid tenant id"),
    ],
)
def test_bad_scopes_or_tenants_are_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    path = tmp_path / "keys.toml"
    assert main(["keys", "create", "--file", str(path), *args]) == 1
    captured = capsys.readouterr()
    assert expected in captured.err and not captured.out
    assert not path.exists()


def test_a_broken_file_is_not_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.toml"
    path.write_text("keys = [")
    assert main(["keys", "create", "--file", str(path), "--tenant", "a", "--scopes", "read"]) == 1
    assert "is not valid TOML" in capsys.readouterr().err
    assert path.read_text() == "keys = ["
    assert os.listdir(tmp_path) == ["keys.toml"]
