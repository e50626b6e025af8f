from __future__ import annotations

import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from perf.models import LoadTestRun
from perf.monitor.browser import BrowserError, capture, perf_pages


class Command(BaseCommand):
    help = (
        "Sign in to a running server's admin with headless Chromium, load every perf page and save "
        "a screenshot of each; exits 1 if a page fails, misses its charts or logs a JavaScript error."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="http://127.0.0.1:8000", help="server (default %(default)s)")
        parser.add_argument("--username", default="admin", help="a staff user (default %(default)s)")
        parser.add_argument(
            "--password-env",
            default="DEMO_ADMIN_PASSWORD",
            help="environment variable holding that user's password (default %(default)s; never on "
            "the command line, where other users of the machine could read it)",
        )
        parser.add_argument(
            "--out",
            type=Path,
            help="folder for the PNGs (default reports/screenshots/<time>/)",
        )

    def handle(self, *args, host: str, username: str, password_env: str, out: Path | None, **options):
        password = os.environ.get(password_env)
        if not password:
            raise CommandError(f"Set {password_env} to the password of {username!r}.")
        out = out or Path("reports") / "screenshots" / f"{timezone.now():%Y%m%d-%H%M%S}"
        runs = list(LoadTestRun.objects.order_by("-started_at").values_list("pk", flat=True)[:2])
        pages = perf_pages(
            run_id=runs[0] if runs else None,
            compare=(runs[1], runs[0]) if len(runs) == 2 else None,
        )
        try:
            shots = capture(host.rstrip("/"), username=username, password=password, pages=pages, out_dir=out)
        except BrowserError as exc:
            raise CommandError(str(exc)) from None
        failed = 0
        for shot, plan in zip(shots, pages, strict=True):
            problems = [*shot.errors]
            if not 200 <= shot.status < 300:
                problems.append(f"HTTP {shot.status}")
            if shot.charts < plan.charts:
                problems.append(f"{shot.charts} of {plan.charts} charts")
            failed += bool(problems)
            verdict = self.style.ERROR("; ".join(problems)) if problems else "ok"
            self.stdout.write(f"{shot.name:<18} {shot.screenshot}  {verdict}")
        if failed:
            raise CommandError(f"{failed} page(s) failed; screenshots in {out}")
