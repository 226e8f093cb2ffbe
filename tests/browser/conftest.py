"""Browser tests: Playwright (sync API) drives Debian's Chromium against pytest-django's live server.

One browser serves every test of this package; each test gets a fresh browser context (cookies,
storage), so tests stay independent. The live server is transactional: the test's own writes are
committed and visible to the server thread, and on-commit callbacks (queued tasks, eager here) run
for real. A test fails if the Content-Security-Policy blocked anything on a page it opened
(`csp_violations`).

Chromium comes from apt (`.ci/run` installs it). Under CI=true a missing browser fails the tests;
locally they are skipped with the reason.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from registry import services

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
PASSWORD = "correct horse battery"
TIMEOUT_MS = 10_000


def _unavailable(reason: str):
    """A missing browser is a failure in CI and a skip on a developer's machine."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but browser tests cannot run: {reason}", pytrace=False)
    pytest.skip(f"browser tests skipped: {reason} (apt-get install chromium chromium-driver)")


@pytest.fixture(scope="package")
def browser():
    """One headless Chromium for all the browser tests.

    Package-scoped so Playwright stops after the last browser test: while it runs, its sync API
    marks an asyncio loop as running in the main thread, which Django's ORM guard would take for
    an async context (hence DJANGO_ALLOW_ASYNC_UNSAFE, only for that span).
    """
    if not os.path.exists(CHROMIUM):
        _unavailable(f"{CHROMIUM} is missing")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright Python package is not installed")

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def server(live_server, transactional_db):
    """The live server's base URL, without a trailing slash."""
    return live_server.url.rstrip("/")


# Chromium logs what the Content-Security-Policy blocks on the console; this also logs the
# securitypolicyviolation event, which names the directive and what it blocked. (Playwright runs
# it as the page starts, outside the page's policy.)
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`Content Security Policy violation event: ${event.effectiveDirective} blocked `
                + `${event.blockedURI || "inline"} (${event.sourceFile || document.URL}:${event.lineNumber})`);
});
"""


@pytest.fixture
def csp_violations():
    """What the Content-Security-Policy blocked on the pages of this test, as `url: message`. Any
    left at the end fails the test: a test expecting one removes it first."""
    return []


@pytest.fixture
def new_page(browser, server, csp_violations):
    """Open pages in fresh browser contexts: `new_page()` or `new_page(width=375, height=740)`."""
    contexts = []

    def open_page(*, width: int = 1280, height: int = 800):
        context = browser.new_context(base_url=server, viewport={"width": width, "height": height})
        context.set_default_timeout(TIMEOUT_MS)
        context.add_init_script(REPORT_CSP_VIOLATIONS)
        contexts.append(context)
        page = context.new_page()

        def on_console(message):
            if "Content Security Policy" in message.text:
                csp_violations.append(f"{page.url}: {message.text}")

        page.on("console", on_console)
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert not csp_violations, "the Content-Security-Policy blocked:\n" + "\n".join(csp_violations)


@pytest.fixture
def page(new_page):
    """A page in a fresh browser context (laptop-sized window); goto("/login/") works."""
    return new_page()


def screenshot(page, name: str, *, full_page: bool = True) -> Path:
    """Save a PNG of the page (or only of the window) under test-artifacts/screenshots/; look at them!"""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def make_user(username: str, *, password: str = PASSWORD, contexts: dict | None = None):
    """A user with `password`, member of `contexts` ({Context: role})."""
    user = get_user_model().objects.create_user(username=username, password=password)
    for context, role in (contexts or {}).items():
        services.membership_set(actor=None, context=context, role=role, username=username)
    return user


def make_context(slug: str, name: str = ""):
    return services.context_create(actor=None, slug=slug, name=name or slug.title())


def log_in(page, username: str, password: str = PASSWORD, *, next_url: str = "") -> None:
    """Sign in through the real form at /login/ and wait until the app has redirected away."""
    page.goto(f"/login/?next={next_url}" if next_url else "/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login/" not in url)


def assert_no_horizontal_overflow(page) -> None:
    """The body must fit the window: nothing wider than the viewport forces sideways scrolling."""
    scroll_width, inner_width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll_width <= inner_width, f"page is {scroll_width}px wide in a {inner_width}px window ({page.url})"
