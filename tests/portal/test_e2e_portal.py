"""
The portal as a patient uses it: headless Chromium (Debian's) at a phone's size (390×844).

Invitation → password → home with the right appointment; the .ics download parses with the
right local time; patient A editing the URL to B's page gets "not found"; a change request
shows up on the nurses' worklist. Screenshots go to test-artifacts/portal/.
"""

import datetime as dt
import os
import re
import shutil
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from icalendar import Calendar

from portal.services import calendar_feed_create
from refills.models import Alert, AppointmentChangeRequest
from refills.services import implant_forecast_refresh
from tests import factories
from tests.portal.world import make_world

# Playwright's sync API runs an event loop in this thread; the ORM calls of the test are fine.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "portal"
PHONE = {"width": 390, "height": 844}
NEW_PASSWORD = "a quiet river at dawn 17"
LONDON = ZoneInfo("Europe/London")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright's session browser, on Debian's chromium (no browser download here).

    The same session browser serves tests/e2e: one Playwright per process, or the sync API
    refuses to start a second one inside the first one's event loop.
    """
    if not Path(CHROMIUM).exists():
        from tests.conftest import require_service

        require_service("chromium", "install Debian's chromium (apt-get install -y chromium)")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": True,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


@pytest.fixture
def phone(browser):
    contexts = []

    def new_page():
        context = browser.new_context(viewport=PHONE, device_scale_factor=2, accept_downloads=True)
        contexts.append(context)
        return context.new_page()

    yield new_page
    for context in contexts:
        context.close()


@pytest.fixture
def site(live_server):
    """The live server's URL, its middleware rebuilt under this test's settings.

    live_server is session-scoped: its handler may have been built before the autouse fixture
    of tests/conftest.py turned the HTTPS redirect off, and SecurityMiddleware reads it once.
    """
    from django.core.handlers.wsgi import WSGIHandler

    app = live_server.thread.httpd.get_app()
    while isinstance(app, WSGIHandler):  # StaticFilesHandler → _MediaFilesHandler → WSGIHandler
        # Each level holds its own middleware chain (the file handlers pass on to BaseHandler).
        WSGIHandler.load_middleware(app)
        app = getattr(app, "application", None)
    return live_server.url


@pytest.fixture
def upcoming_world(transactional_db):
    """The shared world, with appointments moved into the future relative to the real clock."""
    world = make_world()
    soon = dt.datetime.combine(timezone.localdate() + dt.timedelta(days=10), dt.time(10, 0), tzinfo=LONDON)
    for offset, side in enumerate((world.a, world.b)):
        side.appointment.starts_at = soon + dt.timedelta(days=offset)
        side.appointment.save()
    AppointmentChangeRequest.objects.all().update(status=AppointmentChangeRequest.Status.DONE)
    return world


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def shot_screens(page, name: str, screens: int) -> None:
    """Phone-screen-sized pictures, top to bottom, as a person scrolls (easier to review)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for i in range(screens):
        page.evaluate(f"window.scrollTo(0, {i * (PHONE['height'] - 80)})")
        page.screenshot(path=str(ARTIFACTS / f"{name}-screen{i + 1}.png"))
    page.evaluate("window.scrollTo(0, 0)")


def log_in(page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}{reverse('login')}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_invitation_to_home_page_shows_the_right_appointment(site, phone, upcoming_world, password, celery_eager):
    world = upcoming_world
    patient = factories.PatientFactory(
        mrn="MRN-E2E", given_name="Nadia", family_name="Newman", email="nadia@example.org"
    )
    implant = factories.ImplantFactory(patient=patient)
    today = timezone.localdate()
    refilled_at = dt.datetime.combine(today - dt.timedelta(days=30), dt.time(10, 0), tzinfo=LONDON)
    factories.DosePrescriptionFactory(implant=implant, effective_at=refilled_at)
    factories.RefillVisitFactory(
        implant=implant,
        performed_by=world.nurse,
        performed_at=refilled_at,
        due_by=today + dt.timedelta(days=55),
        alarm_on=today + dt.timedelta(days=60),
        empty_on=today + dt.timedelta(days=70),
    )
    # Written by factories, not the refill service: store the forecast the service would have
    # (20 mL at 0.2 mL/day from 30 days ago: alarm in 60 days, due by in 55).
    implant_forecast_refresh(implant=implant)
    starts = dt.datetime.combine(timezone.localdate() + dt.timedelta(days=14), dt.time(14, 30), tzinfo=LONDON)
    factories.AppointmentFactory(implant=implant, starts_at=starts, booked_by=world.nurse, place="ITB clinic room 4")

    # given a nurse who invites the patient from the staff side
    nurse_page = phone()
    log_in(nurse_page, site, world.nurse.username, password)
    nurse_page.goto(f"{site}{reverse('portal:invite', kwargs={'patient_id': patient.pk})}")
    nurse_page.get_by_label("Email address the invitation goes to").fill("nadia@example.org")
    nurse_page.get_by_role("button", name="Send the invitation").click()
    nurse_page.get_by_text("Invitation sent to nadia@example.org (patient).").wait_for()
    shot(nurse_page, "01-nurse-invites")

    # when the patient opens the emailed link on a phone and chooses a password
    (message,) = mail.outbox
    path = re.search(r"https?://[^/\s]+(/portal/welcome/\S+/)", message.body).group(1)
    page = phone()
    page.goto(f"{site}{path}")
    assert "set-password" in page.url  # the token left the address bar at once
    shot(page, "02-set-password")
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password confirmation").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Save my password").click()

    # then the home page shows their appointment, in large type
    page.get_by_role("heading", name="Hello, Nadia").wait_for()
    expected_date = f"{starts:%A} {starts.day} {starts:%B %Y}"
    assert page.get_by_test_id("next-appointment-date").inner_text() == expected_date
    assert page.get_by_test_id("next-appointment-time").inner_text() == "at 14:30"
    assert "ITB clinic room 4" in page.content()
    due, alarm = today + dt.timedelta(days=55), today + dt.timedelta(days=60)
    assert page.get_by_test_id("pump-due").inner_text() == f"Your refill is due by {due.day} {due:%B %Y}."
    assert page.get_by_test_id("pump-alarm").inner_text() == (
        f"The pump alarm would sound around {alarm.day} {alarm:%B %Y}."
    )
    big = page.get_by_test_id("next-appointment-date")
    assert float(big.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")) >= 24
    add = page.get_by_role("link", name="Add to my calendar")
    box = add.bounding_box()
    assert box["height"] >= 44 and box["width"] <= PHONE["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # no sideways scrolling
    shot(page, "03-portal-home")
    shot_screens(page, "03-portal-home", screens=5)

    # and the same link does not work twice
    again = phone()
    again.goto(f"{site}{path}")
    again.get_by_role("heading", name="This link no longer works").wait_for()


def test_ics_download_parses_with_the_clinic_local_time(site, phone, upcoming_world, password):
    world = upcoming_world
    page = phone()
    log_in(page, site, world.a.user.username, password)
    page.get_by_role("heading", name="Hello, Alice").wait_for()
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Add to my calendar").click()
    content = Path(download_info.value.path()).read_bytes()
    (event,) = Calendar.from_ical(content).walk("VEVENT")
    expected = world.a.appointment.starts_at.astimezone(LONDON)
    start = event.decoded("dtstart")
    assert start == expected and start.tzinfo is not None
    assert (start.hour, start.minute) == (10, 0)
    assert str(event["dtstart"].params["TZID"]) == "Europe/London"


def test_patient_a_cannot_open_patient_b_pages_by_editing_the_url(site, phone, upcoming_world, password):
    world = upcoming_world
    page = phone()
    log_in(page, site, world.a.user.username, password)
    page.get_by_role("heading", name="Hello, Alice").wait_for()
    own = page.url
    assert own.endswith(f"/portal/p/{world.a.patient.pk}/")
    for url in [
        reverse("portal:patient_home", kwargs={"patient_id": world.b.patient.pk}),
        reverse("portal:reminder_preferences", kwargs={"patient_id": world.b.patient.pk}),
        reverse(
            "portal:appointment_ics",
            kwargs={"patient_id": world.a.patient.pk, "appointment_id": world.b.appointment.pk},
        ),
    ]:
        response = page.goto(f"{site}{url}")
        assert response.status == 404, url
        assert "Bob" not in page.content()
    shot(page, "04-other-patient-404")


def test_change_request_reaches_the_nurses_worklist(site, phone, upcoming_world, password):
    world = upcoming_world
    page = phone()
    log_in(page, site, world.a.user.username, password)
    page.get_by_role("link", name="Ask for a different date").click()
    wanted = timezone.localdate() + dt.timedelta(days=20)
    page.get_by_label("Which date would suit you better?").fill(wanted.isoformat())
    page.get_by_label("Your message to the clinic").fill("I have a scan that morning")
    shot(page, "05-change-request-form")
    page.get_by_role("button", name="Send my request").click()
    page.get_by_text("The clinic has your request").wait_for()
    assert "You asked for another date" in page.content()
    shot(page, "06-change-request-sent")

    request = AppointmentChangeRequest.objects.get(appointment=world.a.appointment, status="open")
    assert request.preferred_dates == wanted.isoformat()
    assert Alert.objects.filter(kind=Alert.Kind.CHANGE_REQUEST, patient=world.a.patient, resolved_at=None).exists()

    try:
        worklist = reverse("staff:worklist")
    except NoReverseMatch:  # the staff web app is not in this tree: the rows above are the worklist's input
        pytest.skip("staff:worklist not present; the request and the nurses' alert rows were asserted")
    nurse = phone()
    nurse.set_viewport_size({"width": 1280, "height": 900})
    log_in(nurse, site, world.nurse.username, password)
    nurse.goto(f"{site}{worklist}#requests")
    requests = nurse.locator("#requests")
    requests.get_by_text("Alice Adams").wait_for()
    assert "I have a scan that morning" in requests.inner_text()
    alerts = nurse.locator("#alerts").inner_text()
    assert "Patient asked for a new date" in alerts
    shot(nurse, "07-nurse-worklist-request")


def test_nurse_revokes_a_carer_and_the_carers_feed_and_session_stop_working(site, phone, upcoming_world, password):
    world = upcoming_world
    patient = world.a.patient
    _feed, token = calendar_feed_create(user=world.a.carer, patient=patient)
    feed_url = f"{site}{reverse('portal:calendar_feed', kwargs={'token': token})}"
    patient_url = f"{site}{reverse('portal:patient_home', kwargs={'patient_id': patient.pk})}"

    # given the carer, logged in on their phone, reading Alice's portal and her calendar feed
    carer_page = phone()
    log_in(carer_page, site, world.a.carer.username, password)
    carer_page.goto(patient_url)
    assert "You are looking after" in carer_page.content()
    assert carer_page.request.get(feed_url).status == 200

    # when a nurse revokes the carer's access, with a reason, from the patient's portal-access page
    nurse_page = phone()
    log_in(nurse_page, site, world.nurse.username, password)
    nurse_page.goto(f"{site}{reverse('portal:invite', kwargs={'patient_id': patient.pk})}")
    nurse_page.get_by_role("link", name="Revoke access").click()
    nurse_page.get_by_role("heading", name="Revoke this carer's access?").wait_for()
    nurse_page.get_by_label("Why this carer no longer sees the portal").fill("Alice withdrew her consent by phone")
    nurse_page.get_by_role("button", name="Revoke access").click()
    nurse_page.get_by_text("The carer no longer sees this patient's portal").wait_for()
    assert "Alice withdrew her consent by phone" in nurse_page.content()
    shot(nurse_page, "10-nurse-revokes-carer")

    # then the carer's session is over and the feed is gone
    carer_page.goto(patient_url)
    assert carer_page.url.split("?")[0].endswith(reverse("login"))
    assert carer_page.request.get(feed_url).status == 404
