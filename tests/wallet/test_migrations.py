"""wallet's data migrations, run backwards and forwards on the real database."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from tests.factories import UserFactory
from wallet.models import WalletTransaction

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("wallet", "0002_ledger_check_run")]
AFTER = [("wallet", "0003_one_movement_per_idempotency_key")]


def migrate(targets) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


@pytest.fixture
def before_the_key_constraint():
    """The database as it was before 0003, put back to the latest state afterwards."""
    migrate(BEFORE)
    yield
    call_command("migrate", "wallet", verbosity=0)


def test_a_key_the_ledger_already_applied_twice_is_renamed_on_the_later_movements(before_the_key_constraint):
    reuser, other = UserFactory(), UserFactory()
    # Rows written as the code before 0003 could: a key reused after its stored response was
    # purged, three times by one user; the same key once by another user; rows without a key.
    rows = [
        WalletTransaction.objects.create(
            user=reuser, type="deposit", amount=Decimal("50.00"), reference=f"r{n}", idempotency_key="pay-1"
        )
        for n in range(3)
    ]
    theirs = WalletTransaction.objects.create(
        user=other, type="deposit", amount=Decimal("5.00"), reference="o1", idempotency_key="pay-1"
    )
    unkeyed = [
        WalletTransaction.objects.create(user=reuser, type="withdrawal", amount=Decimal("-1.00"))
        for _ in range(2)
    ]
    long_key = "k" * 255
    long_rows = [
        WalletTransaction.objects.create(
            user=other, type="deposit", amount=Decimal("1.00"), reference=f"l{n}", idempotency_key=long_key
        )
        for n in range(2)
    ]

    amounts = dict(WalletTransaction.objects.values_list("pk", "amount"))

    migrate(AFTER)

    keys = dict(WalletTransaction.objects.values_list("pk", "idempotency_key"))
    assert keys[rows[0].pk] == "pay-1"  # the first movement keeps it
    assert [keys[row.pk] for row in rows[1:]] == [f"pay-1~reused-by-{row.pk}" for row in rows[1:]]
    assert keys[theirs.pk] == "pay-1"  # another user's key was never a reuse
    assert [keys[row.pk] for row in unkeyed] == ["", ""]
    assert keys[long_rows[0].pk] == long_key
    renamed = keys[long_rows[1].pk]
    assert (
        len(renamed) == 255
        and renamed.endswith(f"~reused-by-{long_rows[1].pk}")
        and renamed.startswith("k" * 200)
    )
    assert dict(WalletTransaction.objects.values_list("pk", "amount")) == amounts  # no movement changed
    with pytest.raises(IntegrityError, match="wallettx_one_movement_per_key"), transaction.atomic():
        WalletTransaction.objects.create(
            user=reuser, type="deposit", amount=Decimal("1.00"), reference="r9", idempotency_key="pay-1"
        )
