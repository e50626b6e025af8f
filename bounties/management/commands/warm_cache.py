from __future__ import annotations

import time

from django.core.management.base import CommandError

from bounties.warm import plan, warm
from core.management.base import DatabaseCommand


class Command(DatabaseCommand):
    help = (
        "Fill the response cache: the most-viewed open bounties, the first list pages (all and per "
        "category) and searches for the most common title words. Safe to run while serving."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--limit", type=int, default=100, help="most-viewed open bounties (default %(default)s)"
        )
        parser.add_argument("--terms", type=int, default=10, help="common search terms (default %(default)s)")
        parser.add_argument(
            "--host",
            default="127.0.0.1:8000",
            help="the Host clients use; page links in cached lists carry it (default %(default)s)",
        )
        parser.add_argument("--https", action="store_true", help="clients reach the API over https")
        parser.add_argument("--dry-run", action="store_true", help="print what would be warmed, warm nothing")

    def handle(self, *args, limit: int, terms: int, host: str, https: bool, dry_run: bool, **options):
        if limit < 0 or terms < 0:
            raise CommandError("--limit and --terms cannot be negative.")
        started = time.perf_counter()
        targets = plan(limit=limit, terms=terms)
        planned_ms = (time.perf_counter() - started) * 1000
        counts = {kind: sum(t.kind == kind for t in targets) for kind in ("detail", "list", "search")}
        summary = ", ".join(f"{count} {kind}" for kind, count in counts.items())
        self.stdout.write(f"{len(targets)} entries to warm ({summary}); planned in {planned_ms:.0f} ms")
        if dry_run:
            for target in targets:
                self.stdout.write(f"  {target.kind:<7} {target.path}")
            self.stdout.write("Dry run: nothing warmed.")
            return
        states: dict[str, int] = {}
        slowest = 0.0
        for done in warm(targets, host=host, scheme="https" if https else "http"):
            states[done.state] = states.get(done.state, 0) + 1
            slowest = max(slowest, done.ms)
            if options["verbosity"] >= 1:
                self.stdout.write(f"  {done.state:<5} {done.ms:7.1f} ms  {done.target.path}")
        total = time.perf_counter() - started
        failed = sum(count for state, count in states.items() if state.startswith("error"))
        self.stdout.write(
            (self.style.ERROR if failed else self.style.SUCCESS)(
                f"Warmed {len(targets)} entries in {total:.1f} s: {states.get('miss', 0)} computed, "
                f"{states.get('hit', 0) + states.get('stale', 0)} already cached, {failed} failed; "
                f"slowest {slowest:.0f} ms."
            )
        )
        if failed:
            raise CommandError(f"{failed} entries could not be warmed.")
