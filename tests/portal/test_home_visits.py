"""A home visit in the portal and its calendar files: the patient's address, a nurse comes, nothing to bring."""

import pytest
from django.urls import reverse
from icalendar import Calendar

from refills.models import Appointment

pytestmark = pytest.mark.django_db


@pytest.fixture
def home_visit(world):
    patient = world.a.patient
    patient.address_line1, patient.address_line2 = "Flat 3", "12 Elm Road"
    patient.address_town, patient.address_postcode = "Leeds", "LS1 4AB"
    patient.save()
    appointment = world.a.appointment
    appointment.location, appointment.place = Appointment.Location.HOME, "Home visit"
    appointment.save()
    return appointment


def event_of(body: bytes):
    (event,) = [c for c in Calendar.from_ical(body).walk() if c.name == "VEVENT"]
    return event


def test_the_portal_says_a_nurse_visits_at_home_at_the_patients_address(client, world, home_visit):
    client.force_login(world.a.user)
    html = client.get(reverse("portal:patient_home", kwargs={"patient_id": world.a.patient.pk})).content.decode()
    assert '<p class="big" data-testid="home-visit">A nurse will visit you at home.</p>' in html
    assert "at your home, Flat 3, 12 Elm Road, Leeds, LS1 4AB" in html
    assert "Neurology outpatients" not in html  # the clinic's address is not where it is
    assert "Please bring" not in html
    assert "Please have ready for the nurse:" in html


def test_a_clinic_appointment_keeps_its_room_the_clinic_address_and_what_to_bring(client, world):
    client.force_login(world.a.user)
    html = client.get(reverse("portal:patient_home", kwargs={"patient_id": world.a.patient.pk})).content.decode()
    assert "ITB clinic room 2, Neurology outpatients, level 2" in html
    assert "Please bring:" in html
    assert "A nurse will visit you at home" not in html


def test_the_ics_of_a_home_visit_is_located_at_the_patients_address(client, world, home_visit):
    client.force_login(world.a.user)
    url = reverse("portal:appointment_ics", kwargs={"patient_id": world.a.patient.pk, "appointment_id": home_visit.pk})
    event = event_of(client.get(url).content)
    assert str(event["LOCATION"]) == "Flat 3, 12 Elm Road, Leeds, LS1 4AB"
    description = str(event["DESCRIPTION"])
    assert description.startswith("A nurse will visit you at home. Have ready: Your pump card")
    assert "Bring:" not in description


def test_the_ics_of_a_clinic_appointment_is_located_at_the_clinic(client, world):
    client.force_login(world.a.user)
    url = reverse(
        "portal:appointment_ics", kwargs={"patient_id": world.a.patient.pk, "appointment_id": world.a.appointment.pk}
    )
    event = event_of(client.get(url).content)
    assert str(event["LOCATION"]) == "ITB clinic room 2, Neurology outpatients, level 2"
    assert str(event["DESCRIPTION"]).startswith("Bring: ")


def test_the_no_login_calendar_feed_never_gives_the_home_address(client, world, home_visit):
    # the feed's address is its only key: a leaked one must not say where the patient lives
    body = client.get(reverse("portal:calendar_feed", kwargs={"token": world.a.feed_token})).content
    event = event_of(body)
    assert str(event["LOCATION"]) == "Your home"
    assert "Elm Road" not in body.decode()
