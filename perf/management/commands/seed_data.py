from __future__ import annotations

from pathlib import Path

from django.core.management.base import CommandError

from accounts.models import User
from core import response_cache
from core.db.maintenance import maintenance_statement_timeout
from core.management.base import DatabaseCommand
from perf.loadtest.demo import DEMO_USERS
from perf.loadtest.seed import SEED_USER_PASSWORD, DatabaseNotEmpty, SeedPlan, seed_marketplace

COUNTS = {
    "users": "users",
    "bounties": "bounties",
    "transactions": "ledger rows, about",
    "messages": "messages, about",
    "conversations": "conversations",
    "tokens": "users given a login token for the load test",
    "seed": "random seed",
}


class Command(DatabaseCommand):
    help = (
        "Generate a realistic marketplace for load tests: users, bounties in every status, "
        "applications, a ledger that keeps every wallet invariant, conversations and messages, "
        "and login tokens for the load generator."
    )

    def add_arguments(self, parser):
        defaults = SeedPlan()
        for name, what in COUNTS.items():
            parser.add_argument(
                f"--{name}", type=int, default=getattr(defaults, name), help=f"{what} (default %(default)s)"
            )
        parser.add_argument(
            "--prefix",
            default=defaults.prefix,
            help="username prefix, to --append several sets (default %(default)s)",
        )
        parser.add_argument(
            "--tokens-file",
            type=Path,
            default=defaults.tokens_file,
            help="where the raw tokens are written, one 'user_id token' per line (default %(default)s)",
        )
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--append", action="store_true", help="add to a database that already has data")
        mode.add_argument(
            "--reset", action="store_true", help="first delete all marketplace data and non-staff users"
        )

    def handle(self, *args, **options):
        plan = SeedPlan(**{name: options[name] for name in SeedPlan.__dataclass_fields__})
        if min(plan.users, plan.bounties) < 2 or plan.tokens > plan.users:
            raise CommandError("Need at least 2 users and 2 bounties, and no more tokens than users.")
        self.stdout.write(f"Seeding {plan}")
        demo_users = list(
            User.objects.filter(username__in=[spec[0] for spec in DEMO_USERS], is_staff=False)
            .order_by("username")
            .values_list("username", flat=True)
        )
        try:
            with maintenance_statement_timeout():
                report = seed_marketplace(plan=plan, append=options["append"], reset=options["reset"],
                                          progress=self.stdout.write)  # fmt: skip
        except DatabaseNotEmpty:
            raise CommandError(
                "The database already has data. Use --reset to replace it (staff users are kept) "
                "or --append with a new --prefix to add to it."
            ) from None
        # The rows were written in SQL, past the signals that invalidate cached responses.
        response_cache.clear_all()
        self.stdout.write(self.style.SUCCESS(f"Seeded in {report.seconds:.1f} s."))
        self.stdout.write(f"  users log in with password {SEED_USER_PASSWORD!r}")
        self.stdout.write(f"  load-test tokens: {report.tokens_file}")
        if options["reset"] and demo_users:
            self.stdout.write(
                self.style.WARNING(
                    f"  --reset deleted the demo users ({', '.join(demo_users)}) with every other "
                    "non-staff user: `manage.py load_demo` (or the next `make run`) brings them "
                    "back with their bounties."
                )
            )
