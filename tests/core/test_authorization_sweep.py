"""Authorization sweep over the URL configuration, and mass-assignment tests.

Part 1 walks every route of ``bountyexpo/urls.py`` whose pattern captures an object id and every
method its view allows, and sends each request, against objects owned by someone else, as an
anonymous client and as a signed-in user who owns nothing. Protected routes must refuse in the
error shape and change nothing; the few routes open by contract (``OPEN_BY_CONTRACT``) must not
leak private fields. A new id-taking route fails the sweep until it is described in
``ROUTE_CASES`` (and, if it is meant to be open, in ``OPEN_BY_CONTRACT``).

Part 2 sends every create/update payload with fields a client must never set and checks that
each is ignored or rejected, and that the stored rows hold the server's values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db.models import Q
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AuthToken, User
from bounties.models import Bounty, BountyRequest, BountyStatus, RequestStatus
from bounties.services import bounty_cancel, bounty_delete, request_accept
from core.models import IdempotencyRecord
from messaging.models import Conversation, Message, Participant
from messaging.services import conversation_open, message_send, pair_key
from tests.conftest import assert_error, client_for
from tests.factories import DEFAULT_PASSWORD, UserFactory, application, bounty_data, funded_user, paid_bounty
from wallet.models import TransactionStatus, TransactionType, WalletAccount, WalletTransaction

pytestmark = pytest.mark.django_db

# --- discovery ---------------------------------------------------------------------------------

# Django and DRF answer these on every view (HEAD runs GET, OPTIONS describes the endpoint);
# test_head_and_options_reveal_nothing_about_someone_elses_object covers them separately.
IMPLICIT_METHODS = ("head", "options")


@dataclass(frozen=True)
class DiscoveredRoute:
    name: str | None  # with its namespace ("bounty-detail", "admin:bounties_bounty_change")
    pattern: str  # the full pattern ("api/^bounties/(?P<pk>\\d+)/cancel$")
    captures: tuple[str, ...]  # every keyword the URL captures (pk, bounty_pk, object_id...)
    methods: tuple[str, ...]
    callback: Callable


def _walk(resolver: URLResolver, prefix: str = "", namespaces: tuple[str, ...] = (), captures=()):
    for entry in resolver.url_patterns:
        found = (*captures, *entry.pattern.regex.groupindex)
        if isinstance(entry, URLResolver):
            inner = (*namespaces, entry.namespace) if entry.namespace else namespaces
            yield from _walk(entry, prefix + str(entry.pattern), inner, found)
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), namespaces, found, entry


def view_methods(callback: Callable) -> tuple[str, ...]:
    """The methods a route's view handles: a DRF viewset's ``actions`` mapping (set by the router
    or by ``as_view({...})``), else the handler methods of the class-based view."""
    actions = getattr(callback, "actions", None)
    if actions:
        return tuple(sorted(method.upper() for method in actions))
    view_class = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
    if view_class is None:  # a function view (the admin's): it answers whatever it is sent
        return ("GET", "POST")
    return tuple(
        sorted(
            method.upper()
            for method in view_class.http_method_names
            if method not in IMPLICIT_METHODS and hasattr(view_class, method)
        )
    )


# Captures that do not name an object: the admin's catch-all (any unknown admin path, 404).
NOT_OBJECT_IDS = {"url"}


def discover_id_routes() -> list[DiscoveredRoute]:
    """Every route whose URL captures an object id (any capture but NOT_OBJECT_IDS)."""
    routes = []
    for pattern, namespaces, captures, entry in _walk(get_resolver()):
        if not captures or set(captures) <= NOT_OBJECT_IDS:
            continue
        routes.append(
            DiscoveredRoute(
                name=":".join((*namespaces, entry.name)) if entry.name else None,
                pattern=pattern,
                captures=tuple(dict.fromkeys(captures)),
                methods=view_methods(entry.callback),
                callback=entry.callback,
            )
        )
    return routes


ID_ROUTES = discover_id_routes()
API_ID_ROUTES = {
    route.name or route.pattern: route for route in ID_ROUTES if route.pattern.startswith("api/")
}
API_ID_PAIRS = [(name, method) for name, route in API_ID_ROUTES.items() for method in route.methods]

# --- who owns what -----------------------------------------------------------------------------


@dataclass
class World:
    """Objects of a third user (``owner``) and the people around them.

    ``stranger`` is signed in and owns nothing. Each object is in a state where its rightful
    party's request succeeds, so a refusal in the sweep is about who asks, not about state.
    """

    owner: User
    applicant: User  # has a pending application on open_bounty
    hunter: User  # accepted on working_bounty; talks with the owner in ``conversation``
    stranger: User
    open_bounty: Bounty
    pending: BountyRequest
    working_bounty: Bounty
    closed_bounty: Bounty
    conversation: Conversation
    secrets: tuple[str, ...]  # strings no other caller may ever see

    def role(self, name: str) -> User:
        return getattr(self, name)


@pytest.fixture
def world() -> World:
    marker = uuid4().hex[:12]
    owner = funded_user("1234.57", email=f"owner-{marker}@private.example")
    applicant = UserFactory(email=f"applicant-{marker}@private.example")
    hunter = UserFactory(email=f"hunter-{marker}@private.example")
    stranger = UserFactory()

    open_bounty = paid_bounty(owner)
    pending_note = f"Private application note {marker}: I can start tomorrow and finish in a week."
    pending = application(open_bounty, applicant, message=pending_note)

    working_bounty = paid_bounty(owner)
    accepted_note = f"Private application note {marker} of the hunter, with my portfolio attached."
    accepted = application(working_bounty, hunter, message=accepted_note)
    request_accept(request_id=accepted.pk, user_id=owner.pk)
    conversation = Conversation.objects.get(bounty=working_bounty)
    texts = [f"Private message {marker} #{n}: the door code is {n}{n}{n}{n}." for n in range(3)]
    for n, text in enumerate(texts):
        message_send(conversation_id=conversation.pk, sender_id=(owner, hunter)[n % 2].pk, text=text)

    closed_bounty = paid_bounty(owner)
    bounty_cancel(bounty_id=closed_bounty.pk, user_id=owner.pk)

    balance = WalletAccount.objects.get(user=owner).balance
    assert balance == Decimal("1074.57")  # 1234.57 - 2 x 80.00 held; the third one refunded
    secrets = (owner.email, applicant.email, hunter.email, pending_note, accepted_note, *texts, str(balance))
    return World(
        owner=owner,
        applicant=applicant,
        hunter=hunter,
        stranger=stranger,
        open_bounty=open_bounty,
        pending=pending,
        working_bounty=working_bounty,
        closed_bounty=closed_bounty,
        conversation=conversation,
        secrets=secrets,
    )


APPLY_MESSAGE = "I have built many landing pages for small shops; I can deliver this within five days."


@dataclass(frozen=True)
class RouteCase:
    """How to aim an id-taking API route at the world's objects, who may use each method, and
    a valid body for each write (so a refusal can only be about who asks)."""

    target: Callable[[World], dict[str, int]]
    rightful: dict[str, str]  # method -> role in World whose request succeeds
    bodies: dict[str, dict] = field(default_factory=dict)
    invalid_bodies: dict[str, dict] = field(default_factory=dict)  # a body validation refuses
    # Objects a stranger may not even know exist answer 404 (SPEC: "404 ... for objects the
    # caller may not see"); public ones (bounties) may answer 403 to a non-owner.
    hidden: bool = False


ROUTE_CASES: dict[str, RouteCase] = {
    "profile-detail": RouteCase(
        target=lambda w: {"pk": w.owner.pk},
        rightful={"GET": "owner", "PATCH": "owner"},
        bodies={"PATCH": {"bio": "Rewritten by somebody else", "display_name": "Not Me"}},
        invalid_bodies={"PATCH": {"avatar_url": "not a url"}},
    ),
    "profile-stats": RouteCase(target=lambda w: {"pk": w.owner.pk}, rightful={"GET": "owner"}),
    "bounty-detail": RouteCase(
        target=lambda w: {"pk": w.open_bounty.pk},
        rightful={"GET": "owner", "PATCH": "owner", "DELETE": "owner"},
        bodies={"PATCH": {"title": "Rewritten by somebody else", "location": "Elsewhere"}},
        invalid_bodies={"PATCH": {"title": "short", "amount": "1.00"}},
    ),
    "bounty-complete": RouteCase(target=lambda w: {"pk": w.working_bounty.pk}, rightful={"POST": "owner"}),
    "bounty-cancel": RouteCase(target=lambda w: {"pk": w.open_bounty.pk}, rightful={"POST": "owner"}),
    "bounty-archive": RouteCase(target=lambda w: {"pk": w.closed_bounty.pk}, rightful={"POST": "owner"}),
    "bounty-requests": RouteCase(
        target=lambda w: {"bounty_pk": w.open_bounty.pk},
        rightful={"GET": "owner", "POST": "stranger"},
        bodies={"POST": {"message": APPLY_MESSAGE}},
        invalid_bodies={"POST": {"message": "too short"}},
    ),
    "request-accept": RouteCase(
        target=lambda w: {"pk": w.pending.pk}, rightful={"POST": "owner"}, hidden=True
    ),
    "request-reject": RouteCase(
        target=lambda w: {"pk": w.pending.pk}, rightful={"POST": "owner"}, hidden=True
    ),
    "request-withdraw": RouteCase(
        target=lambda w: {"pk": w.pending.pk}, rightful={"POST": "applicant"}, hidden=True
    ),
    "conversation-messages": RouteCase(
        target=lambda w: {"conversation_pk": w.conversation.pk},
        rightful={"GET": "hunter", "POST": "hunter"},
        bodies={"POST": {"text": "Posted from outside the conversation"}},
        invalid_bodies={"POST": {"text": "   "}},
        hidden=True,
    ),
    "conversation-read": RouteCase(
        target=lambda w: {"pk": w.conversation.pk}, rightful={"POST": "hunter"}, hidden=True
    ),
}

ANYONE = "anyone"
SIGNED_IN = "any signed-in user"

# The only (route, method) pairs on someone else's object that are not refused, with who may
# use them. Everything else discovered must answer 401/403/404.
OPEN_BY_CONTRACT: dict[tuple[str, str], str] = {
    # SPEC §3, "public reads of bounties": the full bounty (no applications, no wallet data).
    ("bounty-detail", "GET"): ANYONE,
    # SPEC §3 "Profiles": public fields for anyone; email and wallet only for the owner.
    ("profile-detail", "GET"): ANYONE,
    # README "API": `GET profiles/{id}/stats`, who: anyone (public marketplace figures).
    ("profile-stats", "GET"): ANYONE,
    # README "API": any signed-in user applies to someone else's bounty; it creates only the
    # caller's own application. Anonymous callers are still refused.
    ("bounty-requests", "POST"): SIGNED_IN,
}

ANONYMOUS = "anonymous"
STRANGER = "stranger"
CALLERS = (ANONYMOUS, STRANGER)

# Keys that must never appear in what another caller sees of a profile or a bounty.
PRIVATE_KEYS = {
    "email",
    "password",
    "balance",
    "pending",
    "available",
    "wallet",
    "is_staff",
    "is_superuser",
    "last_login",
    "idempotency_key",
    "reference",
}


def _is_open_to(name: str, method: str, caller: str) -> bool:
    audience = OPEN_BY_CONTRACT.get((name, method))
    return audience == ANYONE or (audience == SIGNED_IN and caller == STRANGER)


REFUSED = [(n, m, c) for n, m in API_ID_PAIRS for c in CALLERS if not _is_open_to(n, m, c)]
PUBLIC_READS = [(n, m, c) for n, m in API_ID_PAIRS for c in CALLERS if OPEN_BY_CONTRACT.get((n, m)) == ANYONE]
SIGNED_IN_WRITES = [(n, m) for n, m in API_ID_PAIRS if OPEN_BY_CONTRACT.get((n, m)) == SIGNED_IN]


def _ids(params) -> list[str]:
    return ["-".join(param) for param in params]


def case_for(name: str) -> RouteCase:
    case = ROUTE_CASES.get(name)
    if case is None:
        pytest.fail(
            f"route {name!r} ({API_ID_ROUTES[name].pattern}) takes an object id but has no entry in "
            "ROUTE_CASES: say which object it targets and who may use each method"
        )
    return case


def url_for(name: str, world: World) -> str:
    return reverse(name, kwargs=case_for(name).target(world))


def send(client: APIClient | Client, method: str, url: str, body: dict | None = None):
    if body is None:
        return client.generic(method, url)
    return client.generic(method, url, json.dumps(body), content_type="application/json")


def caller_client(caller: str, world: World) -> APIClient:
    return APIClient() if caller == ANONYMOUS else client_for(world.stranger)


# --- what the database holds --------------------------------------------------------------------

SNAPSHOT_MODELS = (
    User,
    AuthToken,
    WalletAccount,
    WalletTransaction,
    Bounty,
    BountyRequest,
    Conversation,
    Participant,
    Message,
    IdempotencyRecord,
)
# A public bounty read counts a view (SPEC: "increments the view count cheaply"); nothing else.
VIEW_COUNT = {Bounty: {"view_count"}}


def snapshot(ignore: dict[type, set[str]] | None = None) -> dict[str, dict[Any, dict]]:
    """Every row of the marketplace tables, as this test's transaction sees them."""
    rows = {}
    for model in SNAPSHOT_MODELS:
        skip = {"search_vector", *(ignore or {}).get(model, ())}
        names = [f.attname for f in model._meta.concrete_fields if f.attname not in skip]
        pk = model._meta.pk.attname
        rows[model.__name__] = {row[pk]: row for row in model._base_manager.values(*names)}
    return rows


def diff(before: dict, after: dict) -> dict[str, dict[str, list]]:
    changes = {}
    for table, old in before.items():
        new = after[table]
        found = {
            "added": [new[pk] for pk in new.keys() - old.keys()],
            "removed": [old[pk] for pk in old.keys() - new.keys()],
            "changed": [(old[pk], new[pk]) for pk in old.keys() & new.keys() if old[pk] != new[pk]],
        }
        if any(found.values()):
            changes[table] = found
    return changes


def _walk_keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _walk_keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk_keys(item)


def assert_no_secrets(response, world: World) -> None:
    body = response.content.decode()
    leaked = [secret for secret in world.secrets if secret in body]
    assert not leaked, f"{response.request['REQUEST_METHOD']} {response.request['PATH_INFO']} leaked {leaked}"


# --- part 1: the sweep ------------------------------------------------------------------------

KNOWN_ID_ROUTES = {
    "bounty-detail": {"GET", "PATCH", "DELETE"},
    "bounty-complete": {"POST"},
    "bounty-cancel": {"POST"},
    "bounty-archive": {"POST"},
    "bounty-requests": {"GET", "POST"},
    "request-accept": {"POST"},
    "request-reject": {"POST"},
    "request-withdraw": {"POST"},
    "profile-detail": {"GET", "PATCH"},
    "profile-stats": {"GET"},
    "conversation-read": {"POST"},
    "conversation-messages": {"GET", "POST"},
}


def test_discovery_finds_the_known_id_routes_and_their_methods():
    found = {name: set(route.methods) for name, route in API_ID_ROUTES.items()}

    missing = {name: methods - found.get(name, set()) for name, methods in KNOWN_ID_ROUTES.items()}
    assert not {name: methods for name, methods in missing.items() if methods}, found
    assert found["bounty-detail"] == {"GET", "PATCH", "DELETE"}  # read from the router's actions
    assert found["profile-detail"] == {"GET", "PATCH"}  # read from the APIView's handlers
    assert API_ID_ROUTES["bounty-requests"].captures == ("bounty_pk",)
    assert API_ID_ROUTES["conversation-messages"].captures == ("conversation_pk",)
    assert API_ID_ROUTES["request-accept"].captures == ("pk",)


def test_every_id_route_and_method_is_described_and_the_allow_list_is_current():
    undescribed = sorted(
        f"{method} {API_ID_ROUTES[name].pattern} ({name})"
        for name, method in API_ID_PAIRS
        if name not in ROUTE_CASES or method not in ROUTE_CASES[name].rightful
    )
    assert not undescribed, (
        "new id-taking routes/methods: add them to ROUTE_CASES (target object and rightful party) "
        f"and, only if they are open by contract, to OPEN_BY_CONTRACT: {undescribed}"
    )
    stale = set(OPEN_BY_CONTRACT) - set(API_ID_PAIRS)
    assert not stale, f"OPEN_BY_CONTRACT names routes that no longer exist: {stale}"
    stale_cases = set(ROUTE_CASES) - set(API_ID_ROUTES)
    assert not stale_cases, f"ROUTE_CASES names routes that no longer exist: {stale_cases}"


@pytest.mark.parametrize(("name", "method", "caller"), REFUSED, ids=_ids(REFUSED))
def test_someone_elses_object_is_refused_in_the_error_shape_and_nothing_changes(world, name, method, caller):
    case = case_for(name)
    url = url_for(name, world)
    client = caller_client(caller, world)
    before = snapshot()

    response = send(client, method, url, case.bodies.get(method))

    # SPEC §3: anonymous callers need a token (401); a signed-in stranger is refused, and
    # objects they may not even see (applications, conversations) are 404.
    expected = {401} if caller == ANONYMOUS else {404} if case.hidden else {403, 404}
    assert response.status_code in expected, (method, url, response.status_code, response.content)
    assert_error(response, response.status_code)
    assert_no_secrets(response, world)
    assert diff(before, snapshot()) == {}


MALFORMED_JSON = '{"title": '
WRITE_REFUSALS = [(n, m, c, "malformed") for n, m, c in REFUSED if m != "GET"] + [
    (n, m, c, "invalid")
    for n, m, c in REFUSED
    if (case := ROUTE_CASES.get(n)) is not None and m in case.invalid_bodies
]


@pytest.mark.parametrize(("name", "method", "caller", "body"), WRITE_REFUSALS, ids=_ids(WRITE_REFUSALS))
def test_refusal_of_a_write_does_not_depend_on_its_body(world, name, method, caller, body):
    """Who may write is decided before what is written: a caller without the right learns
    nothing from validation (nor from the parser), and gets the same refusal as above."""
    case = case_for(name)
    url = url_for(name, world)
    client = caller_client(caller, world)
    before = snapshot()

    if body == "malformed":
        response = client.generic(method, url, MALFORMED_JSON, content_type="application/json")
    else:
        response = send(client, method, url, case.invalid_bodies[method])

    expected = {401} if caller == ANONYMOUS else {404} if case.hidden else {403, 404}
    assert response.status_code in expected, (method, url, response.status_code, response.content)
    assert_error(response, response.status_code)
    assert diff(before, snapshot()) == {}


@pytest.mark.parametrize(("name", "method", "caller"), PUBLIC_READS, ids=_ids(PUBLIC_READS))
def test_public_read_of_someone_elses_object_shows_no_private_field(world, name, method, caller):
    url = url_for(name, world)
    # The owner reads first: whatever the owner's own view put in a cache is what the other
    # caller meets next.
    assert send(client_for(world.owner), method, url).status_code == 200
    client = caller_client(caller, world)
    before = snapshot(ignore=VIEW_COUNT)

    response = send(client, method, url)

    assert response.status_code == 200, response.content
    leaked_keys = PRIVATE_KEYS & set(_walk_keys(response.json()))
    assert not leaked_keys, f"{method} {url} as {caller} shows {leaked_keys}"
    assert_no_secrets(response, world)
    assert diff(before, snapshot(ignore=VIEW_COUNT)) == {}


# README "Edge caching": of the id routes, only these answer an anonymous GET with a body a
# shared cache (nginx, a CDN) may keep; every other answer, and every answer to a signed-in
# caller, is private. tests/core/test_cache_headers.py covers the routes without an id.
EDGE_CACHEABLE = {"bounty-detail", "profile-detail", "profile-stats"}
RIGHTFUL = "rightful"
GET_CALLERS = [(n, c) for n, m in API_ID_PAIRS if m == "GET" for c in (*CALLERS, RIGHTFUL)]


@pytest.mark.parametrize(("name", "caller"), GET_CALLERS, ids=_ids(GET_CALLERS))
def test_only_anonymous_cached_reads_are_public(world, name, caller):
    if caller == RIGHTFUL:
        client = client_for(world.role(case_for(name).rightful.get("GET", "owner")))
    else:
        client = caller_client(caller, world)

    response = send(client, "GET", url_for(name, world))

    cache_control = response["Cache-Control"]
    if caller == ANONYMOUS and name in EDGE_CACHEABLE:
        assert response.status_code == 200
        assert cache_control.startswith("public, ") and "s-maxage=" in cache_control
        assert "Authorization" in response["Vary"]
    else:
        assert cache_control in {"private, no-cache", "private, no-store"}, (
            response.status_code,
            cache_control,
        )


@pytest.mark.parametrize(("name", "method"), SIGNED_IN_WRITES, ids=_ids(SIGNED_IN_WRITES))
def test_write_open_to_signed_in_users_adds_only_the_callers_own_rows(world, name, method):
    case = case_for(name)
    url = url_for(name, world)
    client = client_for(world.stranger)
    before = snapshot()

    response = send(client, method, url, case.bodies.get(method))

    assert response.status_code == 201, response.content
    assert_no_secrets(response, world)
    changes = diff(before, snapshot())
    assert all(not table["removed"] and not table["changed"] for table in changes.values()), changes
    added = [row for table in changes.values() for row in table["added"]]
    assert added
    user_columns = ("user_id", "owner_id", "hunter_id", "sender_id", "created_by_id")
    assert all(world.stranger.pk in {row.get(column) for column in user_columns} for row in added), added


@pytest.mark.parametrize(("name", "method"), API_ID_PAIRS, ids=_ids(API_ID_PAIRS))
def test_rightful_party_succeeds_where_the_sweep_is_refused(world, name, method):
    """The control of the sweep: the same request by the right person works, so the refusals
    above are about who asks, not about the object's state or the body."""
    case = case_for(name)
    client = client_for(world.role(case.rightful[method]))

    response = send(client, method, url_for(name, world), case.bodies.get(method))

    assert 200 <= response.status_code < 300, (method, name, response.content)


MISSING_ID = 2_147_483_000


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("name", sorted(API_ID_ROUTES))
def test_head_and_options_reveal_nothing_about_someone_elses_object(world, name, caller):
    case = case_for(name)
    url = url_for(name, world)
    missing_url = reverse(name, kwargs=dict.fromkeys(case.target(world), MISSING_ID))
    client = caller_client(caller, world)
    before = snapshot(ignore=VIEW_COUNT)

    if "GET" in API_ID_ROUTES[name].methods:
        refused = send(client, "GET", url).status_code
        head = send(client, "HEAD", url)
        assert head.content == b""
        if refused >= 400:  # HEAD runs GET: never more open than it
            assert head.status_code == refused
    options = send(client, "OPTIONS", url)
    assert_no_secrets(options, world)
    # Indistinguishable from an id that does not exist: OPTIONS says nothing about the object.
    missing = send(client, "OPTIONS", missing_url)
    assert (options.status_code, options.content) == (missing.status_code, missing.content)
    assert diff(before, snapshot(ignore=VIEW_COUNT)) == {}


@pytest.mark.parametrize(("name", "method", "caller"), PUBLIC_READS, ids=_ids(PUBLIC_READS))
def test_head_of_a_public_read_is_answered_like_its_get(world, name, method, caller):
    url = url_for(name, world)
    client = caller_client(caller, world)

    assert send(client, "HEAD", url).status_code == send(client, "GET", url).status_code == 200


# People involved with the object, but not entitled to the action, and the refusal they get:
# 403 where they may see the object, 404 where they may not.
INVOLVED_BUT_NOT_ENTITLED = [
    ("bounty-complete", "POST", "hunter", 403),  # the hunter cannot release the escrow to themselves
    ("bounty-cancel", "POST", "applicant", 403),
    ("bounty-archive", "POST", "hunter", 403),
    ("bounty-detail", "PATCH", "applicant", 403),
    ("bounty-detail", "DELETE", "applicant", 403),
    ("bounty-requests", "GET", "applicant", 403),  # applicants do not read each other's applications
    ("request-accept", "POST", "applicant", 403),  # nobody accepts their own application
    ("request-reject", "POST", "applicant", 403),
    ("request-withdraw", "POST", "owner", 403),  # the owner rejects; only the applicant withdraws
    ("conversation-messages", "GET", "applicant", 404),  # not in the owner-hunter conversation
    ("conversation-messages", "POST", "applicant", 404),
    ("conversation-read", "POST", "applicant", 404),
    ("profile-detail", "PATCH", "hunter", 403),
]


@pytest.mark.parametrize(
    ("name", "method", "role", "status"),
    INVOLVED_BUT_NOT_ENTITLED,
    ids=[f"{name}-{method}-{role}" for name, method, role, _ in INVOLVED_BUT_NOT_ENTITLED],
)
def test_involved_party_without_the_right_is_refused_and_nothing_changes(world, name, method, role, status):
    case = case_for(name)
    url = url_for(name, world)
    client = client_for(world.role(role))
    before = snapshot()

    response = send(client, method, url, case.bodies.get(method))

    assert_error(response, status)
    assert diff(before, snapshot()) == {}


BOUNTY_ID_PAIRS = [(name, method) for name, method in API_ID_PAIRS if name.startswith("bounty-")]


@pytest.mark.parametrize("role", ["owner", "stranger"])
@pytest.mark.parametrize(("name", "method"), BOUNTY_ID_PAIRS, ids=_ids(BOUNTY_ID_PAIRS))
def test_deleted_bounty_is_not_found_by_anyone_on_any_bounty_route(world, name, method, role):
    bounty_delete(bounty_id=world.open_bounty.pk, user_id=world.owner.pk)
    case = case_for(name)
    url = reverse(name, kwargs=dict.fromkeys(case.target(world), world.open_bounty.pk))
    client = client_for(world.role(role))
    before = snapshot()

    response = send(client, method, url, case.bodies.get(method))

    assert_error(response, 404, "not_found")
    assert_no_secrets(response, world)
    assert diff(before, snapshot()) == {}


# Routes outside /api/ that capture something are Django admin pages (session login, staff
# only): anonymous callers are sent to the admin login, signed-in users who are not staff get
# 403 (core.admin_site), and neither sees anything.
NON_API_ID_ROUTES = [route for route in ID_ROUTES if not route.pattern.startswith("api/")]


def test_id_routes_outside_the_api_are_admin_pages_only():
    outside = [route.pattern for route in NON_API_ID_ROUTES if not route.pattern.startswith("admin/")]
    assert not outside, f"id-taking routes outside /api/ and /admin/ are not covered by this sweep: {outside}"
    assert any("object_id" in route.captures for route in NON_API_ID_ROUTES)


def admin_url(route: DiscoveredRoute, world: World) -> str:
    """The route's URL for a real row of its model (the owner's user row by default)."""
    model_admin = getattr(route.callback, "model_admin", None)
    model = model_admin.model if model_admin else User
    # The perf admin's pages are unmanaged models: no table, no rows.
    rows = model._base_manager.order_by("pk").values_list("pk", flat=True)
    row = rows.first() if model._meta.managed else None
    values = {
        "object_id": row if row is not None else world.owner.pk,
        "id": world.owner.pk,  # the user admin's password page
        "content_type_id": ContentType.objects.get_for_model(User).pk,  # "view on site"
        "app_label": "bounties",  # an app's index page
        # The perf admin's actions: refused before any of these is looked at.
        "slug": "bounties",  # a cache family to invalidate
        "queryid": 1,  # a statement to EXPLAIN
        "pid": 1,  # a session to cancel or terminate
        "action": "cancel",
    }
    unknown = set(route.captures) - set(values)
    assert not unknown, f"admin route {route.pattern} captures {unknown}: say how to fill them"
    # Some admin routes have no name (the object's bare URL redirects to its change page), so
    # fill the pattern itself: "<path:object_id>" and "(?P<app_label>...)" alike.
    url = re.sub(r"<(?:\w+:)?(\w+)>", lambda found: str(values[found[1]]), route.pattern)
    url = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda found: str(values[found[1]]), url)
    return "/" + url.replace("^", "").replace("$", "")


@pytest.mark.parametrize("caller", CALLERS)
def test_admin_pages_of_objects_refuse_non_staff_and_change_nothing(world, caller):
    client = Client()
    if caller == STRANGER:
        client.force_login(world.stranger)  # a real session, not staff
    before = snapshot()

    failures = []
    for route in NON_API_ID_ROUTES:
        url = admin_url(route, world)
        for method in route.methods:
            response = send(client, method, url, {} if method == "POST" else None)
            location = response.headers.get("Location", "")
            if caller == STRANGER:
                refused = response.status_code == 403
            else:
                refused = response.status_code == 302 and location.startswith(reverse("admin:login"))
            if not refused:
                failures.append(f"{method} {url}: {response.status_code} {location}")
            if any(secret in response.content.decode() for secret in world.secrets):
                failures.append(f"{method} {url}: shows private data")

    assert not failures, failures
    assert diff(before, snapshot()) == {}


# --- part 2: mass assignment --------------------------------------------------------------------

LONG_AGO = "2001-01-01T00:00:00Z"

# Fields no client may set, sent to every create/update endpoint.
NEVER_CLIENT_SET = (
    "owner",
    "owner_id",
    "hunter",
    "hunter_id",
    "status",
    "view_count",
    "created_at",
    "updated_at",
    "deleted_at",
    "id",
    "balance",
    "user",
    "user_id",
    "type",
    "is_staff",
    "is_superuser",
    "is_active",
    "sender",
    "sender_id",
    "created_by",
    "created_by_id",
)
USER_ACCOUNT_FIELDS = ("username", "password", "date_joined", "last_login", "groups", "user_permissions")

BOUNTY_CREATE_FIELDS = (*NEVER_CLIENT_SET, "search_vector", "hunter_username", "owner_username")
BOUNTY_UPDATE_FIELDS = (*NEVER_CLIENT_SET, "amount", "is_for_honor", "search_vector")
APPLICATION_FIELDS = (*NEVER_CLIENT_SET, "bounty", "bounty_id")
PROFILE_FIELDS = (*NEVER_CLIENT_SET, *USER_ACCOUNT_FIELDS)
DEPOSIT_FIELDS = (*NEVER_CLIENT_SET, "bounty", "bounty_id", "idempotency_key", "description")
WITHDRAWAL_FIELDS = (*NEVER_CLIENT_SET, "bounty", "bounty_id", "idempotency_key", "description", "reference")
CONVERSATION_FIELDS = (
    *NEVER_CLIENT_SET,
    "is_group",
    "pair_key",
    "participants",
    "last_message_preview",
    "last_message_sender",
    "last_message_sender_id",
    "last_message_at",
)
MESSAGE_FIELDS = (*NEVER_CLIENT_SET, "conversation", "conversation_id")
REGISTER_FIELDS = (*NEVER_CLIENT_SET, *(f for f in USER_ACCOUNT_FIELDS if f not in {"username", "password"}))


@dataclass
class Market:
    """A caller (``attacker``) acting on their own things, and a victim whose rows the hostile
    values point at."""

    attacker: User
    victim: User
    bystander: User
    attacker_bounty: Bounty  # open, paid 80.00
    victim_bounty: Bounty  # open, paid, with the bystander's pending application
    victim_honor_bounty: Bounty
    victim_request: BountyRequest
    victim_conversation: Conversation  # victim and bystander, with messages
    victim_message: Message
    attacker_conversation: Conversation  # attacker and victim
    victim_transaction: WalletTransaction
    group: Group
    permission: Permission


@pytest.fixture
def market() -> Market:
    attacker = funded_user("500.00")
    victim = funded_user("300.00")
    bystander = UserFactory()
    attacker_bounty = paid_bounty(attacker)
    victim_bounty = paid_bounty(victim)
    victim_honor_bounty = paid_bounty(victim, amount="0.00", is_for_honor=True)
    victim_request = application(victim_bounty, bystander)
    victim_conversation, _ = conversation_open(created_by=victim.pk, participant_ids={bystander.pk})
    victim_message = message_send(
        conversation_id=victim_conversation.pk, sender_id=victim.pk, text="Between the two of us."
    )
    attacker_conversation, _ = conversation_open(created_by=attacker.pk, participant_ids={victim.pk})
    message_send(conversation_id=attacker_conversation.pk, sender_id=victim.pk, text="Hello there.")
    return Market(
        attacker=attacker,
        victim=victim,
        bystander=bystander,
        attacker_bounty=attacker_bounty,
        victim_bounty=victim_bounty,
        victim_honor_bounty=victim_honor_bounty,
        victim_request=victim_request,
        victim_conversation=victim_conversation,
        victim_message=victim_message,
        attacker_conversation=attacker_conversation,
        victim_transaction=WalletTransaction.objects.filter(user=victim).order_by("pk").first(),
        group=Group.objects.create(name=f"staff-{uuid4().hex[:8]}"),
        permission=Permission.objects.get(codename="change_bounty"),
    )


def hostile_value(name: str, m: Market, **overrides: Any) -> Any:
    """What an attacker would send in ``name``: someone else's ids, privileged flags, old dates."""
    if name in overrides:
        return overrides[name]
    victim_user_fields = {
        "owner", "owner_id", "hunter", "hunter_id", "user", "user_id", "sender", "sender_id",
        "created_by", "created_by_id", "last_message_sender", "last_message_sender_id",
    }  # fmt: skip
    if name in victim_user_fields:
        return m.victim.pk
    return {
        "status": "completed",
        "view_count": 999_999,
        "created_at": LONG_AGO,
        "updated_at": LONG_AGO,
        "deleted_at": LONG_AGO,
        "last_message_at": LONG_AGO,
        "date_joined": LONG_AGO,
        "last_login": LONG_AGO,
        "balance": "99999.00",
        "type": "release",
        "is_staff": True,
        "is_superuser": True,
        "is_active": False,
        "amount": "1.00",
        "is_for_honor": True,
        "search_vector": "'hack':1",
        "bounty": m.victim_honor_bounty.pk,
        "bounty_id": m.victim_honor_bounty.pk,
        "conversation": m.victim_conversation.pk,
        "conversation_id": m.victim_conversation.pk,
        "participants": [m.victim.pk, m.bystander.pk],
        "is_group": True,
        "pair_key": "1:2",
        "last_message_preview": "spoofed preview",
        "idempotency_key": "someone-elses-key",
        "description": "Refund from the platform",
        "reference": "psp-forged-ref",
        "username": "renamed-by-patch",
        "password": "pbkdf2_sha256$1$x$forged",
        "groups": [m.group.pk],
        "user_permissions": [m.permission.pk],
        "hunter_username": "somebody",
        "owner_username": "somebody",
    }[name]


def victim_rows(m: Market) -> dict[str, list[dict]]:
    """Everything of the victim and the bystander that no request of the attacker may touch."""
    people = (m.victim.pk, m.bystander.pk)
    return {
        "users": list(User.objects.filter(pk__in=people).order_by("pk").values()),
        "wallets": list(WalletAccount.objects.filter(user__in=people).order_by("pk").values()),
        "ledger": list(WalletTransaction.objects.filter(user__in=people).order_by("pk").values()),
        "bounties": list(
            Bounty.all_objects.filter(owner__in=people).order_by("pk").values(*_bounty_columns())
        ),
        "applications": list(BountyRequest.objects.filter(hunter__in=people).order_by("pk").values()),
        "conversations": list(
            Conversation.objects.filter(Q(pk=m.victim_conversation.pk) | Q(created_by__in=people))
            .order_by("pk")
            .values()
        ),
        "participants": list(
            Participant.objects.filter(conversation=m.victim_conversation).order_by("pk").values()
        ),
        "messages": list(
            Message.objects.filter(Q(conversation=m.victim_conversation) | Q(sender__in=people))
            .order_by("pk")
            .values()
        ),
        "memberships": list(User.groups.through.objects.filter(user__in=people).values()),
    }


def _bounty_columns() -> list[str]:
    return [f.attname for f in Bounty._meta.concrete_fields if f.attname != "search_vector"]


def ignored_or_rejected(response, name: str) -> bool:
    """True when the request succeeded (the field must then have been ignored); a rejection
    must be a validation error that names the field, not some unrelated failure."""
    if 200 <= response.status_code < 300:
        return True
    error = assert_error(response, 400, "validation_error")
    assert name in error["fields"], f"rejected, but not because of {name!r}: {error}"
    return False


def balance_of(user: User) -> Decimal:
    return WalletAccount.objects.get(user=user).balance


def new_rows(model, before: set) -> list:
    return list(model._base_manager.exclude(pk__in=before).order_by("pk"))


def pks(model) -> set:
    return set(model._base_manager.values_list("pk", flat=True))


@pytest.mark.parametrize("name", BOUNTY_CREATE_FIELDS)
def test_posting_a_bounty_ignores_fields_only_the_server_sets(market, name):
    m = market
    payload = {**bounty_data(), name: hostile_value(name, m, id=m.victim_bounty.pk)}
    existing, untouched, started = pks(Bounty), victim_rows(m), timezone.now()

    response = client_for(m.attacker).post("/api/bounties", payload, format="json")

    accepted = ignored_or_rejected(response, name)
    assert victim_rows(m) == untouched
    created = new_rows(Bounty, existing)
    if not accepted:
        assert created == []
        assert balance_of(m.attacker) == Decimal("420.00")
        return
    [bounty] = created
    assert (bounty.owner_id, bounty.hunter_id, bounty.status) == (m.attacker.pk, None, BountyStatus.OPEN)
    assert (bounty.view_count, bounty.deleted_at) == (0, None)
    assert bounty.created_at >= started and bounty.updated_at >= started
    assert response.json()["id"] == bounty.pk != m.victim_bounty.pk
    assert balance_of(m.attacker) == Decimal("340.00")  # 500 - two escrows of 80.00
    escrow = WalletTransaction.objects.get(bounty=bounty)
    assert (escrow.user_id, escrow.type, escrow.amount) == (m.attacker.pk, TransactionType.ESCROW, -80)
    m.attacker.refresh_from_db()
    assert not (m.attacker.is_staff or m.attacker.is_superuser)


@pytest.mark.parametrize("name", BOUNTY_UPDATE_FIELDS)
def test_editing_a_bounty_ignores_or_rejects_fields_only_the_server_sets(market, name):
    m = market
    bounty = m.attacker_bounty
    payload = {
        "title": "A brand new title for the bounty",
        name: hostile_value(name, m, id=m.victim_bounty.pk),
    }
    untouched = victim_rows(m)
    before = Bounty.all_objects.values(*_bounty_columns()).get(pk=bounty.pk)

    response = client_for(m.attacker).patch(f"/api/bounties/{bounty.pk}", payload, format="json")

    accepted = ignored_or_rejected(response, name)
    assert victim_rows(m) == untouched
    after = Bounty.all_objects.values(*_bounty_columns()).get(pk=bounty.pk)
    server_owned = ("id", "owner_id", "hunter_id", "status", "view_count", "created_at", "deleted_at")
    assert {k: after[k] for k in server_owned} == {k: before[k] for k in server_owned}
    assert (after["amount"], after["is_for_honor"]) == (Decimal("80.00"), False)
    assert after["updated_at"] >= before["updated_at"]
    assert after["title"] == ("A brand new title for the bounty" if accepted else before["title"])
    assert balance_of(m.attacker) == Decimal("420.00")
    assert WalletTransaction.objects.filter(bounty=bounty).count() == 1


@pytest.mark.parametrize("name", APPLICATION_FIELDS)
def test_applying_ignores_fields_only_the_server_sets(market, name):
    m = market
    overrides = {"status": RequestStatus.ACCEPTED, "id": m.victim_request.pk}
    payload = {"message": APPLY_MESSAGE, name: hostile_value(name, m, **overrides)}
    existing, untouched, started = pks(BountyRequest), victim_rows(m), timezone.now()

    response = client_for(m.attacker).post(
        f"/api/bounties/{m.victim_bounty.pk}/requests", payload, format="json"
    )

    accepted = ignored_or_rejected(response, name)
    assert victim_rows(m) == untouched
    created = new_rows(BountyRequest, existing)
    if not accepted:
        assert created == []
        return
    [row] = created
    assert (row.bounty_id, row.hunter_id, row.status) == (
        m.victim_bounty.pk,
        m.attacker.pk,
        RequestStatus.PENDING,
    )
    assert row.message == APPLY_MESSAGE
    assert row.created_at >= started and row.updated_at >= started
    assert not BountyRequest.objects.filter(bounty=m.victim_honor_bounty).exists()


@pytest.mark.parametrize("name", PROFILE_FIELDS)
def test_editing_a_profile_ignores_account_fields_only_the_server_sets(market, name):
    m = market
    me = m.attacker
    payload = {"bio": "I build things that last.", name: hostile_value(name, m, id=m.victim.pk)}
    untouched = victim_rows(m)
    before = User.objects.values().get(pk=me.pk)

    response = client_for(me).patch(f"/api/profiles/{me.pk}", payload, format="json")

    accepted = ignored_or_rejected(response, name)
    assert victim_rows(m) == untouched
    after = User.objects.values().get(pk=me.pk)
    server_owned = ("id", "username", "password", "is_staff", "is_superuser", "is_active", "date_joined")
    assert {k: after[k] for k in server_owned} == {k: before[k] for k in server_owned}
    assert after["last_login"] == before["last_login"]
    assert after["updated_at"] >= before["updated_at"]
    assert after["bio"] == ("I build things that last." if accepted else before["bio"])
    assert not me.groups.exists() and not me.user_permissions.exists()
    assert balance_of(me) == Decimal("420.00")


@pytest.mark.parametrize("name", DEPOSIT_FIELDS)
def test_depositing_ignores_ledger_fields_only_the_server_sets(market, name):
    m = market
    overrides = {"status": TransactionStatus.PENDING, "id": m.victim_transaction.pk}
    payload = {
        "amount": "25.00",
        "reference": f"psp-{uuid4().hex}",
        name: hostile_value(name, m, **overrides),
    }
    existing, untouched, started = pks(WalletTransaction), victim_rows(m), timezone.now()

    response = client_for(m.attacker).post("/api/wallet/deposits", payload, format="json")

    accepted = ignored_or_rejected(response, name)
    assert victim_rows(m) == untouched
    created = new_rows(WalletTransaction, existing)
    if not accepted:
        assert created == []
        assert balance_of(m.attacker) == Decimal("420.00")
        return
    [row] = created
    assert (row.user_id, row.type, row.amount, row.status) == (
        m.attacker.pk,
        TransactionType.DEPOSIT,
        Decimal("25.00"),
        TransactionStatus.COMPLETED,
    )
    assert (row.bounty_id, row.reference, row.idempotency_key) == (None, payload["reference"], "")
    assert row.description == f"Deposit {payload['reference']}"
    assert row.created_at >= started
    assert balance_of(m.attacker) == Decimal("445.00")


@pytest.mark.parametrize("name", WITHDRAWAL_FIELDS)
def test_withdrawing_ignores_ledger_fields_only_the_server_sets(market, name):
    m = market
    overrides = {
        "type": TransactionType.DEPOSIT,
        "status": TransactionStatus.FAILED,
        "id": m.victim_transaction.pk,
    }
    payload = {"amount": "10.00", name: hostile_value(name, m, **overrides)}
    existing, untouched, started = pks(WalletTransaction), victim_rows(m), timezone.now()

    response = client_for(m.attacker).post("/api/wallet/withdrawals", payload, format="json")

    accepted = ignored_or_rejected(response, name)
    assert victim_rows(m) == untouched
    created = new_rows(WalletTransaction, existing)
    if not accepted:
        assert created == []
        assert balance_of(m.attacker) == Decimal("420.00")
        return
    [row] = created
    assert (row.user_id, row.type, row.amount, row.status) == (
        m.attacker.pk,
        TransactionType.WITHDRAWAL,
        Decimal("-10.00"),
        TransactionStatus.COMPLETED,
    )
    assert (row.bounty_id, row.reference, row.idempotency_key) == (None, "", "")
    assert row.description == "Withdrawal"
    assert row.created_at >= started
    assert balance_of(m.attacker) == Decimal("410.00")


@pytest.mark.parametrize("name", CONVERSATION_FIELDS)
def test_opening_a_conversation_ignores_fields_only_the_server_sets(market, name):
    m = market
    other = UserFactory()
    payload = {"participant_ids": [other.pk], name: hostile_value(name, m, id=m.victim_conversation.pk)}
    existing, untouched, started = pks(Conversation), victim_rows(m), timezone.now()

    response = client_for(m.attacker).post("/api/conversations", payload, format="json")

    accepted = ignored_or_rejected(response, name)
    assert victim_rows(m) == untouched
    created = new_rows(Conversation, existing)
    if not accepted:
        assert created == []
        return
    [conversation] = created
    assert response.status_code == 201
    assert (conversation.created_by_id, conversation.is_group) == (m.attacker.pk, False)
    assert conversation.pair_key == pair_key(m.attacker.pk, other.pk)
    assert (conversation.last_message_preview, conversation.last_message_sender_id) == ("", None)
    assert conversation.last_message_at is None
    assert conversation.created_at >= started and conversation.updated_at >= started
    members = set(Participant.objects.filter(conversation=conversation).values_list("user_id", flat=True))
    assert members == {m.attacker.pk, other.pk}


@pytest.mark.parametrize("name", MESSAGE_FIELDS)
def test_posting_a_message_ignores_fields_only_the_server_sets(market, name):
    m = market
    conversation = m.attacker_conversation
    payload = {"text": "Sounds good, see you then.", name: hostile_value(name, m, id=m.victim_message.pk)}
    existing, untouched, started = pks(Message), victim_rows(m), timezone.now()

    response = client_for(m.attacker).post(
        f"/api/conversations/{conversation.pk}/messages", payload, format="json"
    )

    accepted = ignored_or_rejected(response, name)
    assert victim_rows(m) == untouched
    created = new_rows(Message, existing)
    if not accepted:
        assert created == []
        return
    [message] = created
    assert (message.conversation_id, message.sender_id) == (conversation.pk, m.attacker.pk)
    assert message.text == "Sounds good, see you then."
    assert message.created_at >= started
    conversation.refresh_from_db()
    assert conversation.last_message_sender_id == m.attacker.pk


@pytest.mark.parametrize("name", REGISTER_FIELDS)
def test_registering_ignores_account_fields_only_the_server_sets(market, name):
    m = market
    username = f"newcomer{uuid4().hex[:8]}"
    payload = {
        "username": username,
        "email": f"{username}@example.com",
        "password": DEFAULT_PASSWORD,
        name: hostile_value(name, m, id=m.victim.pk),
    }
    existing, untouched, started = pks(User), victim_rows(m), timezone.now()

    response = APIClient().post("/api/auth/register", payload, format="json")

    accepted = ignored_or_rejected(response, name)
    assert victim_rows(m) == untouched
    created = new_rows(User, existing)
    if not accepted:
        assert created == []
        return
    [user] = created
    assert user.username == username and user.pk != m.victim.pk
    assert (user.is_staff, user.is_superuser, user.is_active) == (False, False, True)
    assert user.date_joined >= started and user.last_login is None
    assert not user.groups.exists() and not user.user_permissions.exists()
    assert not WalletAccount.objects.filter(user=user, balance__gt=0).exists()
    assert not WalletTransaction.objects.filter(user=user).exists()
