"""Fixtures of the hit path's tests (test_hit_path.py, test_hit_front.py)."""

from __future__ import annotations

import pytest

from tests.factories import funded_user, paid_bounty


@pytest.fixture
def bounty(db):
    owner = funded_user("500.00")
    for n in range(12):  # a list page over GZIP_MIN_BYTES
        paid_bounty(owner, title=f"Design a logo for shop number {n}", amount="20.00")
    return paid_bounty(owner, title="Design a logo for a bakery", amount="40.00")


@pytest.fixture
def limits(settings):
    """Read tiers with long windows (a window ending mid-test would reset its count)."""

    def set_limits(count: int = 100) -> None:
        settings.RATE_LIMITS = {
            **settings.RATE_LIMITS,
            **dict.fromkeys(("list", "search", "read"), f"{count}/1h"),
        }

    set_limits()
    return set_limits
