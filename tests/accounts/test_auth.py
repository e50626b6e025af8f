from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIRequestFactory

from accounts.authentication import BearerTokenAuthentication
from accounts.errors import UsernameTaken
from accounts.models import AuthToken, User
from accounts.selectors import AUTH_USER_FIELDS
from accounts.services import token_issue, user_register
from tests.conftest import assert_error, client_for
from tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

REGISTER = "/api/auth/register"
TOKEN = "/api/auth/token"
ME = "/api/me"


def register(api_client, **overrides):
    body = {"username": "hunter_ada", "email": "ada@example.com", "password": "orbit-Lattice-42"}
    body.update(overrides)
    return api_client.post(REGISTER, {k: v for k, v in body.items() if v is not None}, format="json")


# --- register --------------------------------------------------------------------------------


def test_register_creates_user_with_hashed_password_and_returns_profile(api_client):
    response = register(api_client)

    assert response.status_code == 201
    body = response.json()
    assert body["username"] == "hunter_ada"
    assert body["email"] == "ada@example.com"
    assert "password" not in body
    user = User.objects.get(pk=body["id"])
    assert user.password != "orbit-Lattice-42"
    assert user.check_password("orbit-Lattice-42")


def test_register_duplicate_username_in_other_case_is_rejected_and_creates_nothing(api_client):
    UserFactory(username="Hunter_Ada")

    error = assert_error(register(api_client, username="hunter_ADA"), 400, "validation_error")

    assert "username" in error["fields"]
    assert User.objects.filter(username__iexact="hunter_ada").count() == 1


def test_register_weak_password_is_rejected_and_creates_nothing(api_client):
    error = assert_error(register(api_client, password="12345678"), 400, "validation_error")

    assert error["fields"]["password"]
    assert not User.objects.filter(username="hunter_ada").exists()


def test_register_password_like_username_is_rejected(api_client):
    error = assert_error(register(api_client, password="hunter_ada1"), 400, "validation_error")

    assert error["fields"]["password"]


def test_register_missing_fields_are_each_reported(api_client):
    error = assert_error(api_client.post(REGISTER, {}, format="json"), 400, "validation_error")

    assert set(error["fields"]) == {"username", "email", "password"}
    assert User.objects.count() == 0


def test_register_rejects_bad_username_and_email(api_client):
    error = assert_error(register(api_client, username="a b!", email="not-an-email"), 400, "validation_error")

    assert set(error["fields"]) == {"username", "email"}
    assert User.objects.count() == 0


def test_register_race_past_the_check_is_decided_by_the_unique_index():
    user_register(username="Racer", email="r1@example.com", password=DEFAULT_PASSWORD)

    with pytest.raises(UsernameTaken):
        user_register(username="RACER", email="r2@example.com", password=DEFAULT_PASSWORD)

    assert User.objects.filter(username__iexact="racer").count() == 1


# --- token -----------------------------------------------------------------------------------


def test_token_is_issued_for_username_in_any_case_and_authenticates(api_client):
    UserFactory(username="Grace")

    response = api_client.post(TOKEN, {"username": "gRACE", "password": DEFAULT_PASSWORD}, format="json")

    assert response.status_code == 200
    token = response.json()["token"]
    assert len(token) >= 40
    me = api_client.get(ME, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert me.status_code == 200
    assert me.json()["username"] == "Grace"


def test_token_is_stored_only_as_a_hash(api_client):
    user = UserFactory()

    token = api_client.post(
        TOKEN, {"username": user.username, "password": DEFAULT_PASSWORD}, format="json"
    ).json()["token"]

    stored = AuthToken.objects.get(user=user)
    assert stored.key_hash != token
    assert token not in stored.key_hash


def test_token_with_wrong_password_is_refused_and_issues_nothing(api_client):
    user = UserFactory()

    response = api_client.post(TOKEN, {"username": user.username, "password": "wrong"}, format="json")

    assert_error(response, 400, "invalid_credentials")
    assert not AuthToken.objects.exists()


def test_token_for_unknown_user_is_refused_the_same_way(api_client):
    response = api_client.post(TOKEN, {"username": "nobody", "password": "whatever"}, format="json")

    assert_error(response, 400, "invalid_credentials")


def test_token_missing_fields_are_reported(api_client):
    error = assert_error(api_client.post(TOKEN, {"username": "x"}, format="json"), 400, "validation_error")

    assert set(error["fields"]) == {"password"}


def test_login_works_even_with_a_stale_bearer_header(api_client):
    user = UserFactory()
    api_client.credentials(HTTP_AUTHORIZATION="Bearer revoked-or-expired")

    response = api_client.post(
        TOKEN, {"username": user.username, "password": DEFAULT_PASSWORD}, format="json"
    )

    assert response.status_code == 200


@pytest.mark.django_db(transaction=True)  # the cache eviction runs on commit
def test_logout_revokes_the_token_even_when_its_owner_was_cached(user):
    client = client_for(user)
    assert client.get(ME).status_code == 200  # caches the token's owner

    assert client.delete(TOKEN).status_code == 204

    assert_error(client.get(ME), 401, "invalid_token")
    assert not AuthToken.objects.filter(user=user).exists()


# --- me and bearer authentication ------------------------------------------------------------


def test_me_returns_the_callers_private_profile(user, user_client):
    response = user_client.get(ME)

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == user.pk
    assert body["email"] == user.email


def test_me_without_credentials_is_401_with_bearer_challenge(api_client):
    response = api_client.get(ME)

    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer not-a-real-token", "Bearer two parts", "Bearer"])
def test_me_with_bad_bearer_header_is_401(api_client, user, header):
    response = api_client.get(ME, HTTP_AUTHORIZATION=header)

    assert response.status_code == 401
    assert response.json()["error"]["code"] in {"invalid_token", "authentication_failed"}


def test_expired_token_is_refused(user):
    client = client_for(user)
    AuthToken.objects.filter(user=user).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert_error(client.get(ME), 401, "invalid_token")


def test_token_of_deactivated_user_is_refused(user):
    client = client_for(user)
    User.objects.filter(pk=user.pk).update(is_active=False)

    assert_error(client.get(ME), 401, "invalid_token")


def test_cached_token_authenticates_without_any_database_query(user, django_assert_num_queries):
    raw, _ = token_issue(user=user)
    request = APIRequestFactory().get(ME, HTTP_AUTHORIZATION=f"Bearer {raw}")
    authenticator = BearerTokenAuthentication()
    with django_assert_num_queries(1):  # cold: one indexed lookup, then cached
        authenticator.authenticate(request)

    with django_assert_num_queries(0):
        authenticated_user, auth = authenticator.authenticate(request)

    assert authenticated_user.pk == user.pk
    assert authenticated_user.username == user.username
    assert auth == raw


def test_me_with_warm_token_runs_only_the_profile_query(user, user_client, django_assert_num_queries):
    user_client.get(ME)

    with django_assert_num_queries(1):
        response = user_client.get(ME)

    assert response.status_code == 200


def test_cached_user_loads_other_fields_on_demand_instead_of_blanks(user):
    raw, _ = token_issue(user=user)
    request = APIRequestFactory().get(ME, HTTP_AUTHORIZATION=f"Bearer {raw}")
    BearerTokenAuthentication().authenticate(request)  # warm

    cached_user, _ = BearerTokenAuthentication().authenticate(request)

    assert cached_user.email == user.email


@pytest.mark.parametrize(("is_staff", "is_superuser"), [(False, False), (True, False), (True, True)])
def test_a_cold_and_a_warm_token_give_the_user_as_the_database_has_it(is_staff, is_superuser):
    """The cold lookup is written out (accounts.selectors._TOKEN_SQL): its columns must be the
    user's, in AUTH_USER_FIELDS' order, and what it caches must read back the same."""
    user = UserFactory(is_staff=is_staff, is_superuser=is_superuser)
    raw, _ = token_issue(user=user)
    request = APIRequestFactory().get(ME, HTTP_AUTHORIZATION=f"Bearer {raw}")

    cold, _ = BearerTokenAuthentication().authenticate(request)
    warm, _ = BearerTokenAuthentication().authenticate(request)

    expected = {field: getattr(user, field) for field in AUTH_USER_FIELDS}
    assert {field: getattr(cold, field) for field in AUTH_USER_FIELDS} == expected
    assert {field: getattr(warm, field) for field in AUTH_USER_FIELDS} == expected
