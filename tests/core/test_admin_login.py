"""The admin login is throttled like the API's sign-in: failed attempts per client IP and per
username, 429 with Retry-After past the limit, successes never counted, Redis down fails open."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"
WRONG = "not-the-password-1"


@pytest.fixture
def staff():
    return UserFactory(username="ops", is_staff=True, is_superuser=True)


@pytest.fixture(autouse=True)
def auth_limit(settings):
    # Five failures, over a window long enough that it cannot end in the middle of a test.
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "auth": "5/900m"}


def sign_in(username: str, password: str, ip: str = "198.51.100.7"):
    return Client(REMOTE_ADDR=ip).post(LOGIN, {"username": username, "password": password, "next": "/admin/"})


def assert_throttled(response) -> None:
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert b"Too many failed sign-ins" in response.content


def test_five_wrong_passwords_then_even_the_right_one_is_refused_with_429(staff):
    for _ in range(5):
        assert sign_in("ops", WRONG).status_code == 200  # the form again, with its error

    response = sign_in("ops", DEFAULT_PASSWORD)

    assert_throttled(response)
    assert "_auth_user_id" not in response.wsgi_request.session


def test_guessing_one_username_from_many_addresses_is_limited_per_username(staff):
    for attempt in range(5):
        sign_in("OPS", WRONG, ip=f"203.0.113.{attempt + 1}")  # any case is the same username

    assert_throttled(sign_in("ops", DEFAULT_PASSWORD, ip="203.0.113.99"))
    assert sign_in("someone-else", WRONG, ip="203.0.113.99").status_code == 200


def test_guessing_many_usernames_from_one_address_is_limited_per_address(staff):
    for attempt in range(5):
        sign_in(f"guess{attempt}", WRONG, ip="192.0.2.10")

    assert_throttled(sign_in("ops", DEFAULT_PASSWORD, ip="192.0.2.10"))
    assert sign_in("ops", DEFAULT_PASSWORD, ip="192.0.2.11").status_code == 302


def test_successful_sign_ins_are_not_counted(staff):
    for _ in range(8):
        assert sign_in("ops", DEFAULT_PASSWORD).status_code == 302


def test_the_login_page_itself_is_never_throttled(staff):
    for _ in range(6):
        sign_in("ops", WRONG)

    assert Client(REMOTE_ADDR="198.51.100.7").get(LOGIN).status_code == 200


def test_with_redis_down_the_login_fails_open(staff, own_redis):
    own_redis.stop()

    for _ in range(7):
        assert sign_in("ops", WRONG).status_code == 200

    assert sign_in("ops", DEFAULT_PASSWORD).status_code == 302


def test_a_signed_in_user_who_is_not_staff_gets_403_from_the_admin(staff):
    client = Client()
    client.force_login(UserFactory(username="member"))

    assert client.get("/admin/").status_code == 403
    assert client.get("/admin/accounts/user/").status_code == 403
    assert Client().get("/admin/").status_code == 302  # anonymous: to the login page
