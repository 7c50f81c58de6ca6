"""Home visits (their own capacity, the patient's address, their own words) and closed days
(public holidays of the clinic's country on top of its own closed days)."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string

from refills.models import Appointment, ClinicSettings, ClosedDay, Reminder
from refills.public_holidays import holiday_setting_errors, public_holidays
from refills.reminders.delivery import reminder_message_context
from refills.selectors import clinic_closed_days, refill_bookings_per_day, refill_slot_proposals
from refills.services import appointment_book, appointment_move
from tests import factories
from tests.helpers import refill_record

pytestmark = pytest.mark.django_db
LONDON = ZoneInfo("Europe/London")
HOME = Appointment.Location.HOME


def at(y, m, d, h=10, minute=0):
    return dt.datetime(y, m, d, h, minute, tzinfo=LONDON)


def with_address(**fields):
    return factories.PatientFactory(
        address_line1="12 Elm Road", address_town="Leeds", address_postcode="LS1 4AB", **fields
    )


def pump(*, nurse, refilled_on: dt.datetime, patient=None):
    implant = factories.ImplantFactory(implanted_on=dt.date(2024, 11, 1), patient=patient or with_address())
    refill_record(implant=implant, by=nurse, at=refilled_on)
    implant.refresh_from_db()
    return implant


@pytest.fixture
def spring(nurse):
    """Refilled 6 Jan 2025 (docs/domain.md's example): due by Tue 1 Apr, window from 11 Mar."""
    return pump(nurse=nurse, refilled_on=at(2025, 1, 6))


@pytest.fixture
def christmas(nurse):
    """Refilled 1 Oct 2025: alarm Tue 30 Dec, due by Thu 25 Dec 2025 (Christmas Day), window from 4 Dec."""
    return pump(nurse=nurse, refilled_on=at(2025, 10, 1))


# --- home visits -----------------------------------------------------------------------------


def test_a_home_visit_is_at_the_patients_home_and_leaves_the_clinic_slots_free(spring, nurse):
    appointment = appointment_book(
        patient=spring.patient,
        kind="refill",
        starts_at=at(2025, 3, 27),
        booked_by=nurse,
        location=HOME,
        place="ITB clinic room 2",  # the form's default room is not where a home visit is
        now=at(2025, 3, 1),
    )
    assert (appointment.location, appointment.place, appointment.is_home_visit) == (HOME, "Home visit", True)
    assert refill_bookings_per_day(start=dt.date(2025, 3, 27), end=dt.date(2025, 3, 27)) == {}
    # its reminders are planned in the booking's transaction, as for the clinic
    assert Reminder.objects.filter(appointment=appointment).exists()


def test_an_appointment_is_at_the_clinic_unless_said_otherwise(spring, nurse):
    appointment = appointment_book(
        patient=spring.patient, kind="refill", starts_at=at(2025, 3, 27), booked_by=nurse, now=at(2025, 3, 1)
    )
    assert (appointment.location, appointment.place) == (Appointment.Location.CLINIC, "ITB clinic room 2")


def test_a_full_day_of_home_visits_refuses_another_with_a_clear_error(spring, nurse):
    clinic = ClinicSettings.load()
    clinic.home_visits_per_day = 1
    clinic.save()
    other = with_address()
    appointment_book(
        patient=other, kind="review", starts_at=at(2025, 3, 27, 9), booked_by=nurse, location=HOME, now=at(2025, 3, 1)
    )
    with pytest.raises(ValidationError) as exc:
        appointment_book(
            patient=spring.patient,
            kind="refill",
            starts_at=at(2025, 3, 27, 14),
            booked_by=nurse,
            location=HOME,
            now=at(2025, 3, 1),
        )
    assert exc.value.message_dict["starts_at"] == [
        "Thursday 27 March is full for home visits (1 a day). A clinician may book it as urgent, with a "
        "reason, when the alarm date leaves no open day."
    ]
    assert Appointment.objects.filter(patient=spring.patient).count() == 0
    # the clinic's refill slots that day are untouched: the same refill fits at the clinic
    appointment_book(
        patient=spring.patient, kind="refill", starts_at=at(2025, 3, 27, 14), booked_by=nurse, now=at(2025, 3, 1)
    )


def test_moving_a_home_visit_counts_the_home_visits_of_the_new_day(spring, nurse):
    clinic = ClinicSettings.load()
    clinic.home_visits_per_day = 1
    clinic.save()
    appointment_book(
        patient=with_address(),
        kind="review",
        starts_at=at(2025, 3, 26, 9),
        booked_by=nurse,
        location=HOME,
        now=at(2025, 3, 1),
    )
    visit = appointment_book(
        patient=spring.patient,
        kind="refill",
        starts_at=at(2025, 3, 27),
        booked_by=nurse,
        location=HOME,
        now=at(2025, 3, 1),
    )
    with pytest.raises(ValidationError, match="full for home visits"):
        appointment_move(appointment=visit, starts_at=at(2025, 3, 26, 14), moved_by=nurse, now=at(2025, 3, 1))
    # the day it is on already holds it: moving it within that day is fine
    moved = appointment_move(appointment=visit, starts_at=at(2025, 3, 27, 15), moved_by=nurse, now=at(2025, 3, 1))
    assert (moved.starts_at, moved.place) == (at(2025, 3, 27, 15), "Home visit")


def test_a_home_visit_needs_the_patients_address(nurse):
    implant = pump(nurse=nurse, refilled_on=at(2025, 1, 6), patient=factories.PatientFactory())
    with pytest.raises(ValidationError) as exc:
        appointment_book(
            patient=implant.patient,
            kind="refill",
            starts_at=at(2025, 3, 27),
            booked_by=nurse,
            location=HOME,
            now=at(2025, 3, 1),
        )
    assert exc.value.message_dict["location"] == [
        f"{implant.patient.full_name} has no address on record: add the address to the patient's details "
        "before booking a home visit."
    ]
    assert not Appointment.objects.exists()


def test_an_unknown_location_is_refused_naming_the_field(spring, nurse):
    with pytest.raises(ValidationError) as exc:
        appointment_book(
            patient=spring.patient,
            kind="refill",
            starts_at=at(2025, 3, 27),
            booked_by=nurse,
            location="car",
            now=at(2025, 3, 1),
        )
    assert exc.value.message_dict == {"location": ["Choose the clinic or a home visit."]}


def test_home_visit_proposals_count_home_visits_not_clinic_slots(spring, nurse):
    clinic = ClinicSettings.load()
    clinic.home_visits_per_day = 1
    clinic.refills_per_day = 1
    clinic.save()
    appointment_book(
        patient=with_address(),
        kind="review",
        starts_at=at(2025, 4, 1, 9),
        booked_by=nurse,
        location=HOME,
        now=at(2025, 3, 1),
    )
    other = pump(nurse=nurse, refilled_on=at(2025, 1, 6))
    appointment_book(
        patient=other.patient, kind="refill", starts_at=at(2025, 3, 31), booked_by=nurse, now=at(2025, 3, 1)
    )
    today = dt.date(2025, 3, 1)
    # Tue 1 Apr has no home visit left, Mon 31 Mar no clinic slot left
    assert refill_slot_proposals(implant=spring, today=today, count=2, location=HOME) == [
        dt.date(2025, 3, 31),
        dt.date(2025, 3, 28),
    ]
    assert refill_slot_proposals(implant=spring, today=today, count=2) == [dt.date(2025, 4, 1), dt.date(2025, 3, 28)]


def reminder_texts(appointment: Appointment) -> dict[str, str]:
    reminder = Reminder(
        appointment=appointment,
        patient=appointment.patient,
        offset_days=2,
        channel=Reminder.Channel.EMAIL,
        send_at=appointment.starts_at,
        appointment_starts_at=appointment.starts_at,
    )
    context = reminder_message_context(reminder=reminder, clinic=ClinicSettings.load())
    return {
        name: render_to_string(f"refills/email/reminder_{name}.txt", context).strip()
        for name in ("subject", "body", "sms")
    }


def test_a_home_visit_reminder_says_a_nurse_visits_at_home_and_never_what_to_bring(spring, nurse):
    appointment = appointment_book(
        patient=spring.patient,
        kind="refill",
        starts_at=at(2025, 3, 27),
        booked_by=nurse,
        location=HOME,
        now=at(2025, 3, 1),
    )
    texts = reminder_texts(appointment)
    assert texts["subject"] == "Reminder: a nurse visits you at home on Thursday 27 March at 10:00"
    body = texts["body"]
    assert "A nurse will visit you at home." in body
    assert "  Where: at your home\n" in body
    assert "Elm Road" not in body  # nothing about the patient in a message someone else may read
    assert "Neurology outpatients" not in body and "Place:" not in body  # no clinic address
    assert "bring" not in body.lower()
    for clinical in ("baclofen", "refill", "pump", "mcg", "dose", "alarm"):  # as every reminder: no clinical detail
        assert clinical not in body.lower() and clinical not in texts["sms"].lower()
    assert texts["sms"] == (
        "ITB Clinic: reminder: a nurse will visit you at home on Thu 27 Mar at 10:00. "
        "To change it call +44 20 7946 0000."
    )


def test_a_clinic_reminder_keeps_the_clinic_address(spring, nurse):
    appointment = appointment_book(
        patient=spring.patient, kind="refill", starts_at=at(2025, 3, 27), booked_by=nurse, now=at(2025, 3, 1)
    )
    texts = reminder_texts(appointment)
    assert "  Place: ITB clinic room 2\n         Neurology outpatients, level 2" in texts["body"]
    assert "nurse will visit" not in texts["body"]
    assert texts["subject"] == "Reminder: your appointment on Thursday 27 March at 10:00"


# --- public holidays ---------------------------------------------------------------------------


def test_public_holidays_of_the_clinics_country_and_region_are_closed_with_their_name():
    clinic = ClinicSettings.load()  # GB, England by default
    closed = clinic_closed_days(start=dt.date(2025, 12, 22), end=dt.date(2026, 1, 2), clinic=clinic)
    assert {day: name for day, name in closed.items() if name} == {
        dt.date(2025, 12, 25): "Christmas Day",
        dt.date(2025, 12, 26): "Boxing Day",
        dt.date(2026, 1, 1): "New Year's Day",
    }
    # Scotland also closes on 2 January
    clinic.holiday_subdivision = "SCT"
    closed = clinic_closed_days(start=dt.date(2026, 1, 2), end=dt.date(2026, 1, 2), clinic=clinic)
    assert closed == {dt.date(2026, 1, 2): "New Year Holiday"}
    # no country: only the clinic's own closed days
    clinic.holiday_country, clinic.holiday_subdivision = "", ""
    assert clinic_closed_days(start=dt.date(2025, 12, 25), end=dt.date(2025, 12, 25), clinic=clinic) == {}


def test_the_clinics_own_reason_for_a_closed_day_wins_over_the_holidays_name():
    ClosedDay.objects.create(date=dt.date(2025, 12, 25), reason="Closed for Christmas week")
    ClosedDay.objects.create(date=dt.date(2025, 12, 26), reason="")
    closed = clinic_closed_days(start=dt.date(2025, 12, 25), end=dt.date(2025, 12, 26), clinic=ClinicSettings.load())
    assert closed == {dt.date(2025, 12, 25): "Closed for Christmas week", dt.date(2025, 12, 26): "Boxing Day"}


def test_a_refill_on_christmas_day_is_refused_naming_the_holiday(christmas, nurse):
    with pytest.raises(ValidationError) as exc:
        appointment_book(
            patient=christmas.patient, kind="refill", starts_at=at(2025, 12, 25), booked_by=nurse, now=at(2025, 12, 1)
        )
    assert exc.value.message_dict["starts_at"] == [
        "Christmas Day — the clinic is closed on Thursday 25 December 2025. A clinician may book it as urgent, "
        "with a reason, when the alarm date leaves no open day."
    ]
    assert not Appointment.objects.exists()


def test_a_home_visit_on_a_holiday_is_refused_too(christmas, nurse):
    with pytest.raises(ValidationError, match="Boxing Day — the clinic is closed on Friday 26 December 2025"):
        appointment_book(
            patient=christmas.patient,
            kind="review",
            starts_at=at(2025, 12, 26),
            booked_by=nurse,
            location=HOME,
            now=at(2025, 12, 1),
        )


def test_a_clinicians_urgent_override_on_a_holiday_still_books(christmas, clinician):
    # Christmas morning, alarm on 30 Dec: no open day is left before the refill is due
    appointment = appointment_book(
        patient=christmas.patient,
        kind="refill",
        starts_at=at(2025, 12, 25, 11),
        booked_by=clinician,
        override_reason="Reservoir low, alarm on 30 Dec; on-call nurse available",
        now=at(2025, 12, 25, 7),
    )
    assert appointment.override_reason == "Reservoir low, alarm on 30 Dec; on-call nurse available"
    assert appointment.status == Appointment.Status.BOOKED


def test_an_override_on_a_holiday_is_refused_while_an_open_day_is_left(christmas, clinician):
    with pytest.raises(ValidationError) as exc:
        appointment_book(
            patient=christmas.patient,
            kind="refill",
            starts_at=at(2025, 12, 25, 11),
            booked_by=clinician,
            override_reason="Family request",
            now=at(2025, 12, 1),
        )
    assert exc.value.message_dict["starts_at"] == [
        "Christmas Day — the clinic is closed on Thursday 25 December 2025, but Monday 1 December is open "
        "before the alarm date (30 Dec): book that."
    ]


def test_proposals_skip_public_holidays(christmas):
    proposals = refill_slot_proposals(implant=christmas, today=dt.date(2025, 12, 1), count=3)
    # due by Thu 25 Dec (Christmas Day): the latest safe open days are before it
    assert proposals == [dt.date(2025, 12, 24), dt.date(2025, 12, 23), dt.date(2025, 12, 22)]


def test_settings_with_an_unsupported_country_or_region_are_refused():
    clinic = ClinicSettings.load()
    clinic.holiday_country = "XX"
    with pytest.raises(ValidationError) as exc:
        clinic.full_clean()
    assert exc.value.message_dict["holiday_country"] == [
        "“XX” is not a country whose public holidays are known: give its two-letter code, e.g. GB, IE, FR or DE."
    ]
    clinic.holiday_country, clinic.holiday_subdivision = "gb", "XYZ"
    with pytest.raises(ValidationError) as exc:
        clinic.full_clean()
    assert exc.value.message_dict["holiday_subdivision"] == [
        "“XYZ” is not a region of GB (its regions: ENG, NIR, SCT, WLS)."
    ]
    clinic.holiday_country, clinic.holiday_subdivision = "ie", ""
    clinic.full_clean()
    assert clinic.holiday_country == "IE"
    assert holiday_setting_errors(country="", subdivision="ENG") == {
        "holiday_subdivision": "Choose the country before its region."
    }


def test_an_unsupported_country_gives_no_holidays_rather_than_an_error():
    # a row written past validation (the shell, an import) must not stop booking
    assert public_holidays(start=dt.date(2025, 12, 25), end=dt.date(2025, 12, 25), country="XX") == {}
