import datetime as dt

import pytest
from django.urls import reverse

from refills.models import Appointment, ClinicSettings, ClosedDay
from refills.services import appointment_book

from .conftest import at

pytestmark = pytest.mark.django_db


def book_url(implant):
    return reverse("staff:appointment_book", args=[implant.patient_id])


def test_the_form_proposes_the_latest_safe_days_first(nurse_client, refilled):
    response = nurse_client.get(book_url(refilled))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Tue 11 Mar – Tue 1 Apr 2025" in html
    # as late as safe, before due-by, open weekdays only
    assert response.context["proposals"] == [
        dt.date(2025, 4, 1),
        dt.date(2025, 3, 31),
        dt.date(2025, 3, 28),
        dt.date(2025, 3, 27),
        dt.date(2025, 3, 26),
    ]
    assert 'value="2025-04-01"' in html  # the date field holds the best proposal
    assert "latest safe" in html


def test_a_proposal_link_prefills_the_date_without_javascript(nurse_client, refilled):
    html = nurse_client.get(book_url(refilled), {"day": "2025-03-27"}).content.decode()
    assert 'name="day" value="2025-03-27"' in html


def test_booking_inside_the_window(nurse_client, nurse, refilled):
    response = nurse_client.post(
        book_url(refilled), {"kind": "refill", "day": "2025-03-31", "time": "11:30", "place": "Room 4"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("staff:patient_detail", args=[refilled.patient_id])
    appointment = Appointment.objects.get(implant=refilled)
    assert appointment.starts_at == at(2025, 3, 31, 11, 30)
    assert (appointment.place, appointment.booked_by, appointment.status) == ("Room 4", nurse, "booked")


def test_outside_the_window_a_nurse_sees_the_services_error_and_nothing_is_booked(nurse_client, refilled):
    response = nurse_client.post(book_url(refilled), {"kind": "refill", "day": "2025-04-03", "time": "10:00"})
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert errors["day"] == [
        "3 Apr 2025 is after the due-by date (11 Mar to 1 Apr 2025); a clinician may override with a reason."
    ]
    assert "Only a clinician may book outside the safe window" in response.content.decode()
    assert 'value="2025-04-03"' in response.content.decode()  # what was typed is kept
    assert not Appointment.objects.exists()


def test_a_clinician_overrides_the_window_with_a_reason(clinician_client, refilled):
    url = book_url(refilled)
    # the reason field is offered to clinicians; without a reason the service refuses
    assert 'name="outside_window_reason"' in clinician_client.get(url).content.decode()
    refused = clinician_client.post(url, {"kind": "refill", "day": "2025-04-03", "time": "10:00"})
    assert refused.status_code == 400 and not Appointment.objects.exists()
    response = clinician_client.post(
        url,
        {"kind": "refill", "day": "2025-04-03", "time": "10:00", "outside_window_reason": "Only day with transport"},
    )
    assert response.status_code == 302
    assert Appointment.objects.get().outside_window_reason == "Only day with transport"


def test_double_booking_is_impossible(nurse_client, nurse, refilled):
    appointment_book(patient=refilled.patient, kind="refill", starts_at=at(2025, 3, 31), booked_by=nurse)
    page = nurse_client.get(book_url(refilled)).content.decode()
    assert "A refill is already booked for Monday 31 March 2025, 10:00." in page
    response = nurse_client.post(book_url(refilled), {"kind": "refill", "day": "2025-03-27", "time": "10:00"})
    assert response.status_code == 400
    assert response.context["form"].non_field_errors() == [
        "A refill is already booked for this pump on 31 Mar 2025 10:00: move it instead."
    ]
    assert Appointment.objects.count() == 1


def test_closed_days_and_full_days_are_refused_with_the_reason(nurse_client, nurse, refilled):
    ClosedDay.objects.create(date=dt.date(2025, 3, 27), reason="Bank holiday")
    response = nurse_client.post(book_url(refilled), {"kind": "refill", "day": "2025-03-27", "time": "10:00"})
    assert response.context["form"].errors["day"] == [
        "Bank holiday — the clinic is closed on Thursday 27 March 2025. A clinician may book it as urgent, "
        "with a reason, when the alarm date leaves no open day."
    ]
    clinic = ClinicSettings.load()
    clinic.refills_per_day = 0
    clinic.save()
    response = nurse_client.post(book_url(refilled), {"kind": "refill", "day": "2025-03-26", "time": "10:00"})
    assert response.context["form"].errors["day"] == [
        "Wednesday 26 March is full (0 refills). A clinician may book it as urgent, with a reason, "
        "when the alarm date leaves no open day."
    ]
    assert not Appointment.objects.exists()


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"kind": "refill", "day": "31/31/2025", "time": "10:00"},
        {"kind": "refill", "day": "2025-03-31", "time": "25:00"},
        {"kind": "nonsense", "day": "2025-03-31", "time": "10:00"},
        {"kind": "refill", "day": "2025-03-19", "time": "10:00"},  # in the past
    ],
)
def test_bad_input_is_a_form_error_never_a_500(nurse_client, refilled, data):
    response = nurse_client.post(book_url(refilled), data)
    assert response.status_code == 400
    assert response.context["form"].errors
    assert not Appointment.objects.exists()


def test_move_keeps_the_window_rules_and_cancel_needs_a_reason(nurse_client, nurse, refilled):
    appointment = appointment_book(patient=refilled.patient, kind="refill", starts_at=at(2025, 3, 31), booked_by=nurse)
    move_url = reverse("staff:appointment_move", args=[appointment.pk])
    # the move form starts from the booked time
    assert 'value="2025-03-31"' in nurse_client.get(move_url).content.decode()
    refused = nurse_client.post(move_url, {"day": "2025-04-02", "time": "10:00"})
    assert refused.status_code == 400
    moved = nurse_client.post(move_url, {"day": "2025-03-27", "time": "14:00"})
    assert moved.status_code == 302
    appointment.refresh_from_db()
    assert appointment.starts_at == at(2025, 3, 27, 14)

    cancel_url = reverse("staff:appointment_cancel", args=[appointment.pk])
    no_reason = nurse_client.post(cancel_url, {"reason": "   "})
    assert no_reason.status_code == 400
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.BOOKED
    cancelled = nurse_client.post(cancel_url, {"reason": "Patient in hospital"})
    assert cancelled.status_code == 302
    appointment.refresh_from_db()
    assert (appointment.status, appointment.cancel_reason) == ("cancelled", "Patient in hospital")
    # a cancelled appointment cannot be moved: the service's message, not a 500
    again = nurse_client.post(move_url, {"day": "2025-03-28", "time": "10:00"})
    assert again.status_code == 400
    assert "Only a booked appointment can be moved." in again.content.decode()


def test_a_past_booking_can_be_marked_as_a_no_show(nurse_client, nurse, refilled, frozen):
    appointment = Appointment.objects.create(
        patient=refilled.patient, implant=refilled, kind="refill", starts_at=at(2025, 3, 18), place="x", booked_by=nurse
    )
    response = nurse_client.post(reverse("staff:appointment_no_show", args=[appointment.pk]))
    assert response.status_code == 302
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.NO_SHOW
    # a future one cannot: the message says why, nothing changes
    future = appointment_book(patient=refilled.patient, kind="refill", starts_at=at(2025, 3, 31), booked_by=nurse)
    nurse_client.post(reverse("staff:appointment_no_show", args=[future.pk]))
    future.refresh_from_db()
    assert future.status == Appointment.Status.BOOKED
