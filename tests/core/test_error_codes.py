"""Every domain error is where a reader looks for it (its domain's errors.py) and in README's
table with its status and message, so clients and the table never drift apart."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from django.conf import settings

from core.errors import DomainError

# Where DomainError subclasses may live: each domain's errors module, and the core plumbing
# that raises its own (cursors, Idempotency-Key).
MODULES = [
    "accounts.errors",
    "bounties.errors",
    "wallet.errors",
    "messaging.errors",
    "core.pagination",
    "core.idempotency",
]
ROW = re.compile(r"^\| `([a-z_]+)` \| (\d{3}) \| `([a-z_.]+)` \| (.+) \|$", re.M)


def domain_errors() -> list[type[DomainError]]:
    for module in MODULES:
        importlib.import_module(module)
    importlib.import_module(settings.ROOT_URLCONF)  # every view module, with any class it defines
    found, stack = [], list(DomainError.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if not cls.__module__.startswith("tests."):
            found.append(cls)
    return found


def readme_table() -> set[tuple[str, int, str, str]]:
    text = (Path(settings.BASE_DIR) / "README.md").read_text()
    section = text.split("#### Error codes of the domain", 1)[1].split("\n## ", 1)[0]
    return {(code, int(status), module, message) for code, status, module, message in ROW.findall(section)}


def test_every_domain_error_lives_in_its_domain_errors_module():
    misplaced = sorted(
        f"{cls.__module__}.{cls.__name__}" for cls in domain_errors() if cls.__module__ not in MODULES
    )

    assert not misplaced, f"move these to their domain's errors.py: {misplaced}"


def test_readme_lists_every_domain_error_with_its_status_and_message_and_nothing_else():
    in_code = {
        (cls.default_code, cls.status_code, cls.__module__, str(cls.default_detail))
        for cls in domain_errors()
    }

    assert readme_table() == in_code
