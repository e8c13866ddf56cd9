"""Every setting is documented where a person looks for it: README.md's table and `ragline --help`."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragline.cli.main import main
from ragline.config import Settings

pytestmark = pytest.mark.unit

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_table_names_every_setting() -> None:
    table = [line for line in README.read_text().splitlines() if line.startswith("| `RAGLINE_")]
    missing = [name for name, _ in Settings.variables() if not any(f"`{name}`" in r for r in table)]
    assert not missing, f"add these to README.md's configuration table: {missing}"


def test_help_lists_every_setting_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, default in Settings.variables():
        assert any(line.split()[:2] == [name, default or "(empty)"] for line in out.splitlines())
