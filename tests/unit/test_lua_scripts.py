"""The Redis scripts as files: each says what KEYS and ARGV it takes, and each is used."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ragline.redis_scripts import lua_script

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2] / "services" / "ragline"
SCRIPTS = sorted(ROOT.glob("*/lua/*.lua"))


def test_there_are_scripts_to_check() -> None:
    assert len(SCRIPTS) >= 9


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_each_script_names_its_keys_and_argv_at_its_top(path: Path) -> None:
    header = "\n".join(line for line in path.read_text().splitlines() if line.startswith("--"))
    assert "KEYS" in header and "ARGV" in header, f"{path.name}: say what KEYS and ARGV are"
    package = path.parent.parent.name
    assert lua_script(package, path.stem) == path.read_text()


def test_every_script_is_loaded_somewhere() -> None:
    code = "\n".join(p.read_text() for p in ROOT.rglob("*.py"))
    used = set(re.findall(r'lua_script\("([a-z]+)", "([a-z_]+)"\)', code))
    files = {(p.parent.parent.name, p.stem) for p in SCRIPTS}
    assert files == used
