"""Cursors a client did not get from us are refused with one 400, on every cursor-paginated list."""

from __future__ import annotations

from base64 import b64encode
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from messaging.services import conversation_open, message_send
from tests.conftest import assert_error, client_for
from tests.factories import application, funded_user, paid_bounty

pytestmark = pytest.mark.django_db


def cursor(**tokens: str) -> str:
    return b64encode(urlencode(tokens).encode()).decode()


@pytest.fixture
def owner_client():
    """A user with bounties, an application, a ledger and a conversation: every list has rows."""
    owner = funded_user("500.00")
    bounty = paid_bounty(owner=owner, amount="40.00")
    paid_bounty(owner=owner, amount="60.00")
    hunter_request = application(bounty)
    conversation, _ = conversation_open(
        created_by=owner.pk, participant_ids={hunter_request.hunter_id}, bounty_id=bounty.pk, name=""
    )
    message_send(conversation_id=conversation.pk, sender_id=owner.pk, text="Hello there")
    client = client_for(owner)
    client.bounty, client.conversation = bounty, conversation
    return client


def lists(client) -> list[str]:
    return [
        "/api/bounties",
        "/api/bounties?ordering=amount",
        "/api/bounties?ordering=-amount",
        "/api/bounties?ordering=deadline",
        "/api/bounties/search?q=landing",
        f"/api/bounties/{client.bounty.pk}/requests",
        "/api/requests",
        "/api/wallet/transactions",
        "/api/conversations",
        f"/api/conversations/{client.conversation.pk}/messages",
    ]


CRAFTED = {
    "text where a value belongs": cursor(o="0", r="0", p="not-a-value"),
    "NUL byte": cursor(p="2026-01-01\x00"),
    "not a number": cursor(p="NaN"),
    "infinity": cursor(p="inf"),
    "huge number": cursor(p="1e100000"),
    "date without time zone": cursor(p="2026-01-01 10:00:00"),
    "year out of range": cursor(p="99999-01-01 00:00:00+00:00"),
    "negative offset": cursor(o="-1", p="1"),
    "base64 of binary": b64encode(b"\xff\xfe\x00").decode(),
}


@pytest.mark.parametrize("crafted", CRAFTED.values(), ids=CRAFTED.keys())
def test_crafted_cursor_is_400_invalid_cursor_on_every_list(owner_client, crafted):
    for url in lists(owner_client):
        separator = "&" if "?" in url else "?"
        response = owner_client.get(f"{url}{separator}{urlencode({'cursor': crafted})}")

        assert_error(response, 400, "invalid_cursor")


def test_cursors_we_hand_out_still_page_on_every_list(owner_client):
    for url in lists(owner_client):
        separator = "&" if "?" in url else "?"
        first = owner_client.get(f"{url}{separator}limit=1").json()
        if first["next"] is None:
            continue
        token = parse_qs(urlsplit(first["next"]).query)["cursor"][0]

        response = owner_client.get(f"{url}{separator}limit=1&{urlencode({'cursor': token})}")

        assert response.status_code == 200, (url, response.content)
        assert response.json()["results"] != first["results"]
