from __future__ import annotations

import os

from core.management.base import DatabaseCommand
from perf.loadtest.demo import demo_load

DEFAULT_ADMIN_PASSWORD = "bountyexpo-admin"  # noqa: S105 (demo default, documented in README)


class Command(DatabaseCommand):
    help = "Load the small demo dataset and the demo staff user (safe to run again)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--admin-password",
            help="Password of the staff user 'admin' (default: $DEMO_ADMIN_PASSWORD, else "
            f"{DEFAULT_ADMIN_PASSWORD!r}).",
        )

    def handle(self, *args, admin_password: str | None, **options):
        # The server log keeps the names and where each password comes from, never a password.
        if admin_password:
            source = "--admin-password"
        elif os.environ.get("DEMO_ADMIN_PASSWORD"):
            admin_password, source = os.environ["DEMO_ADMIN_PASSWORD"], "$DEMO_ADMIN_PASSWORD"
        else:
            admin_password = DEFAULT_ADMIN_PASSWORD
            source = "README.md, 'The two commands' (set DEMO_ADMIN_PASSWORD to choose your own)"
        summary = demo_load(admin_password=admin_password)
        self.stdout.write(self.style.SUCCESS(f"Demo data loaded ({summary.bounties_created} new bounties)."))
        self.stdout.write(f"  staff user: {summary.admin_username}, password from {source}  (admin: /admin/)")
        users = ", ".join(summary.users)
        self.stdout.write(f"  demo users: {users}, password in README.md, 'The two commands'")
