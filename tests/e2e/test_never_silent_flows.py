"""Never silent, in the browser: a pump registered with its theatre fill is on the schedule at once,
one registered without it is urgent; a pump replaced in one step; impossible refills refused.

Dates follow docs/domain.md's worked example: a 20 mL SynchroMed II filled with 20 mL of 2000 mcg/mL
at 400 mcg/day falls 0.2 mL/day, so from a fill on day D the 2 mL alarm is on D + 90, the
reservoir is empty on D + 100, and the refill is due by D + 85 (the 5-day safety margin).
"""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from core.formatting import format_day
from pumps.models import Implant
from refills.models import Appointment, RefillVisit
from refills.selectors import refill_slot_proposals
from refills.services import appointment_book, implant_register_with_fill
from tests import factories

from .conftest import ARTIFACTS, day_label, fill_refill_checks, login, pump_refilled_days_ago

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

PUMP = "Medtronic SynchroMed II 20 mL"
DRUG_2000 = "Baclofen intrathecal (Lioresal) 2000 mcg/mL"


def _snap(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"never_silent_{name}.png"), full_page=True)


def _patient_url(live_server, patient) -> str:
    return live_server.url + reverse("staff:patient_detail", args=[patient.pk])


def _fill_pump(page, *, serial: str, model: str | None = PUMP) -> None:
    if model is not None:
        page.get_by_label("Pump model").select_option(label=model)
    page.get_by_label("Serial number").fill(serial)
    page.get_by_label("Catheter tip level").select_option("T10")
    page.get_by_label("Surgeon").fill("Ms A. Surgeon")
    page.get_by_label("Hospital").fill("City Hospital")


def _fill_theatre_fill(page, *, lot: str) -> None:
    page.get_by_label("Drug and concentration filled").select_option(label=DRUG_2000)
    page.get_by_label("Volume filled (mL)").fill("20")
    page.get_by_label("Drug lot number").fill(lot)
    page.get_by_label("Low-reservoir alarm (mL)").fill("2")
    page.get_by_label("Starting dose (mcg/day)").fill("400")


def _expect_dates_from(page, filled_on: dt.date) -> None:
    """The patient page's key dates for the 20 mL / 0.2 mL/day example filled on `filled_on`."""
    due_by, alarm, empty = (filled_on + dt.timedelta(days=n) for n in (85, 90, 100))
    dates = page.locator(".key-dates")
    expect(dates.locator(".key-date", has_text="Refill due by").locator(".v")).to_have_text(day_label(due_by))
    expect(page.locator("#alarm-date .v")).to_have_text(day_label(alarm))
    expect(page.locator("#alarm-date")).to_contain_text(f"in {(alarm - timezone.localdate()).days} days")
    expect(dates.locator(".key-date", has_text="Reservoir empty").locator(".v")).to_have_text(day_label(empty))
    expect(dates.locator(".key-date", has_text="Dose in force")).to_contain_text("400 mcg/day")
    expect(page.get_by_test_id("forecast-problem")).to_have_count(0)


def test_clinician_registers_a_pump_with_its_theatre_fill_and_it_is_on_the_schedule_at_once(
    ui, live_server, clinician, nurse
):
    today = timezone.localdate()
    filled = factories.PatientFactory(given_name="Ada", family_name="Lovelace", mrn="MRN-NS-1")
    unfilled = factories.PatientFactory(given_name="Mary", family_name="Somerville", mrn="MRN-NS-2")
    login(ui, live_server, clinician)

    # Ada: no pump yet; the clinician registers one with the fill given in theatre
    ui.goto(_patient_url(live_server, filled))
    expect(ui.get_by_role("heading", name="No active pump")).to_be_visible()
    ui.get_by_role("link", name="Register an implant").click()
    expect(ui.get_by_label("Implanted on")).to_have_value(today.isoformat())
    _fill_pump(ui, serial="NGP-NS-1")
    _fill_theatre_fill(ui, lot="LOT-THEATRE-1")
    _snap(ui, "1_register_with_fill_form")
    ui.get_by_role("button", name="Register the implant").click()

    # on the schedule at once: due by today + 85, alarm + 90, empty + 100
    expect(ui.get_by_role("heading", name="Ada Lovelace", level=1)).to_be_visible()
    expect(ui.locator(".messages")).to_contain_text(
        f"Pump NGP-NS-1 registered. Refill due by {format_day(today + dt.timedelta(days=85), 'j M Y')} "
        f"(alarm {format_day(today + dt.timedelta(days=90), 'j M Y')})."
    )
    _expect_dates_from(ui, today)
    _snap(ui, "1_patient_with_forecast")
    implant = Implant.objects.get(patient=filled)
    assert (implant.fill_volume_ml, implant.fill_drug_lot, implant.fill_alarm_threshold_ml) == (
        Decimal("20"),
        "LOT-THEATRE-1",
        Decimal("2"),
    )
    assert (implant.forecast_due_by, implant.forecast_alarm_on, implant.forecast_empty_on) == (
        today + dt.timedelta(days=85),
        today + dt.timedelta(days=90),
        today + dt.timedelta(days=100),
    )
    assert implant.forecast_problem == ""

    # Mary: registered without the fill → urgent on her page, no dates
    ui.goto(_patient_url(live_server, unfilled))
    ui.get_by_role("link", name="Register an implant").click()
    _fill_pump(ui, serial="NGP-NS-2")
    ui.get_by_role("button", name="Register the implant").click()
    expect(ui.get_by_role("heading", name="Mary Somerville", level=1)).to_be_visible()
    expect(ui.locator(".messages")).to_contain_text(
        "Pump NGP-NS-2 registered. Fill not recorded: it is on the worklist as urgent."
    )
    problem = ui.get_by_test_id("forecast-problem")
    expect(problem).to_be_visible()
    expect(problem).to_contain_text("URGENT: Fill not recorded.")
    expect(problem).to_contain_text("Record the fill given in theatre (record the theatre fill), or a refill.")
    expect(problem.get_by_role("link", name="record the theatre fill")).to_be_visible()
    expect(ui.locator(".key-date", has_text="Refill due by").locator(".v")).to_have_text("—")
    expect(ui.locator("#alarm-date .v")).to_have_text("—")
    _snap(ui, "1_patient_without_fill")
    assert Implant.objects.get(patient=unfilled).forecast_problem == "fill_not_recorded"

    # the nurse's worklist: Mary heads it in the no-forecast section; Ada is not there
    ui.get_by_role("button", name=re.compile("Log out")).click()
    login(ui, live_server, nurse)
    expect(ui.get_by_role("heading", name="Worklist", level=1)).to_be_visible()
    section = ui.locator("#no-forecast")
    expect(section.get_by_role("heading")).to_have_text("URGENT: 1 pump with no forecast")
    rows = ui.get_by_test_id("no-forecast").locator("li")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Mary Somerville")
    expect(rows.first).to_contain_text(f"MRN MRN-NS-2 · {PUMP} #NGP-NS-2 · implanted {day_label(today)}")
    expect(rows.first).to_contain_text("Fill not recorded")
    expect(section).not_to_contain_text("Lovelace")
    # at the top: above the search and the refills table
    assert section.bounding_box()["y"] < ui.locator("#refills").bounding_box()["y"]
    assert section.bounding_box()["y"] < ui.get_by_role("search").bounding_box()["y"]
    # Ada is due later: counted on the worklist, listed behind its link
    expect(ui.locator("#refills .later")).to_contain_text("Later: 1 pump due in more than")
    _snap(ui, "1_worklist_no_forecast")
    ui.locator("#refills .later").get_by_role("link").click()
    expect(ui.locator("#refills")).to_contain_text("Lovelace, Ada")
    ui.get_by_role("link", name="Worklist").first.click()
    expect(ui.locator("#no-forecast")).to_be_visible()
    rows.first.get_by_role("link", name="Mary Somerville").click()
    expect(ui.get_by_test_id("forecast-problem")).to_be_visible()

    # the clinician records the theatre fill from her page: the urgent state ends with it
    ui.get_by_role("button", name=re.compile("Log out")).click()
    login(ui, live_server, clinician)
    ui.goto(_patient_url(live_server, unfilled))
    ui.get_by_test_id("forecast-problem").get_by_role("link", name="record the theatre fill").click()
    ui.get_by_label("Drug and concentration filled").select_option(label=DRUG_2000)
    ui.get_by_label("Volume filled (mL)").fill("20")
    ui.get_by_label("Drug lot number").fill("LOT-LATE")
    ui.get_by_label("Starting dose (mcg/day)").fill("400")
    ui.get_by_role("button", name="Record the fill").click()
    expect(ui.get_by_role("heading", name="Mary Somerville", level=1)).to_be_visible()
    expect(ui.get_by_test_id("forecast-problem")).to_have_count(0)
    late = Implant.objects.get(patient=unfilled)
    assert (late.forecast_problem, late.forecast_alarm_on) == ("", today + dt.timedelta(days=90))


def test_clinician_replaces_a_pump_in_one_step(ui, live_server, clinician, nurse):
    today = timezone.localdate()
    implanted = today - dt.timedelta(days=80)  # due by today + 5, alarm today + 10
    patient = factories.PatientFactory(given_name="Grace", family_name="Hopper", mrn="MRN-NS-3")
    old = implant_register_with_fill(
        patient=patient,
        recorded_by=clinician,
        pump_model=factories.pump_model(),
        serial_number="NGP-OLD-1",
        implanted_on=implanted,
        surgeon="Mr B. Surgeon",
        hospital="City Hospital",
        catheter_model="8781",
        catheter_tip_level="T10",
        fill_drug=factories.drug("2000"),
        fill_volume_ml=Decimal("20"),
        fill_drug_lot="LOT-OLD",
        fill_alarm_threshold_ml=Decimal("2"),
        starting_daily_dose_mcg=Decimal("400"),
    )
    assert old.forecast_due_by == today + dt.timedelta(days=5)
    day = refill_slot_proposals(implant=old, today=today)[0]
    booked = appointment_book(
        patient=patient,
        kind=Appointment.Kind.REFILL,
        starts_at=timezone.make_aware(dt.datetime.combine(day, dt.time(10, 0))),
        booked_by=nurse,
        implant=old,
        place="ITB clinic room 2",
    )

    login(ui, live_server, clinician)
    ui.goto(_patient_url(live_server, patient))
    expect(ui.locator(".key-date", has_text="Next refill booked")).to_contain_text(f"{day:%a} {day_label(day)}")
    ui.get_by_role("link", name="Replace pump").click()
    expect(ui.get_by_role("heading", name="Replace the pump")).to_be_visible()
    expect(ui.locator("form.card")).to_contain_text(f"#NGP-OLD-1, implanted {day_label(implanted)}")
    # pre-filled: today for both dates, the old model, tip and alarm volume
    expect(ui.get_by_label("Old pump explanted on")).to_have_value(today.isoformat())
    expect(ui.get_by_label("Implanted on")).to_have_value(today.isoformat())
    expect(ui.get_by_label("Pump model")).to_have_value(str(old.pump_model_id))
    expect(ui.get_by_label("Catheter tip level")).to_have_value("T10")
    ui.get_by_label("Why it was replaced").fill("Battery at ERI: elective replacement")
    _fill_pump(ui, serial="NGP-NEW-1", model=None)
    _fill_theatre_fill(ui, lot="LOT-NEW")
    _snap(ui, "2_replace_form")
    ui.get_by_role("button", name="Replace the pump").click()

    # the new pump with its own dates (filled today), the old one under previous pumps
    expect(ui.get_by_role("heading", name="Grace Hopper", level=1)).to_be_visible()
    expect(ui.locator(".messages")).to_contain_text(
        f"Pump NGP-NEW-1 registered in place of the old pump. Refill due by "
        f"{format_day(today + dt.timedelta(days=85), 'j M Y')} "
        f"(alarm {format_day(today + dt.timedelta(days=90), 'j M Y')})."
    )
    pump = ui.locator("section", has=ui.get_by_role("heading", name="Pump", exact=True))
    expect(pump.locator("dt:has-text('Serial') + dd")).to_have_text("NGP-NEW-1")
    _expect_dates_from(ui, today)
    expect(ui.locator(".key-date", has_text="Next refill booked")).to_contain_text("Not booked yet")
    previous = ui.locator("section", has=ui.get_by_role("heading", name="Previous pumps"))
    expect(previous).to_contain_text(
        f"{PUMP} #NGP-OLD-1: {day_label(implanted)} – {day_label(today)} (Battery at ERI: elective replacement)"
    )
    _snap(ui, "2_patient_after_replace")

    # in the database: the old pump out, its booked refill cancelled with the explant as reason
    old.refresh_from_db()
    assert (old.explanted_on, old.explant_reason) == (today, "Battery at ERI: elective replacement")
    booked.refresh_from_db()
    assert booked.status == Appointment.Status.CANCELLED
    assert "explanted" in booked.cancel_reason
    assert "Battery at ERI: elective replacement" in booked.cancel_reason
    new = Implant.objects.get(patient=patient, explanted_on__isnull=True)
    assert new.serial_number == "NGP-NEW-1" and new.forecast_due_by == today + dt.timedelta(days=85)
    assert not Appointment.objects.filter(patient=patient, status=Appointment.Status.BOOKED).exists()


def test_refused_entries_show_the_field_and_save_nothing(ui, live_server, nurse, clinician):
    today = timezone.localdate()
    implant = pump_refilled_days_ago(80, nurse, given_name="Alan", family_name="Turing")
    visits = RefillVisit.objects.count()
    login(ui, live_server, nurse)
    ui.goto(live_server.url + reverse("staff:refill_visit_record", args=[implant.patient_id]))
    expect(ui.get_by_role("heading", name="Record a refill")).to_be_visible()
    expect(ui.locator("#expected-output")).to_have_text("4 mL")  # 20 mL − 80 days × 0.2 mL/day
    expect(ui.get_by_label("Daily dose (mcg/day)")).to_have_value("400")
    ui.get_by_label("Actual residual aspirated (mL)").fill("4")
    ui.get_by_label("Drug lot number").fill("LOT-NS-9")
    fill_refill_checks(ui)
    now_value = ui.get_by_label("Refilled at").input_value()
    save = ui.get_by_role("button", name="Save the refill")

    def expect_refused(field_id: str, message: str) -> None:
        expect(ui.locator(".form-errors")).to_contain_text("Please correct the fields marked below.")
        expect(ui.locator(f"#{field_id}_error")).to_contain_text(message)
        expect(ui.locator(".field.has-error", has=ui.locator(f"#{field_id}"))).to_be_visible()
        assert RefillVisit.objects.count() == visits
        # what was typed is kept
        expect(ui.get_by_label("Actual residual aspirated (mL)")).to_have_value("4")
        expect(ui.get_by_label("Drug lot number")).to_have_value("LOT-NS-9")

    # 1. dated next year
    next_year = today + dt.timedelta(days=365)
    ui.get_by_label("Refilled at").fill(f"{next_year.isoformat()}T10:00")
    save.click()
    expect_refused("id_performed_at", f"The refill is dated {next_year.isoformat()} 10:00, in the future")
    expect(ui.locator("#id_performed_at_error")).to_contain_text("in the future")
    expect(ui.get_by_label("Refilled at")).to_have_value(f"{next_year.isoformat()}T10:00")
    _snap(ui, "3_refused_future_date")

    # 2. 99999 mcg/day: above the drug's 2000 mcg/day limit
    ui.get_by_label("Refilled at").fill(now_value)
    ui.get_by_label("Daily dose (mcg/day)").fill("99999")
    save.click()
    expect_refused("id_daily_dose_after_mcg", "99999 mcg/day is above the 2000 mcg/day limit for this drug.")
    expect(ui.locator("#id_performed_at_error")).to_have_count(0)
    expect(ui.get_by_label("Daily dose (mcg/day)")).to_have_value("99999")
    expect(ui.get_by_label("Refilled at")).to_have_value(now_value)
    _snap(ui, "3_refused_dose_limit")

    # 3. a changed dose (440 mcg/day) without naming the prescribing clinician
    ui.get_by_label("Daily dose (mcg/day)").fill("440")
    save.click()
    expect_refused(
        "id_prescriber",
        "The prescribed dose is 400 mcg/day at 2000 mcg/mL: "
        "a change at a refill names the clinician who prescribed it.",
    )
    expect(ui.locator("#id_daily_dose_after_mcg_error")).to_have_count(0)
    expect(ui.get_by_label("Daily dose (mcg/day)")).to_have_value("440")
    expect(ui.get_by_label("Prescribing clinician")).to_have_value("")
    _snap(ui, "3_refused_no_prescriber")
    assert not RefillVisit.objects.filter(drug_lot="LOT-NS-9").exists()
