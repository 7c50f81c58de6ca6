"""Safe to click twice (issue 11, item 7): the portal's forms and the nurse's invitation, sent twice.

The staff forms: tests/staff/test_idempotency.py (the same two tests per form).
"""

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.urls import reverse

from core.idempotency import ALREADY_SENT
from patients.models import Patient
from portal.models import CalendarFeed, PortalInvitation
from refills.models import AppointmentChangeRequest
from tests import factories

pytestmark = pytest.mark.django_db

TOKEN = re.compile(r'name="form_token" value="([0-9a-f-]{36})"')


@dataclass
class Form:
    user: object
    url: str
    data: dict
    count: Callable[[], int]
    page: str = ""  # where the form is shown, when it posts elsewhere


def change_request(world) -> Form:
    AppointmentChangeRequest.objects.all().update(status=AppointmentChangeRequest.Status.DONE)
    url = reverse(
        "portal:change_request", kwargs={"patient_id": world.a.patient.pk, "appointment_id": world.a.appointment.pk}
    )
    data = {"preferred_date": "2025-03-24", "message": "I have a hospital visit that day"}
    return Form(world.a.user, url, data, AppointmentChangeRequest.objects.count)


def reminder_preferences(world) -> Form:
    patient = world.a.patient
    url = reverse("portal:reminder_preferences", kwargs={"patient_id": patient.pk})
    data = {"reminder_channel": "sms", "reminder_consent": "no"}
    return Form(world.a.user, url, data, lambda: Patient.history.filter(id=patient.pk).count())


def calendar_revoke(world) -> Form:
    url = reverse("portal:calendar_settings", kwargs={"patient_id": world.a.patient.pk})
    return Form(
        world.a.user, url, {"action": "revoke"}, lambda: CalendarFeed.objects.filter(revoked_at__isnull=False).count()
    )


def change_request_withdraw(world) -> Form:
    request = AppointmentChangeRequest.objects.get(appointment=world.a.appointment, status="open")
    url = reverse("portal:change_request_withdraw", kwargs={"patient_id": world.a.patient.pk, "request_id": request.pk})
    form = Form(world.a.user, url, {}, lambda: AppointmentChangeRequest.history.filter(id=request.pk).count())
    form.page = reverse(
        "portal:change_request", kwargs={"patient_id": world.a.patient.pk, "appointment_id": world.a.appointment.pk}
    )
    return form


def invite(world) -> Form:
    patient = factories.PatientFactory(user=None, email="nadia@example.org")
    url = reverse("portal:invite", kwargs={"patient_id": patient.pk})
    return Form(world.nurse, url, {"email": "nadia@example.org"}, PortalInvitation.objects.count)


CREATING_FORMS = [change_request, change_request_withdraw, reminder_preferences, calendar_revoke, invite]


@pytest.mark.parametrize("make", CREATING_FORMS, ids=lambda f: f.__name__)
def test_the_same_token_sent_twice_records_once(client, world, make, django_capture_on_commit_callbacks):
    form = make(world)
    client.force_login(form.user)
    data = {**form.data, "form_token": str(uuid.uuid4())}
    before = form.count()
    with django_capture_on_commit_callbacks(execute=True):
        first = client.post(form.url, data)
        second = client.post(form.url, data)
    assert first.status_code == 302
    assert form.count() == before + 1
    assert second.status_code == 302 and second["Location"] == first["Location"]


@pytest.mark.parametrize("make", CREATING_FORMS, ids=lambda f: f.__name__)
def test_the_back_button_and_send_again_records_once_and_says_so(client, world, make):
    form = make(world)
    client.force_login(form.user)
    token = TOKEN.search(client.get(form.page or form.url).content.decode()).group(1)
    before = form.count()
    first = client.post(form.url, {**form.data, "form_token": token})
    assert first.status_code == 302
    again = client.post(form.url, {**form.data, "form_token": token}, follow=True)
    assert form.count() == before + 1
    assert again.redirect_chain[0][0] == first["Location"]
    assert ALREADY_SENT in again.content.decode()


def test_a_new_calendar_address_asked_twice_leaves_one_working_address(client, world):
    # The address is shown once, in the answer itself (only its hash is kept), so the page is not
    # a redirect: a second click replaces the first address, and the page shows the one that works.
    client.force_login(world.a.user)
    url = reverse("portal:calendar_settings", kwargs={"patient_id": world.a.patient.pk})
    data = {"action": "create", "form_token": str(uuid.uuid4())}
    client.post(url, data)
    second = client.post(url, data)
    assert second.status_code == 200
    active = CalendarFeed.objects.filter(user=world.a.user, patient=world.a.patient, revoked_at__isnull=True)
    assert active.count() == 1
    shown = re.search(r"/portal/calendar/([^\"<\s]+)\.ics", second.content.decode()).group(1)
    assert client.get(reverse("portal:calendar_feed", kwargs={"token": shown})).status_code == 200
