"""Keyboard-only booking, and axe-core over the main pages (no serious or critical violation)."""

import datetime as dt
import json

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from core.formatting import format_day
from refills.models import Appointment, RefillVisit

from .conftest import AXE_JS, login, pump_refilled_days_ago

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

FIELDS = ["id_kind", "id_day", "id_time", "id_place"]


def _focused_id(page) -> str:
    return page.evaluate("document.activeElement ? (document.activeElement.id || document.activeElement.tagName) : ''")


def test_the_booking_form_works_with_the_keyboard_alone(ui, live_server, nurse):
    implant = pump_refilled_days_ago(75, nurse, given_name="Grace", family_name="Hopper")  # due in 10 days
    login(ui, live_server, nurse)
    ui.goto(live_server.url + reverse("staff:appointment_book", args=[implant.patient_id]))
    proposed = dt.date.fromisoformat(ui.locator("#id_day").input_value())

    # Tab from the top of the page: the skip link first, then on through the form in reading order
    ui.locator("body").focus()
    ui.keyboard.press("Tab")
    expect(ui.locator(".skip-link")).to_be_focused()
    visited: list[str] = []
    for _ in range(40):
        ui.keyboard.press("Tab")
        focused = _focused_id(ui)
        if not visited or visited[-1] != focused:  # a date field takes one Tab per part
            visited.append(focused)
        if focused == "id_place":
            break
    form_order = [f for f in visited if f in FIELDS]
    assert form_order == FIELDS, visited
    # focus is visible (the outline of :focus-visible)
    outline = ui.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"

    # Enter in a text field submits the form
    ui.keyboard.type(" (keyboard)")
    ui.keyboard.press("Enter")
    expect(ui.locator(".messages")).to_contain_text(f"Refill booked for {format_day(proposed, 'l j F Y')} at 10:00")
    appointment = Appointment.objects.get(implant=implant)
    assert appointment.place.endswith("(keyboard)")
    assert appointment.starts_at == timezone.make_aware(dt.datetime.combine(proposed, dt.time(10)))


SERIOUS = ("serious", "critical")


def _axe(page) -> list[dict]:
    page.add_script_tag(path=str(AXE_JS))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in SERIOUS
    ]


def test_main_pages_have_no_serious_accessibility_violations(new_context, live_server, nurse, clinician, request):
    # axe is injected as a script: this context alone bypasses the CSP (the app's pages keep theirs)
    context = new_context(bypass_csp=True)
    page = context.new_page()
    today = timezone.localdate()
    grace = pump_refilled_days_ago(75, nurse, given_name="Grace", family_name="Hopper")
    pump_refilled_days_ago(110, nurse, given_name="Alan", family_name="Turing")
    visit = RefillVisit.objects.filter(implant=grace).get()
    trial_patient = grace.patient
    from patients.services import trial_start

    trial = trial_start(patient=trial_patient, clinician=clinician, started_on=today)
    pages = {
        "worklist": reverse("staff:worklist"),
        "calendar": reverse("staff:calendar"),
        "patients": reverse("staff:patient_list"),
        "patient": reverse("staff:patient_detail", args=[grace.patient_id]),
        "booking": reverse("staff:appointment_book", args=[grace.patient_id]),
        "refill visit": reverse("staff:refill_visit_record", args=[grace.patient_id]),
        "visit recorded": reverse("staff:refill_visit_done", args=[visit.pk]),
        "wallet card": reverse("staff:wallet_card", args=[grace.patient_id]),
        "contact details": reverse("staff:patient_contact_edit", args=[grace.patient_id]),
        "refill correction": reverse("staff:refill_visit_correct", args=[visit.pk]),
    }
    clinician_pages = {
        "trial": reverse("staff:trial_detail", args=[trial.pk]),
        "implant": reverse("staff:implant_register", args=[grace.patient_id]),
        "dose change": reverse("staff:dose_change", args=[grace.pk]),
        "status": reverse("staff:patient_status_edit", args=[grace.patient_id]),
        "pump correction": reverse("staff:implant_correct", args=[grace.pk]),
    }
    found = {}
    login(page, live_server, nurse)
    for name, url in pages.items():
        page.goto(live_server.url + url)
        found[name] = _axe(page)
    # the live forecast fragment, once swapped in by htmx
    page.goto(live_server.url + pages["refill visit"])
    page.get_by_label("Actual residual aspirated (mL)").fill("1.0")
    expect(page.get_by_test_id("discrepancy-warning")).to_be_visible()
    found["refill visit, warning shown"] = _axe(page)
    page.get_by_role("button", name="Log out").click()
    login(page, live_server, clinician)
    for name, url in clinician_pages.items():
        page.goto(live_server.url + url)
        found[name] = _axe(page)
    page.screenshot(path=str(_artifact(request)), full_page=True)
    problems = {name: v for name, v in found.items() if v}
    assert not problems, json.dumps(problems, indent=2)


def _artifact(request):
    from .conftest import ARTIFACTS

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / f"{request.node.name.replace('[', '_').replace(']', '_')}.png"
