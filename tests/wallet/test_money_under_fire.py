"""Money under fire: 200 mixed wallet operations released at one instant over real, committed
transactions (each thread has its own pooled PostgreSQL connection), after which the ledger must
hold exactly what the successful operations imply, and nothing twice.

The mix: idempotent deposit replays (one key and body sent several times), a payment reference
sent under several keys, withdrawals that together exceed the balance, a withdrawal replayed
under one key, bounties created (escrow taken) while their owner withdraws and is refunded, and
complete-vs-cancel, complete-vs-complete and cancel-vs-cancel races on the same bounty.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from django.db.models import Count, Q, Sum

from accounts.models import User
from bounties import services as bounties
from bounties.models import Bounty, BountyStatus
from bounties.serializers import BountyWriteSerializer
from core.errors import DomainError
from tests.conftest import client_for, run_together
from tests.factories import UserFactory, application, bounty_data, funded_user, paid_bounty
from wallet.models import TransactionType, WalletAccount, WalletTransaction
from wallet.selectors import ledger_check
from wallet.services import platform_fee

pytestmark = pytest.mark.django_db(transaction=True)

ZERO = Decimal("0.00")
DEPOSITS = "/api/wallet/deposits"
WITHDRAWALS = "/api/wallet/withdrawals"
WORKED_AMOUNT = Decimal("40.00")  # bounties already in progress or open when the fire starts
NEW_AMOUNT = Decimal("60.00")  # bounties posted during the fire
SETTLED_STATUSES = {"complete": BountyStatus.COMPLETED, "cancel": BountyStatus.CANCELLED}


@dataclass(frozen=True)
class Outcome:
    """What one thread got: "ok" (a new effect), "replayed" (an idempotent replay of a
    success), a domain error code, or a description of what went wrong."""

    code: str
    body: bytes = b""


@dataclass
class Op:
    """One thread's operation, the answers it may give, and what its success must change."""

    group: str  # operations that race on the same key, reference, balance or bounty
    call: Callable[[], Outcome]
    allowed: frozenset[str]
    one_winner: bool = False  # exactly one operation of the group may report "ok"
    effects: dict[int, Decimal] = field(default_factory=dict)  # balance change per user id
    fee: Decimal = ZERO
    held: Decimal = ZERO  # change of the escrow held
    key: tuple[int, str] | None = None  # (user id, Idempotency-Key)
    reference: str = ""  # a deposit's payment reference
    bounty_id: int | None = None
    status_after: str = ""  # the bounty status its success leaves


def api_post(user: User, path: str, body: dict, key: str | None = None) -> Callable[[], Outcome]:
    client = client_for(user)  # one client, with its own token, per thread
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}

    def call() -> Outcome:
        response = client.post(path, body, format="json", **headers)
        if response.status_code == 201:
            replayed = response.headers.get("Idempotent-Replayed") == "true"
            return Outcome("replayed" if replayed else "ok", response.content)
        if 400 <= response.status_code < 500:
            return Outcome(response.json()["error"]["code"], response.content)
        return Outcome(f"HTTP {response.status_code}", response.content)

    return call


def service(function: Callable[..., object], **kwargs) -> Callable[[], Outcome]:
    def call() -> Outcome:
        try:
            function(**kwargs)
        except DomainError as exc:
            return Outcome(str(exc.get_codes()))
        return Outcome("ok")

    return call


def deposit_ops(depositors: list[User]) -> list[Op]:
    """24 replays of 6 idempotent deposits (4 each), 20 sends of 5 references (4 keys each)."""
    ops = []
    for n, user in enumerate(depositors * 2):
        key, amount = f"deposit-{n}", Decimal("12.50")
        body = {"amount": str(amount), "reference": f"psp-replayed-{n}"}
        ops += [
            Op(
                group=f"key {key}",
                call=api_post(user, DEPOSITS, body, key),
                allowed=frozenset({"ok", "replayed"}),
                one_winner=True,
                effects={user.pk: amount},
                key=(user.pk, key),
                reference=body["reference"],
            )
            for _ in range(4)
        ]
    for n in range(5):
        user, amount, reference = depositors[n % len(depositors)], Decimal("7.25"), f"psp-shared-{n}"
        body = {"amount": str(amount), "reference": reference}
        ops += [
            Op(
                group=f"reference {reference}",
                call=api_post(user, DEPOSITS, body, f"{reference}-key-{k}"),
                allowed=frozenset({"ok", "duplicate_reference"}),
                one_winner=True,
                effects={user.pk: amount},
                key=(user.pk, f"{reference}-key-{k}"),
                reference=reference,
            )
            for k in range(4)
        ]
    return ops


def withdrawal(
    user: User, amount: str, key: str, group: str, allowed: frozenset[str] = frozenset(), **fields
) -> Op:
    return Op(
        group=group,
        call=api_post(user, WITHDRAWALS, {"amount": amount}, key),
        allowed=allowed or frozenset({"ok", "insufficient_funds"}),
        effects={user.pk: -Decimal(amount)},
        key=(user.pk, key),
        **fields,
    )


def withdrawal_race_ops(racers: list[User], replayer: User) -> list[Op]:
    """36 withdrawals by 3 users of 100.00 (12 each, 210.00 asked), and one 30.00 withdrawal
    sent 4 times under one key."""
    ops = [
        withdrawal(user, amount, f"race-{user.pk}-{n}", f"race {user.pk}")
        for user in racers
        for n, amount in enumerate(["10.00", "15.00", "20.00", "25.00"] * 3)
    ]
    ops += [
        withdrawal(
            replayer,
            "30.00",
            "withdraw-once",
            "withdrawal replay",
            allowed=frozenset({"ok", "replayed"}),
            one_winner=True,
        )
        for _ in range(4)
    ]
    return ops


def settle(bounty: Bounty, action: str, allowed: set[str]) -> Op:
    """Complete or cancel ``bounty`` as its owner."""
    function = bounties.bounty_complete if action == "complete" else bounties.bounty_cancel
    if action == "complete":
        fee = platform_fee(bounty.amount)
        effects = {bounty.hunter_id: bounty.amount - fee}
    else:
        fee, effects = ZERO, {bounty.owner_id: bounty.amount}
    return Op(
        group=f"bounty {bounty.pk}",
        call=service(function, bounty_id=bounty.pk, user_id=bounty.owner_id),
        allowed=frozenset(allowed),
        one_winner=True,
        effects=effects,
        fee=fee,
        held=-bounty.amount,
        bounty_id=bounty.pk,
        status_after=SETTLED_STATUSES[action],
    )


def owner_ops(owner: User, hunters: list[User], new_bounty: dict) -> list[Op]:
    """26 operations on one owner's money: 6 bounties posted, 3 withdrawals, and races to
    settle 6 bounties in progress and 2 open ones."""
    in_progress = []
    for n in range(6):
        bounty = paid_bounty(owner, amount=str(WORKED_AMOUNT))
        request = application(bounty, hunters[(owner.pk + n) % len(hunters)])
        bounties.request_accept(request_id=request.pk, user_id=owner.pk)
        bounty.refresh_from_db()
        in_progress.append(bounty)
    still_open = [paid_bounty(owner, amount=str(WORKED_AMOUNT)) for _ in range(2)]

    may_lose = {"ok", "illegal_transition"}
    races = [
        ("complete", "cancel"),
        ("complete", "cancel"),
        ("complete", "complete"),
        ("complete", "complete"),
        ("cancel", "cancel"),
        ("complete", "complete", "cancel"),
    ]
    ops = [
        settle(bounty, action, may_lose)
        for bounty, actions in zip(in_progress, races, strict=True)
        for action in actions
    ]
    first, second = still_open
    ops += [settle(first, "cancel", may_lose), settle(first, "cancel", may_lose)]
    ops += [settle(second, "complete", {"illegal_transition"}), settle(second, "cancel", {"ok"})]
    ops += [
        Op(
            group=f"posts {owner.pk}",
            call=service(bounties.bounty_create, owner_id=owner.pk, data=dict(new_bounty)),
            allowed=frozenset({"ok", "insufficient_funds"}),
            effects={owner.pk: -NEW_AMOUNT},
            held=NEW_AMOUNT,
        )
        for _ in range(6)
    ]
    ops += [withdrawal(owner, "20.00", f"owner-{owner.pk}-{n}", f"owner {owner.pk}") for n in range(3)]
    return ops


def outcome_of(result: object) -> Outcome:
    if isinstance(result, Outcome):
        return result
    return Outcome(f"unexpected {type(result).__name__}: {result}")


def balances(users: list[User]) -> dict[int, Decimal]:
    found = dict(WalletAccount.objects.filter(user__in=users).values_list("user_id", "balance"))
    return {user.pk: found.get(user.pk, ZERO) for user in users}


def test_two_hundred_simultaneous_money_operations_change_balances_exactly_as_their_successes_imply(
    patient_pool,
):
    depositors = [UserFactory() for _ in range(3)]
    racers = [funded_user("100.00") for _ in range(3)]
    replayer = funded_user("50.00")
    hunters = [funded_user("30.00") for _ in range(4)]
    # 320.00 of each owner's 480.00 goes into 8 bounties below; the 160.00 left plus at most
    # 240.00 of refunds cannot pay for the 6 posts of 60.00 and 3 withdrawals of 20.00 (420.00).
    owners = [funded_user("480.00") for _ in range(4)]
    new_bounty = BountyWriteSerializer(data=bounty_data(amount=str(NEW_AMOUNT)))
    new_bounty.is_valid(raise_exception=True)
    ops = deposit_ops(depositors) + withdrawal_race_ops(racers, replayer)
    for owner in owners:
        ops += owner_ops(owner, hunters, new_bounty.validated_data)
    ops += [
        withdrawal(hunter, "20.00", f"hunter-{hunter.pk}-{n}", f"hunter {hunter.pk}")
        for hunter in hunters
        for n in range(3)
    ]
    assert len(ops) == 200
    users = depositors + racers + [replayer] + hunters + owners
    before, held_before = balances(users), ledger_check().total_escrow_held
    bounties_before = Bounty.all_objects.count()

    # The 200 threads share DATABASE_POOL_MAX connections and queue on a few accounts' rows, so
    # the last ones wait for most of the fire, not for one request: patient_pool keeps a busy CI
    # machine from turning that queue into PoolTimeout or a statement_timeout.
    started = time.monotonic()
    results = run_together(len(ops), lambda i: ops[i].call())
    elapsed = time.monotonic() - started

    outcomes = [outcome_of(result) for result in results]
    report = ledger_check()
    print(
        f"\nmoney under fire: {len(ops)} operations in {elapsed:.2f} s; outcomes "
        f"{dict(Counter(outcome.code for outcome in outcomes))}\n"
        f"ledger: deposits {report.total_deposits}, withdrawals {report.total_withdrawals}, "
        f"fees {report.total_fees}, balances {report.total_balances}, escrow held "
        f"{report.total_escrow_held}, ledger rows {WalletTransaction.objects.count()}, users "
        f"{report.users_checked}, mismatched {report.mismatched_users}, check "
        f"{'OK' if report.ok else 'BROKEN'}"
    )

    # Every thread got a success or a domain error its operation may give: no 500, no crash.
    unexpected = [
        (op.group, outcome.code)
        for op, outcome in zip(ops, outcomes, strict=True)
        if outcome.code not in op.allowed
    ]
    assert not unexpected, unexpected

    # Races with one possible winner had exactly one; an idempotent replay is the first answer.
    groups: dict[str, list[tuple[Op, Outcome]]] = defaultdict(list)
    for op, outcome in zip(ops, outcomes, strict=True):
        groups[op.group].append((op, outcome))
    for name, members in groups.items():
        if members[0][0].one_winner:
            assert sum(outcome.code == "ok" for _, outcome in members) == 1, (name, members)
        if "replayed" in members[0][0].allowed:
            assert len({outcome.body for _, outcome in members}) == 1, name

    # The withdrawals asked for more than there was: some were refused, none overdrew, and a
    # refusal was right (these balances only went down, so a refused amount exceeds what is left).
    # Owners asked for more than they had and could get back: some post or withdrawal was refused.
    after = balances(users)
    for racer in racers:
        refused = [
            -op.effects[racer.pk] for op, outcome in groups[f"race {racer.pk}"] if outcome.code != "ok"
        ]
        assert refused, "12 withdrawals of 210.00 from 100.00 cannot all succeed"
        assert min(refused) > after[racer.pk] >= ZERO
    for owner in owners:
        asked = groups[f"posts {owner.pk}"] + groups[f"owner {owner.pk}"]
        assert any(outcome.code == "insufficient_funds" for _, outcome in asked), owner.pk

    # Every balance is its start plus the effects of the operations that reported success.
    expected = dict(before)
    for op, outcome in zip(ops, outcomes, strict=True):
        if outcome.code == "ok":
            for user_id, change in op.effects.items():
                expected[user_id] += change
    assert after == expected
    assert not WalletAccount.objects.filter(balance__lt=0).exists()
    succeeded = [op for op, outcome in zip(ops, outcomes, strict=True) if outcome.code == "ok"]
    assert report.ok
    assert report.total_fees == sum(op.fee for op in succeeded)
    assert report.total_escrow_held == held_before + sum(op.held for op in succeeded)
    in_escrow = Bounty.all_objects.filter(status__in=[BountyStatus.OPEN, BountyStatus.IN_PROGRESS])
    assert report.total_escrow_held == in_escrow.aggregate(total=Sum("amount"))["total"]

    # No effect twice: a reference credits once, a key makes one ledger row (a refused request
    # none), and the posts that succeeded are the only new bounties.
    deposits = WalletTransaction.objects.filter(type=TransactionType.DEPOSIT)
    credited = Counter(deposits.values_list("reference", flat=True))
    assert {op.reference: credited[op.reference] for op in ops if op.reference} == {
        op.reference: 1 for op in ops if op.reference
    }
    rows_per_key = Counter(
        WalletTransaction.objects.exclude(idempotency_key="").values_list("user_id", "idempotency_key")
    )
    assert rows_per_key == Counter({op.key for op in succeeded if op.key})
    posted = sum(op.group.startswith("posts ") for op in succeeded)
    assert Bounty.all_objects.count() == bounties_before + posted

    # Each bounty holds one escrow and, once settled, one release (with its fee) or one refund;
    # the status is the one left by the operation that won its race.
    ledger_of = {
        row["bounty_id"]: (row["escrows"], row["releases"], row["refunds"], row["fees"])
        for row in WalletTransaction.objects.filter(bounty__isnull=False)
        .values("bounty_id")
        .annotate(
            escrows=Count("id", filter=Q(type=TransactionType.ESCROW)),
            releases=Count("id", filter=Q(type=TransactionType.RELEASE)),
            refunds=Count("id", filter=Q(type=TransactionType.REFUND)),
            fees=Count("id", filter=Q(type=TransactionType.FEE)),
        )
    }
    expected_rows = {
        BountyStatus.OPEN: (1, 0, 0, 0),
        BountyStatus.IN_PROGRESS: (1, 0, 0, 0),
        BountyStatus.COMPLETED: (1, 1, 0, 1),
        BountyStatus.CANCELLED: (1, 0, 1, 0),
    }
    status_of = dict(Bounty.all_objects.values_list("pk", "status"))
    assert ledger_of == {pk: expected_rows[status] for pk, status in status_of.items()}
    for op in succeeded:
        if op.bounty_id is not None:
            assert status_of[op.bounty_id] == op.status_after, op.group
