"""Browser tests: pytest-playwright driving Debian's chromium against Django's live_server.

- Playwright's own browser download does not work here: chromium is /usr/bin/chromium (the CI
  installs it); missing → skipped locally, a failure in CI (`require_service`).
- The sync Playwright API runs an event loop in the test thread, so Django's async-safety guard
  must be lifted for the ORM calls the tests make (DJANGO_ALLOW_ASYNC_UNSAFE).
- Each test saves a screenshot of its final page under test-artifacts/e2e/ (git-ignored), also
  when it fails, and fails if the page broke the content security policy or raised a JS error.
"""

import contextlib
import datetime as dt
import os
import re
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.utils import timezone

from refills.services import refill_visit_record
from tests import factories
from tests.conftest import require_service

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("ITB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "e2e"
AXE_JS = Path(__file__).parent / "vendor" / "axe.min.js"


@pytest.fixture
def live_server(live_server, settings):
    """The session's live server, its middleware rebuilt under this test's plain-HTTP settings.

    SecurityMiddleware reads SECURE_SSL_REDIRECT once, when the server's handler is built, which
    may have happened before any per-test `settings` change (production redirects to HTTPS).
    """
    settings.SECURE_SSL_REDIRECT = False
    app = live_server.thread.httpd.get_app()
    while isinstance(app, WSGIHandler):  # StaticFilesHandler → WSGIHandler: each has its own chain
        WSGIHandler.load_middleware(app)
        app = getattr(app, "application", None)
    return live_server


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    # pytest-playwright's session browser, shared with tests/portal's browser tests: one
    # Playwright per process (the sync API cannot start a second one inside the first's loop).
    if not shutil.which(CHROMIUM):
        require_service("chromium", f"{CHROMIUM} not found (apt-get install -y chromium)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    # A landscape tablet, the clinic's own locale and zone (navigator.language, Intl and the
    # Accept-Language header are en-GB). The native date field keeps this headless Chromium's own
    # layout, month first, whatever the context's locale, --lang or LANG: the screenshots show
    # 12/07/2026 for 7 December, where a browser set to English (UK) shows 07/12/2026.
    return {
        **browser_context_args,
        "viewport": {"width": 1280, "height": 900},
        "locale": "en-GB",
        "timezone_id": settings.TIME_ZONE,
    }


@pytest.fixture
def ui(page, request):
    """The Playwright page, watched: CSP violations and JS errors fail the test; a screenshot at the end."""
    problems: list[str] = []
    page.on(
        "console",
        lambda msg: problems.append(msg.text)
        if msg.type == "error" and ("Content Security Policy" in msg.text or "Refused to" in msg.text)
        else None,
    )
    page.on("pageerror", lambda exc: problems.append(f"JS error: {exc}"))
    page.set_default_timeout(10_000)
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    # A crashed page must not hide the test's own failure.
    with contextlib.suppress(Exception):
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    assert not problems, problems


def login(page, live_server, user, password=factories.TEST_PASSWORD):
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(user.get_username())
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


def fill_refill_checks(page, *, expires_on: dt.date | None = None, kit_lot: str = "KIT-E2E") -> None:
    """On the refill form: the drug lot's expiry, the kit's lot, and every checklist item done."""
    page.get_by_label("Drug lot expiry date").fill((expires_on or dt.date(2099, 12, 31)).isoformat())
    page.get_by_label("Refill kit lot number").fill(kit_lot)
    checklist = page.locator("#safety-checklist")
    for legend in (
        "Pump site checked",
        "Needle placement confirmed",
        "Aspiration before fill",
        "Alarm settings confirmed",
        "Symptom screen for withdrawal and overdose",
    ):
        checklist.locator("fieldset.check-item", has_text=legend).get_by_label("Done", exact=True).check()


def day_label(day: dt.date) -> str:
    """Django's "j M Y" (how the pages print a date)."""
    return f"{day.day} {day:%b %Y}"


def pump_refilled_days_ago(days: int, nurse, **patient):
    """docs/domain.md's 20 mL example (2000 mcg/mL, 400 mcg/day), last refilled `days` ago at 10:00."""
    today = timezone.localdate()
    implant = factories.ImplantFactory(
        implanted_on=today - dt.timedelta(days=days + 200), patient=factories.PatientFactory(**patient)
    )
    when = timezone.make_aware(dt.datetime.combine(today - dt.timedelta(days=days), dt.time(10, 0)))
    refill_visit_record(
        implant=implant,
        performed_at=when,
        performed_by=nurse,
        actual_residual_ml=Decimal("2.0"),
        volume_added_ml=Decimal("20"),
        drug=factories.drug("2000"),
        drug_lot="LOT-E2E-0",
        daily_dose_after_mcg=Decimal("400"),
    )
    implant.refresh_from_db()
    return implant
