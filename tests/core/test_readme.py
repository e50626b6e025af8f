"""README.md names every make target and every management command of the project, each with an
example, so a newcomer finds them without reading the Makefile or the apps' folders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
README = (ROOT / "README.md").read_text()
PROJECT_APPS = ["accounts", "bounties", "core", "messaging", "perf", "wallet"]


def make_targets() -> list[str]:
    """The Makefile's documented targets (``target: ... ## what it does``)."""
    return re.findall(r"^([a-z][a-z0-9-]*):[^\n]*##", (ROOT / "Makefile").read_text(), flags=re.M)


def management_commands() -> list[str]:
    return sorted(
        path.stem
        for app in PROJECT_APPS
        for path in (ROOT / app / "management" / "commands").glob("*.py")
        if not path.stem.startswith("_")
    )


def test_the_lists_are_not_empty():
    assert {"run", "test", "services", "bench", "help"} <= set(make_targets())
    assert {"seed_data", "loadtest", "warm_cache", "check_ledger"} <= set(management_commands())


@pytest.mark.parametrize("target", make_targets())
def test_every_make_target_has_a_row_in_readme(target):
    # A row of a table, or a line of the two commands' block.
    row = rf"^\| `make {re.escape(target)}\b[^`]*` \|"
    line = rf"^make {re.escape(target)}\s+# "
    assert re.search(row, README, flags=re.M) or re.search(line, README, flags=re.M), target


@pytest.mark.parametrize("command", management_commands())
def test_every_management_command_has_a_row_with_an_example(command):
    cell = r"(?:[^|\\]|\\.)*"  # a table cell: anything but an unescaped |
    example = rf"^\| `{re.escape(command)}\b{cell}\| `manage\.py {re.escape(command)}\b[^`]*` \|"
    assert re.search(example, README, flags=re.M), command
