from __future__ import annotations

import os

from django.core.management.base import BaseCommand

from perf.demo import DEMO_USER_PASSWORD, demo_load

DEFAULT_ADMIN_PASSWORD = "bountyexpo-admin"  # noqa: S105 (demo default, printed on start)


class Command(BaseCommand):
    help = "Load the small demo dataset and the demo staff user (safe to run again)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--admin-password",
            default=os.environ.get("DEMO_ADMIN_PASSWORD", DEFAULT_ADMIN_PASSWORD),
            help="Password of the staff user 'admin' (default: $DEMO_ADMIN_PASSWORD, else "
            f"{DEFAULT_ADMIN_PASSWORD!r}).",
        )

    def handle(self, *args, admin_password: str, **options):
        summary = demo_load(admin_password=admin_password)
        self.stdout.write(self.style.SUCCESS(f"Demo data loaded ({summary.bounties_created} new bounties)."))
        self.stdout.write(f"  staff user: {summary.admin_username} / {admin_password}  (admin: /admin/)")
        self.stdout.write(f"  demo users: {', '.join(summary.users)} / {DEMO_USER_PASSWORD}")
