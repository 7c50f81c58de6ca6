"""The staff pages of issue 11: the move page shows the patient's request and closes it; every
appointment kind is moved, cancelled, attended or missed from the patient page and the calendar;
no bad input answers 500."""

import datetime as dt

import pytest
from django.urls import reverse

from refills.models import AppointmentChangeRequest, AppointmentNotice
from refills.services import appointment_book, appointment_change_request_create
from tests import factories

from .conftest import NOW, TODAY, at

pytestmark = pytest.mark.django_db


@pytest.fixture
def refill(refilled, nurse):
    return appointment_book(
        patient=refilled.patient, kind="refill", starts_at=at(2025, 3, 31), booked_by=nurse, now=NOW
    )


@pytest.fixture
def open_request(refill):
    return appointment_change_request_create(
        appointment=refill,
        requested_by=factories.PatientUserFactory(),
        preferred_date=dt.date(2025, 3, 27),
        message="My daughter can drive me on the 27th",
        today=TODAY,
    )


def test_the_move_page_shows_the_open_request_and_moving_closes_it(nurse_client, refill, open_request):
    url = reverse("staff:appointment_move", args=[refill.pk])
    html = nurse_client.get(url).content.decode()
    assert "The patient asked for another date" in html
    assert "Thursday 27 March 2025" in html
    assert "My daughter can drive me on the 27th" in html
    assert 'name="day" value="2025-03-27"' in html  # the preferred date is offered
    response = nurse_client.post(url, {"day": "2025-03-27", "time": "11:00", "place": "Room 2"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("staff:patient_detail", args=[refill.patient_id])
    text = response.content.decode()
    assert "The patient&#x27;s request is closed. The patient is told by email." in text
    open_request.refresh_from_db()
    assert open_request.status == "done"
    assert AppointmentNotice.objects.get().kind == "moved"
    worklist = nurse_client.get(reverse("staff:worklist")).content.decode()
    assert "My daughter can drive me" not in worklist  # the request left the worklist


def test_declining_needs_a_reason_then_closes_the_request(nurse_client, refill, open_request):
    url = reverse("staff:change_request_decline", args=[open_request.pk])
    response = nurse_client.post(url, {"reason": ""})
    assert response.status_code == 400
    assert response.context["decline_form"].errors == {"reason": ["This field is required."]}
    open_request.refresh_from_db()
    assert open_request.status == "open"

    response = nurse_client.post(url, {"reason": "Only Monday clinics this month."})
    assert response.status_code == 302
    open_request.refresh_from_db()
    assert (open_request.status, open_request.response) == ("declined", "Only Monday clinics this month.")
    # A second decline of the closed request: a plain error, never a 500.
    again = nurse_client.post(url, {"reason": "again"})
    assert again.status_code == 400
    assert "This request is already closed (not changed)." in again.content.decode()


def test_a_move_into_the_past_is_a_form_error(nurse_client, refill):
    response = nurse_client.post(
        reverse("staff:appointment_move", args=[refill.pk]), {"day": "2025-03-19", "time": "10:00"}
    )
    assert response.status_code == 400
    assert response.context["form"].errors["day"] == ["This time has already passed."]


def test_an_unknown_request_is_404(nurse_client):
    assert nurse_client.post(reverse("staff:change_request_decline", args=[999999]), {"reason": "x"}).status_code == 404


def test_the_patient_page_lists_every_kind_with_its_actions(nurse_client, refilled, nurse):
    review = appointment_book(
        patient=refilled.patient, kind="review", starts_at=at(2025, 4, 10), booked_by=nurse, now=NOW
    )
    html = nurse_client.get(reverse("staff:patient_detail", args=[refilled.patient_id])).content.decode()
    assert "Booked appointments" in html
    assert reverse("staff:appointment_move", args=[review.pk]) in html
    assert reverse("staff:appointment_cancel", args=[review.pk]) in html
    assert "Book another appointment" in html


def test_the_patient_page_and_worklist_propose_the_annual_review(nurse_client, refilled):
    # Implanted 3 June 2024: the review falls due on 3 June 2025, proposed from 6 May.
    page = reverse("staff:patient_detail", args=[refilled.patient_id])
    assert "Annual review due" not in nurse_client.get(page).content.decode()
    refilled.implanted_on = dt.date(2024, 3, 1)
    refilled.save(update_fields=["implanted_on"])
    html = nurse_client.get(page).content.decode()
    assert "Annual review due</strong> by 1 Mar 2025" in html
    worklist = nurse_client.get(reverse("staff:worklist")).content.decode()
    assert "annual review due by 1 Mar 2025" in worklist


def test_a_missed_review_is_marked_from_the_patient_page(nurse_client, refilled, nurse, clock):
    review = appointment_book(
        patient=refilled.patient, kind="review", starts_at=at(2025, 3, 20, 10), booked_by=nurse, now=NOW
    )
    clock(at(2025, 3, 20, 15))
    html = nurse_client.get(reverse("staff:patient_detail", args=[refilled.patient_id])).content.decode()
    assert reverse("staff:appointment_no_show", args=[review.pk]) in html
    assert reverse("staff:appointment_attended", args=[review.pk]) in html
    response = nurse_client.post(reverse("staff:appointment_attended", args=[review.pk]), {"next": "patient"})
    assert response["Location"] == reverse("staff:patient_detail", args=[refilled.patient_id])
    review.refresh_from_db()
    assert review.status == "completed"


def test_the_calendar_links_each_appointment_to_its_actions(nurse_client, refilled, nurse):
    review = appointment_book(
        patient=refilled.patient, kind="review", starts_at=at(2025, 3, 24), booked_by=nurse, now=NOW
    )
    html = nurse_client.get(reverse("staff:calendar"), {"week": "2025-03-24"}).content.decode()
    assert reverse("staff:appointment_move", args=[review.pk]) in html
    assert reverse("staff:appointment_cancel", args=[review.pk]) in html
    response = nurse_client.post(reverse("staff:appointment_no_show", args=[review.pk]), {"next": "calendar"})
    # Not yet happened: refused with a message, back to the calendar's week.
    assert response["Location"] == reverse("staff:calendar") + "?week=2025-03-24"
    review.refresh_from_db()
    assert review.status == "booked"


def test_the_first_proposed_time_is_never_past(nurse_client, refilled, clock):
    # 17:45 on Thursday 20 March: no slot left today.
    clock(at(2025, 3, 20, 17, 45))
    response = nurse_client.get(reverse("staff:appointment_book", args=[refilled.patient_id]), {"kind": "review"})
    form = response.context["form"]
    assert (form.initial["day"], form.initial["time"]) == (dt.date(2025, 3, 21), "08:00")
    assert all(day > dt.date(2025, 3, 20) for day in response.context["proposals"])


def test_overdue_wording_matches_who_may_book(nurse_client, overdue):
    html = nurse_client.get(reverse("staff:appointment_book", args=[overdue.patient_id])).content.decode()
    assert "a clinician confirms the booking" not in html
    assert "any nurse may book one up to the alarm date (1 Mar 2025); after it, a clinician books" in html


def test_the_closed_request_no_longer_counts(refill, open_request, nurse_client):
    AppointmentChangeRequest.objects.filter(pk=open_request.pk).update(status="withdrawn")
    html = nurse_client.get(reverse("staff:appointment_move", args=[refill.pk])).content.decode()
    assert "The patient asked for another date" not in html
