"""The portal pages as a patient, a carer and an outsider sees them (test client)."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.urls import reverse
from icalendar import Calendar

from audit.models import AccessLog
from patients.models import Patient
from portal.models import CalendarFeed, CarerLink
from refills.models import Alert, AppointmentChangeRequest
from tests import factories

pytestmark = pytest.mark.django_db


def test_home_redirects_a_patient_to_their_own_page(client, world):
    client.force_login(world.a.user)
    response = client.get(reverse("portal:home"))
    assert response.status_code == 302
    assert response["Location"] == reverse("portal:patient_home", kwargs={"patient_id": world.a.patient.pk})


def test_home_shows_next_appointment_and_pump_in_plain_words(client, world):
    client.force_login(world.a.user)
    response = client.get(reverse("portal:patient_home", kwargs={"patient_id": world.a.patient.pk}))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Thursday 27 March 2025" in html
    assert "at 10:00" in html
    assert "Your refill is due by 1 April 2025." in html
    assert "The pump alarm would sound around 6 April 2025." in html
    # SynchroMed II 20 mL implanted 2024-04-02: hard stop 2031-04-02, plan 6 months before.
    assert "replace the pump by <strong>October 2030</strong>" in html
    assert "stops working at the latest on 2 April 2031" in html
    assert "020 7946 0000" in html  # the clinic's phone as dialled at home
    assert 'href="tel:+442079460000"' in html
    assert "call 999" in html
    assert "two-tone" in html
    assert "Bob" not in html and "Brown" not in html


def test_overdue_refill_is_shown_as_urgent(client, world, frozen):
    with time_machine.travel(dt.datetime(2025, 4, 3, 9, 0, tzinfo=ZoneInfo("Europe/London")), tick=False):
        client.force_login(world.a.user)
        html = client.get(reverse("portal:patient_home", kwargs={"patient_id": world.a.patient.pk})).content.decode()
    assert "The refill was due by 1 April 2025. Phone the clinic today" in html
    assert "Your refill is due by" not in html


def test_home_page_view_is_audited_with_address(client, world):
    client.force_login(world.a.user)
    client.get(reverse("portal:patient_home", kwargs={"patient_id": world.a.patient.pk}), REMOTE_ADDR="203.0.113.7")
    row = AccessLog.objects.get()
    assert (row.user, row.username, row.patient, row.action) == (
        world.a.user,
        world.a.user.username,
        world.a.patient,
        AccessLog.Action.VIEW,
    )
    assert row.resource == "portal:patient_home"
    assert row.remote_addr == "203.0.113.7"


@pytest.mark.parametrize(
    "route,extra",
    [
        ("portal:patient_home", {}),
        ("portal:reminder_preferences", {}),
        ("portal:calendar_settings", {}),
        ("portal:appointment_ics", {"appointment_id": "b_appointment"}),
        ("portal:change_request", {"appointment_id": "b_appointment"}),
    ],
)
def test_patient_a_gets_404_for_patient_b_pages(client, world, route, extra):
    client.force_login(world.a.user)
    kwargs = {"patient_id": world.b.patient.pk, **{k: world.b.appointment.pk for k in extra}}
    response = client.get(reverse(route, kwargs=kwargs))
    assert response.status_code == 404
    assert not AccessLog.objects.exists()


def test_patient_a_cannot_reach_b_appointment_under_own_patient_id(client, world):
    client.force_login(world.a.user)
    url = reverse(
        "portal:appointment_ics", kwargs={"patient_id": world.a.patient.pk, "appointment_id": world.b.appointment.pk}
    )
    assert client.get(url).status_code == 404
    url = reverse(
        "portal:change_request", kwargs={"patient_id": world.a.patient.pk, "appointment_id": world.b.appointment.pk}
    )
    assert client.post(url, {"preferred_date": "2025-03-20", "message": "x"}).status_code == 404
    assert AppointmentChangeRequest.objects.filter(appointment=world.b.appointment).count() == 1


def test_staff_are_refused_the_portal(client, world):
    client.force_login(world.nurse)
    response = client.get(reverse("portal:patient_home", kwargs={"patient_id": world.a.patient.pk}))
    assert response.status_code == 403


def test_anonymous_is_sent_to_login(client, world):
    url = reverse("portal:patient_home", kwargs={"patient_id": world.a.patient.pk})
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_carer_sees_linked_patient_and_chooses_between_several(client, world):
    # given a carer linked to A and to B
    carer = world.a.carer
    CarerLink.objects.create(
        carer=carer,
        patient=world.b.patient,
        consent_recorded_at=world.a.carer_link.consent_recorded_at,
        consent_recorded_by=world.nurse,
        consent_note="Bob agreed by phone",
    )
    client.force_login(carer)
    # when
    chooser = client.get(reverse("portal:home"))
    page_b = client.get(reverse("portal:patient_home", kwargs={"patient_id": world.b.patient.pk}))
    # then
    assert chooser.status_code == 200
    assert "Alice Adams" in chooser.content.decode() and "Bob Brown" in chooser.content.decode()
    assert page_b.status_code == 200
    assert "You are looking after <strong>Bob Brown</strong>" in page_b.content.decode()


def test_revoked_carer_link_closes_the_page(client, world):
    from portal.services import carer_link_revoke

    carer_link_revoke(link=world.a.carer_link, by=world.nurse, reason="Patient withdrew consent")
    client.force_login(world.a.carer)
    assert client.get(reverse("portal:patient_home", kwargs={"patient_id": world.a.patient.pk})).status_code == 404


def test_appointment_ics_has_the_clinic_local_time(client, world):
    client.force_login(world.a.user)
    url = reverse(
        "portal:appointment_ics", kwargs={"patient_id": world.a.patient.pk, "appointment_id": world.a.appointment.pk}
    )
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    cal = Calendar.from_ical(response.content)
    (event,) = cal.walk("VEVENT")
    start = event.decoded("dtstart")
    assert start == dt.datetime(2025, 3, 27, 10, 0, tzinfo=ZoneInfo("Europe/London"))
    assert str(event["dtstart"].params["TZID"]) == "Europe/London"
    assert event.decoded("dtend") - start == dt.timedelta(minutes=30)
    assert "Alice" not in response.content.decode()
    assert [tz["TZID"] for tz in cal.walk("VTIMEZONE")] == ["Europe/London"]
    row = AccessLog.objects.get()
    assert row.action == AccessLog.Action.EXPORT and row.detail == f"appointment {world.a.appointment.pk} (.ics)"


def test_ics_crosses_dst_with_the_right_offset(client, world):
    # 31 March 2025 is after the clocks go forward (30 March): 10:00 BST is 09:00 UTC.
    appointment = world.a.appointment
    appointment.starts_at = dt.datetime(2025, 3, 31, 9, 0, tzinfo=dt.UTC)
    appointment.save()
    client.force_login(world.a.user)
    url = reverse("portal:appointment_ics", kwargs={"patient_id": world.a.patient.pk, "appointment_id": appointment.pk})
    (event,) = Calendar.from_ical(client.get(url).content).walk("VEVENT")
    assert event.decoded("dtstart").replace(tzinfo=None) == dt.datetime(2025, 3, 31, 10, 0)
    assert event.decoded("dtstart").utcoffset() == dt.timedelta(hours=1)


def test_calendar_feed_lists_upcoming_booked_appointments_without_login(client, world):
    later = factories.AppointmentFactory(
        implant=world.a.implant,
        kind="review",
        starts_at=dt.datetime(2025, 5, 2, 11, 0, tzinfo=ZoneInfo("Europe/London")),
        booked_by=world.nurse,
    )
    response = client.get(reverse("portal:calendar_feed", kwargs={"token": world.a.feed_token}))
    assert response.status_code == 200
    events = Calendar.from_ical(response.content).walk("VEVENT")
    assert [str(e["uid"]) for e in events] == [
        f"appointment-{world.a.appointment.pk}@itbclinic",
        f"appointment-{later.pk}@itbclinic",
    ]
    row = AccessLog.objects.get()
    assert (row.user, row.patient, row.action, row.via_token) == (
        world.a.user,
        world.a.patient,
        AccessLog.Action.EXPORT,
        True,
    )
    assert world.a.feed_token not in row.detail


def test_revoked_or_wrong_calendar_token_answers_404(client, world):
    client.force_login(world.a.user)
    settings_url = reverse("portal:calendar_settings", kwargs={"patient_id": world.a.patient.pk})
    client.post(settings_url, {"action": "revoke"})
    client.logout()
    assert client.get(reverse("portal:calendar_feed", kwargs={"token": world.a.feed_token})).status_code == 404
    assert client.get(reverse("portal:calendar_feed", kwargs={"token": "nope"})).status_code == 404
    assert not AccessLog.objects.filter(via_token=True).exists()


def test_regenerating_the_calendar_address_shows_it_once_and_kills_the_old_one(client, world):
    client.force_login(world.a.user)
    url = reverse("portal:calendar_settings", kwargs={"patient_id": world.a.patient.pk})
    response = client.post(url, {"action": "create"})
    assert response.status_code == 200
    new_url = response.context["new_url"]
    token = new_url.rsplit("/", 1)[1].removesuffix(".ics")
    assert token != world.a.feed_token
    assert CalendarFeed.objects.filter(user=world.a.user, revoked_at__isnull=True).count() == 1
    assert not CalendarFeed.objects.filter(token_hash__contains=token).exists()  # only the hash is stored
    assert client.get(url).context["new_url"] is None
    client.logout()
    assert client.get(reverse("portal:calendar_feed", kwargs={"token": world.a.feed_token})).status_code == 404
    assert client.get(reverse("portal:calendar_feed", kwargs={"token": token})).status_code == 200


def test_change_request_reaches_the_nurses_as_an_alert(client, world):
    AppointmentChangeRequest.objects.all().update(status=AppointmentChangeRequest.Status.DONE)
    client.force_login(world.a.user)
    url = reverse(
        "portal:change_request", kwargs={"patient_id": world.a.patient.pk, "appointment_id": world.a.appointment.pk}
    )
    response = client.post(url, {"preferred_date": "2025-03-24", "message": "I have a hospital visit that day"})
    assert response.status_code == 302
    request = AppointmentChangeRequest.objects.get(appointment=world.a.appointment, status="open")
    assert (request.preferred_dates, request.message, request.requested_by) == (
        "2025-03-24",
        "I have a hospital visit that day",
        world.a.user,
    )
    alert = Alert.objects.get(kind=Alert.Kind.CHANGE_REQUEST, patient=world.a.patient, key_date=dt.date(2025, 3, 1))
    assert alert.audience == Alert.Audience.NURSES and alert.resolved_at is None
    assert alert.message == (
        "Alice Adams asks to move the refill appointment of 27 Mar 2025 10:00 to 24 Mar 2025: "
        "I have a hospital visit that day"
    )
    home = client.get(reverse("portal:patient_home", kwargs={"patient_id": world.a.patient.pk})).content.decode()
    assert "Waiting for the clinic" in home


def test_change_request_in_the_past_is_a_form_error_and_writes_nothing(client, world):
    AppointmentChangeRequest.objects.all().update(status=AppointmentChangeRequest.Status.DONE)
    client.force_login(world.a.user)
    url = reverse(
        "portal:change_request", kwargs={"patient_id": world.a.patient.pk, "appointment_id": world.a.appointment.pk}
    )
    response = client.post(url, {"preferred_date": "2025-02-27", "message": "hm"})
    assert response.status_code == 200
    assert response.context["form"].errors == {"preferred_date": ["Choose a date after today."]}
    assert not AppointmentChangeRequest.objects.filter(status="open").exists()
    assert Alert.objects.filter(key_date=dt.date(2025, 3, 1)).count() == 0


def test_second_open_change_request_is_refused(client, world):
    client.force_login(world.a.user)
    url = reverse(
        "portal:change_request", kwargs={"patient_id": world.a.patient.pk, "appointment_id": world.a.appointment.pk}
    )
    response = client.post(url, {"preferred_date": "2025-03-24", "message": "again"})
    assert response.status_code == 200
    assert AppointmentChangeRequest.objects.filter(appointment=world.a.appointment).count() == 1


def test_reminder_opt_out_is_saved_with_history(client, world):
    client.force_login(world.a.user)
    url = reverse("portal:reminder_preferences", kwargs={"patient_id": world.a.patient.pk})
    page = client.get(url).content.decode()
    assert "If you stop reminders" in page
    response = client.post(url, {"reminder_channel": "sms", "reminder_consent": "no"})
    assert response.status_code == 302
    patient = Patient.objects.get(pk=world.a.patient.pk)
    assert (patient.reminder_channel, patient.reminder_consent) == ("sms", False)
    latest = patient.history.latest()
    assert latest.history_user == world.a.user
    assert latest.reminder_consent is False


def test_sms_without_phone_is_a_form_error(client, world):
    Patient.objects.filter(pk=world.a.patient.pk).update(phone="")
    client.force_login(world.a.user)
    url = reverse("portal:reminder_preferences", kwargs={"patient_id": world.a.patient.pk})
    response = client.post(url, {"reminder_channel": "sms", "reminder_consent": "yes"})
    assert response.status_code == 200
    assert response.context["form"].errors == {
        "reminder_channel": ["The clinic has no mobile number for you: choose email."]
    }
    assert Patient.objects.get(pk=world.a.patient.pk).reminder_channel == "email"


def test_bad_reminder_values_are_form_errors_not_500(client, world):
    client.force_login(world.a.user)
    url = reverse("portal:reminder_preferences", kwargs={"patient_id": world.a.patient.pk})
    response = client.post(url, {"reminder_channel": "pigeon", "reminder_consent": "maybe"})
    assert response.status_code == 200
    assert set(response.context["form"].errors) == {"reminder_channel", "reminder_consent"}


def test_patient_cannot_change_other_fields_through_the_preferences_form(client, world):
    client.force_login(world.a.user)
    url = reverse("portal:reminder_preferences", kwargs={"patient_id": world.a.patient.pk})
    client.post(
        url,
        {"reminder_channel": "email", "reminder_consent": "yes", "status": "deceased", "mrn": "X", "user": "1"},
    )
    patient = Patient.objects.get(pk=world.a.patient.pk)
    assert (patient.status, patient.mrn, patient.user_id) == ("active", "MRN-A", world.a.user.pk)
