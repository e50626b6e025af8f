"""The perf admin seen through a real browser: headless Chromium signs in and loads each page.

Used by the browser test (``tests/perf/monitor/test_browser.py``) and by ``manage.py
perf_screenshots`` (screenshots of a running server, e.g. during a load test). Playwright drives
Debian's Chromium (``/usr/bin/chromium``, ``make browser`` installs it); Playwright's own browser
download is never used. For every page it records the JavaScript console errors and uncaught
exceptions, whether the page's charts are there, and a full-page screenshot.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

# Root on a CI machine has no user namespace for the sandbox; the rest keep a headless browser
# from reaching out to Google's services on a machine with no internet.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class PagePlan:
    """A page to visit; ``charts`` is how many ``svg.perf-chart`` it must show at least."""

    name: str
    path: str
    charts: int = 0


@dataclass
class PageShot:
    name: str
    url: str
    status: int
    screenshot: Path
    charts: int
    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300 and not self.errors


class BrowserError(Exception):
    """Something the operator can fix: no Chromium, a login that failed."""


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise BrowserError("Chromium not found: run `make browser` (Debian: apt-get install chromium).")
    return path


def capture(
    base_url: str, *, username: str, password: str, pages: list[PagePlan], out_dir: Path, width: int = 1400
) -> list[PageShot]:
    """Sign in at /admin/login/ and visit ``pages``; a screenshot of each lands in ``out_dir``."""
    from playwright.sync_api import sync_playwright  # heavy, and only needed here

    out_dir.mkdir(parents=True, exist_ok=True)
    shots: list[PageShot] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            errors: list[str] = []
            page.on(
                "console", lambda message: errors.append(message.text) if message.type == "error" else None
            )
            page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))

            page.goto(f"{base_url}/admin/login/")
            page.fill("#id_username", username)
            page.fill("#id_password", password)
            page.click("input[type=submit]")
            page.wait_for_load_state()
            if "/admin/login/" in page.url:
                raise BrowserError(f"signing in as {username!r} failed at {base_url}/admin/login/")

            for plan in pages:
                errors.clear()
                response = page.goto(f"{base_url}{plan.path}", wait_until="load")
                screenshot = out_dir / f"{plan.name}.png"
                page.screenshot(path=str(screenshot), full_page=True)
                shots.append(
                    PageShot(
                        name=plan.name,
                        url=page.url,
                        status=response.status if response else 0,
                        screenshot=screenshot,
                        charts=page.locator("svg.perf-chart").count(),
                        errors=list(errors),
                    )
                )
        finally:
            browser.close()
    return shots


def perf_pages(*, run_id: int | None = None, compare: tuple[int, int] | None = None) -> list[PagePlan]:
    """Every perf admin page, with the charts each must draw (the pool's history; a load-test
    run's and a comparison's series)."""
    pages = [
        PagePlan("overview", "/admin/perf/overview/"),
        PagePlan("connection-pool", "/admin/perf/connectionpool/", charts=1),
        PagePlan("queries", "/admin/perf/querystats/"),
        PagePlan("indexes", "/admin/perf/indexusage/"),
        PagePlan("live-queries", "/admin/perf/livequery/"),
        PagePlan("cache", "/admin/perf/cachestats/"),
        PagePlan("load-tests", "/admin/perf/loadtestrun/"),
    ]
    if run_id is not None:
        pages.append(PagePlan("load-test-run", f"/admin/perf/loadtestrun/{run_id}/change/", charts=3))
    if compare is not None:
        before, after = compare
        pages.append(
            PagePlan(
                "load-test-compare",
                f"/admin/perf/loadtestrun/compare/?before={before}&after={after}",
                charts=2,
            )
        )
    return pages
