"""Every page state of the demo clinic under axe-core, at 1280 px and at 390 px (issue 11, item 9).

The demo clinic is seeded once; each role (and a visitor not logged in) then walks, one after
the other in one test and each in a Chromium context of its own, the pages tests/pagewalk.py
finds for it (every URL pattern with the demo's rows as arguments, then every same-site link) —
the pages tests/itbclinic/test_page_walk.py reads for words. Each distinct POST form found is then
submitted blank in the page itself (`novalidate` set, its fields cleared, `requestSubmit()`: what
the browser would send if its own checks were off), so the page comes back with its errors. One
URL of each pattern is checked (the words test reads two), and a refusal page (403, 404) once a
role.

Each page state is checked at desktop width and at 390 px (a phone held upright):
- axe-core finds no serious or critical violation (every rule at 1280 px; at 390 px, on our own
  pages, the rules a narrower layout can change: the Django admin's phone layout is Django's);
  Swagger UI at /api/docs/, a vendored page, is left to its own test;
- at 390 px, one of our own pages (staff, portal, accounts) never scrolls sideways
  (`scrollWidth` of the document within `innerWidth`): a wide table scrolls inside its own box.
Screenshots at 390 px: var/screenshots/page_walk_390px_nurse.png and …_patient1.png.
"""

import json
import time
from collections import defaultdict
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import call_command
from django.urls import reverse
from playwright.sync_api import Error

from demo.management.commands.seed_demo import DEMO_PASSWORD
from patients.selectors import patient_list_visible_to
from tests import pagewalk

from .conftest import AXE_JS, login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

ROLES = ["nurse", "clinician", "admin", "patient1", "patient2"]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
SERIOUS = ("serious", "critical")
# The axe rules whose outcome depends on the layout: text over a background that moves, a box that
# scrolls only when narrow, a link told apart from its text by colour alone.
LAYOUT_RULES = ("color-contrast", "scrollable-region-focusable", "link-in-text-block")
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"

# Where a page is too wide: the outermost elements that reach past the right edge, outside any box
# that scrolls on its own (what to fix, in the failure message).
WIDE_ELEMENTS = """() => {
  const width = window.innerWidth;
  const found = [];
  const scrolls = (el) => { for (let p = el.parentElement; p; p = p.parentElement) {
    const o = getComputedStyle(p).overflowX; if (o === 'auto' || o === 'scroll' || o === 'hidden') return true; }
    return false; };
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.right > width + 1 && r.width > 0 && !scrolls(el) && !(el.parentElement && found.includes(el.parentElement))) {
      found.push(el);
    }
  }
  return found.slice(0, 5).map(el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
    + (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : '')
    + ' right=' + Math.round(el.getBoundingClientRect().right));
}"""

# The blank submission of one form: novalidate, every field the walk found emptied.
SUBMIT_BLANK = """([action, names]) => {
  const form = [...document.forms].find(f => (f.getAttribute('action') || '') === action
    && (f.getAttribute('method') || '').toLowerCase() === 'post');
  if (!form) return false;
  form.noValidate = true;
  for (const el of form.elements) {
    if (!names.includes(el.name)) continue;
    if (el.type === 'checkbox' || el.type === 'radio') el.checked = false;
    else if (el.tagName === 'SELECT') {
      const blank = [...el.options].findIndex(o => o.value === '');
      el.selectedIndex = blank;
    } else el.value = '';
  }
  form.requestSubmit();
  return true;
}"""


# After a resize: the page's resize handlers and observers (a table box that now scrolls) have run.
SETTLED = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"


def _ours(url: str) -> bool:
    """One of our own pages (the Django admin and Swagger UI bring their own layout)."""
    path = url.removeprefix("POST ")
    return not path.startswith(("/admin/", "/api/docs/"))


class Checker:
    """Axe at both widths, and the 390 px overflow check, on the page as it stands."""

    def __init__(self, page):
        self.page = page
        self.violations: dict[str, list[dict]] = {}
        self.overflows: dict[str, list[str]] = {}
        self.states = 0

    def _axe(self, *, rules: tuple[str, ...] = ()) -> list[dict]:
        options = {"resultTypes": ["violations"]}
        if rules:
            options["runOnly"] = {"type": "rule", "values": list(rules)}
        result = self.page.evaluate("async (options) => await axe.run(document, options)", options)
        return [
            {"id": v["id"], "impact": v["impact"], "help": v["help"], "nodes": [n["target"] for n in v["nodes"]][:3]}
            for v in result["violations"]
            if v["impact"] in SERIOUS
        ]

    def check(self, label: str) -> None:
        self.states += 1
        if label.removeprefix("POST ").startswith("/api/docs/"):
            # Swagger UI is drf-spectacular-sidecar's page, not ours (its markup nests its own
            # controls): tests/e2e/test_api_docs_and_error_pages.py checks it loads under the CSP.
            return
        found = self._axe()
        if not _ours(label):
            if found:
                self.violations[label] = found
            return
        self.page.set_viewport_size(PHONE)
        self.page.evaluate(SETTLED)
        try:
            # At 390 px only what the narrower layout can change is run again (the rest of axe's
            # rules read the markup, the same at both widths): half the walk's time.
            found += [{**v, "width": 390} for v in self._axe(rules=LAYOUT_RULES) if v not in found]
            if self.page.evaluate("document.documentElement.scrollWidth > window.innerWidth + 1"):
                self.overflows[label] = self.page.evaluate(WIDE_ELEMENTS)
        finally:
            self.page.set_viewport_size(DESKTOP)
        if found:
            self.violations[label] = found


def _goto(page, url: str):
    """page.goto, once more when the page it leaves was still navigating (the redirect after a
    form submitted blank can land after the walk has moved on)."""
    try:
        return page.goto(url)
    except Error as exc:
        if "interrupted by another navigation" not in str(exc):
            raise
        page.wait_for_load_state("load")
        return page.goto(url)


def _browser_get(page, base: str, checker: Checker):
    refusals: set[int] = set()

    def get(url: str) -> tuple[int, str, str]:
        try:
            response = _goto(page, base + url)
        except Error as exc:
            if "Download is starting" in str(exc):  # a CSV export, an import template: not a page
                return 200, "download", ""
            if "ERR_HTTP_RESPONSE_CODE_FAILURE" in str(exc) or "chrome-error://" in str(exc):
                # An error status with no body, which Chromium replaces by its own error page
                # (a GET of the refill form's htmx endpoint: 405): nothing of ours to check; its
                # status is read again without the browser (a 5xx fails the walk).
                response = page.request.get(base + url, max_redirects=0)
                return response.status, response.headers.get("content-type", ""), ""
            raise
        if response is None:
            return 0, "", ""
        content_type = response.headers.get("content-type", "")
        if "html" not in content_type:
            return response.status, content_type, ""
        # A refusal (403, 404) is one page state, whichever URL was refused: checked once a role
        # (a patient meets it on every staff URL).
        if response.status not in refusals:
            checker.check(url)
        if response.status in (403, 404):
            refusals.add(response.status)
        return response.status, content_type, page.content()

    return get


def _submit_blank_forms(page, base: str, visits: list[pagewalk.Visit], checker: Checker) -> int:
    submitted = 0
    for url, form in pagewalk.forms_to_submit_blank(visits):
        _goto(page, base + url)
        with page.expect_navigation() as navigation:
            assert page.evaluate(SUBMIT_BLANK, [form.action, list(form.fields)]), (url, form.action)
        response = navigation.value
        assert not page.url.startswith("chrome-error:"), (url, form.action)
        assert response is not None and response.status < 500, (url, form.action, response and response.status)
        if "html" in response.headers.get("content-type", ""):
            checker.check(f"POST {form.action or url.split('?')[0]}")
            submitted += 1
    return submitted


def _walk_as(new_context, live_server, username: str | None) -> tuple[Checker, int, int]:
    context = new_context()  # 1280 × 900 (tests/e2e/conftest.py)
    context.add_init_script(path=str(AXE_JS))  # before the page's own scripts, outside its CSP
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"JS error on {page.url}: {exc}"))
    page.on(
        "console",
        lambda msg: errors.append(f"{page.url}: {msg.text}")
        if msg.type == "error"
        and ("Content Security Policy" in msg.text or "Refused to" in msg.text)
        and _ours(page.url.removeprefix(live_server.url))
        else None,
    )
    checker = Checker(page)
    if username is None:
        starts = ["/", reverse("login"), reverse("password_reset")]
    else:
        user = get_user_model().objects.get(username=username)
        login(page, live_server, user, password=DEMO_PASSWORD)
        arguments = pagewalk.demo_arguments(visible_patients=patient_list_visible_to(user=user))
        starts = ["/", *pagewalk.start_urls(arguments)]
        if username == "admin":
            starts.append(reverse("admin:index"))
    # One URL of each pattern: the words test reads two (tests/itbclinic/test_page_walk.py); a
    # second patient's page of the same template adds minutes here, and no new markup.
    visits = pagewalk.walk(_browser_get(page, live_server.url, checker), starts, per_route=1)
    submitted = _submit_blank_forms(page, live_server.url, visits, checker)
    assert not errors, errors
    server_errors = {v.url: v.status for v in visits if v.status >= 500}
    assert not server_errors, server_errors
    if username in ("nurse", "patient1"):
        _phone_screenshot(page, live_server.url, username, visits)
    context.close()
    return checker, len([v for v in visits if v.page is not None]), submitted


def _phone_screenshot(page, base: str, username: str, visits: list[pagewalk.Visit]) -> None:
    route = "staff:patient_detail" if username == "nurse" else "portal:patient_home"
    url = next(v.url for v in visits if v.route.startswith(route + "|"))
    page.set_viewport_size(PHONE)
    _goto(page, base + url)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"page_walk_390px_{username}.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


def test_every_page_state_passes_axe_and_fits_a_phone(new_context, live_server):
    # One demo clinic for every role, each walking in a browser context of its own: seeding it
    # takes about 11 s, once instead of once a role (a walk reads and submits forms blank: it
    # records nothing another role would see).
    call_command("seed_demo", "--force", stdout=open("/dev/null", "w"))  # noqa: SIM115
    failures: dict[str, object] = {}
    for username in ["visitor", *ROLES]:
        cache.clear()  # each role's own rate limits (logins, blank password-reset forms), as per test
        started = time.monotonic()
        checker, pages, forms = _walk_as(new_context, live_server, None if username == "visitor" else username)
        print(
            f"{username}: {pages} pages, {forms} blank forms, {checker.states} states "
            f"in {time.monotonic() - started:.0f} s"
        )
        by_rule: dict[str, list[str]] = defaultdict(list)
        for label, found in checker.violations.items():
            for v in found:
                by_rule[f"{v['id']} ({v['impact']}): {v['help']}"].append(
                    f"{label} {v.get('width', 1280)} {v['nodes']}"
                )
        report = {
            rule: labels[:8] + ([f"… {len(labels) - 8} more"] if len(labels) > 8 else [])
            for rule, labels in by_rule.items()
        }
        if checker.violations or checker.overflows:
            failures[username] = {"axe": report, "wider than 390 px": checker.overflows}
        elif checker.states < 3:  # the walk reached the role's own pages, not only a login page
            failures[username] = f"only {checker.states} page states"
    assert not failures, json.dumps(failures, indent=1)
