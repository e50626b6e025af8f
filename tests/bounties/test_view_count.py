from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bounties.services import bounty_views_flush
from tests.factories import paid_bounty

pytestmark = pytest.mark.django_db


def view_count(bounty) -> int:
    bounty.refresh_from_db(fields=["view_count"])
    return bounty.view_count


def test_views_are_counted_in_redis_and_written_in_one_batch(api_client):
    hot, cold = paid_bounty(), paid_bounty()
    api_client.get(f"/api/bounties/{hot.pk}")  # the first view flushes at once (nothing was due)

    with CaptureQueriesContext(connection) as queries:
        for _ in range(4):
            api_client.get(f"/api/bounties/{hot.pk}")
        api_client.get(f"/api/bounties/{cold.pk}")

    assert not [q for q in queries if q["sql"].lstrip().upper().startswith("UPDATE")]
    assert (view_count(hot), view_count(cold)) == (1, 0)

    with CaptureQueriesContext(connection) as queries:
        assert bounty_views_flush() == 2

    assert [q["sql"].split()[0] for q in queries] == ["UPDATE"]
    assert (view_count(hot), view_count(cold)) == (5, 1)
    assert bounty_views_flush() == 0


def test_views_are_still_counted_when_redis_is_down(api_client, own_redis):
    bounty = paid_bounty()
    own_redis.stop()

    response = api_client.get(f"/api/bounties/{bounty.pk}")

    assert response.status_code == 200
    assert view_count(bounty) == 1
