"""The portal side of a change request: the due-by warning, the outcome, withdrawing, asking again."""

import datetime as dt

import pytest
from django.urls import reverse

from refills.models import Alert, AppointmentChangeRequest
from refills.services import appointment_change_request_decline, appointment_move

pytestmark = pytest.mark.django_db


def _change_url(side):
    return reverse(
        "portal:change_request", kwargs={"patient_id": side.patient.pk, "appointment_id": side.appointment.pk}
    )


def _withdraw_url(side, request):
    return reverse("portal:change_request_withdraw", kwargs={"patient_id": side.patient.pk, "request_id": request.pk})


def test_the_patient_withdraws_an_open_request_and_asks_again(client, world):
    client.force_login(world.a.user)
    home = reverse("portal:patient_home", kwargs={"patient_id": world.a.patient.pk})
    assert "Withdraw my request" in client.get(home).content.decode()

    response = client.post(_withdraw_url(world.a, world.a.change_request), follow=True)
    assert "Your request is withdrawn." in response.content.decode()
    world.a.change_request.refresh_from_db()
    assert (world.a.change_request.status, world.a.change_request.handled_by) == ("withdrawn", world.a.user)
    assert "You withdrew this request" in response.content.decode()

    page = client.get(_change_url(world.a)).content.decode()
    assert "Your last request: <strong>You withdrew this request</strong>. You can ask again below." in page
    again = client.post(_change_url(world.a), {"preferred_date": "2025-03-20", "message": "Any day that week"})
    assert again.status_code == 302
    assert AppointmentChangeRequest.objects.filter(appointment=world.a.appointment, status="open").count() == 1


def test_withdrawing_a_closed_request_is_a_message_not_an_error(client, world):
    client.force_login(world.a.user)
    AppointmentChangeRequest.objects.filter(pk=world.a.change_request.pk).update(status="declined")
    response = client.post(_withdraw_url(world.a, world.a.change_request), follow=True)
    assert response.status_code == 200
    assert "This request is already closed (not changed)." in response.content.decode()


def test_someone_elses_request_cannot_be_withdrawn(client, world):
    client.force_login(world.a.user)
    url = reverse(
        "portal:change_request_withdraw",
        kwargs={"patient_id": world.a.patient.pk, "request_id": world.b.change_request.pk},
    )
    assert client.post(url).status_code == 404
    assert client.post(_withdraw_url(world.b, world.b.change_request)).status_code == 404
    world.b.change_request.refresh_from_db()
    assert world.b.change_request.status == "open"


def test_the_portal_shows_the_outcome(client, world):
    appointment_change_request_decline(
        change_request=world.a.change_request, reason="The clinic is closed that week.", declined_by=world.nurse
    )
    client.force_login(world.a.user)
    home = client.get(reverse("portal:patient_home", kwargs={"patient_id": world.a.patient.pk})).content.decode()
    assert "The clinic could not change it: The clinic is closed that week." in home
    assert "Ask for a different date" in home  # and may ask again

    AppointmentChangeRequest.objects.create(
        appointment=world.a.appointment, requested_by=world.a.user, preferred_dates="2025-03-20", message="Then 20th?"
    )
    appointment_move(
        appointment=world.a.appointment,
        starts_at=dt.datetime(2025, 3, 20, 10, 30, tzinfo=world.a.appointment.starts_at.tzinfo),
        moved_by=world.nurse,
        outside_window_reason="",
    )
    home = client.get(reverse("portal:patient_home", kwargs={"patient_id": world.a.patient.pk})).content.decode()
    assert "Moved to Thursday 20 March 2025 at 10:30" in home


def test_a_date_after_the_due_by_date_is_warned_and_sent_as_urgent(client, world):
    AppointmentChangeRequest.objects.all().update(status="done")
    due_by = world.a.implant.forecast_due_by
    client.force_login(world.a.user)
    page = client.get(_change_url(world.a)).content.decode()
    assert f"Your pump needs its refill by {due_by.day} {due_by:%B %Y}" in page
    later = due_by + dt.timedelta(days=3)
    response = client.post(
        _change_url(world.a), {"preferred_date": later.isoformat(), "message": "Away until then"}, follow=True
    )
    assert "The clinic has your request as urgent" in response.content.decode()
    request = AppointmentChangeRequest.objects.get(status="open", appointment=world.a.appointment)
    assert request.urgent
    assert Alert.objects.get(kind="change_request", patient=world.a.patient, key_date=dt.date(2025, 3, 1)).severity == (
        "urgent"
    )
