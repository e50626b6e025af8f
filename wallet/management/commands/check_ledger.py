from __future__ import annotations

from django.core.management.base import CommandError

from core.db.maintenance import maintenance_statement_timeout
from core.management.base import DatabaseCommand
from wallet.services import ledger_check_run

MAX_LISTED = 50


class Command(DatabaseCommand):
    help = (
        "Verify the wallet invariants over the whole database: every balance equals the sum of "
        "its completed ledger rows, and balances + fees + escrow held == deposits - withdrawals. "
        "Exits non-zero, naming the offending users, when one is broken. Every run is recorded "
        "(wallet.LedgerCheckRun, listed in the admin)."
    )

    def handle(self, *args, **options) -> None:
        with maintenance_statement_timeout():  # whole-ledger scans outlast the API's timeout
            report, _ = ledger_check_run(triggered_by="command")
        owned = report.total_balances + report.total_fees + report.total_escrow_held
        self.stdout.write(
            f"users checked: {report.users_checked}\n"
            f"balances {report.total_balances} + fees {report.total_fees} + escrow held "
            f"{report.total_escrow_held} = {owned}; "
            f"deposits {report.total_deposits} - withdrawals {report.total_withdrawals} "
            f"= {report.total_deposits - report.total_withdrawals}"
        )
        if report.ok:
            self.stdout.write(self.style.SUCCESS("ledger OK"))
            return
        for user_id, balance, total in report.mismatched_users[:MAX_LISTED]:
            self.stderr.write(f"user {user_id}: balance {balance} != ledger sum {total}")
        if len(report.mismatched_users) > MAX_LISTED:
            self.stderr.write(f"... and {len(report.mismatched_users) - MAX_LISTED} more users")
        problems = []
        if report.mismatched_users:
            problems.append(f"{len(report.mismatched_users)} user(s) whose balance differs from their ledger")
        if not report.totals_ok:
            problems.append("balances + fees + escrow held != deposits - withdrawals")
        raise CommandError("ledger broken: " + "; ".join(problems))
