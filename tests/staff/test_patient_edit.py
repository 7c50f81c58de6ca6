"""Contact details, address and status edited from the staff pages (issue 11, item 2a).

Who: nurses, clinicians and the clinic admin edit the contact card; clinicians and the clinic
admin change the status. Every change is kept in the history and the access log; a patient who
is not active gets no more reminders.
"""

import uuid

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse

from audit.models import AccessLog
from patients.models import Patient
from refills.models import Reminder
from refills.patient_changes import patient_contact_change
from refills.reminders.delivery import reminder_send
from refills.reminders.planning import reminders_materialise_for_appointment
from tests import factories
from tests.staff.conftest import NOW, at

pytestmark = pytest.mark.django_db

ADDRESS = {
    "email": "grace@example.org",
    "phone": "+447911123457",
    "address_line1": "12 Harbour Road",
    "address_line2": "Flat 3",
    "address_town": "Leith",
    "address_postcode": "EH6 6QN",
    "reminder_consent": "on",
    "reminder_channel": "email",
}


def _contact_url(patient) -> str:
    return reverse("staff:patient_contact_edit", args=[patient.pk])


def _status_url(patient) -> str:
    return reverse("staff:patient_status_edit", args=[patient.pk])


@pytest.fixture
def booked(refilled, nurse):
    """Grace's refill booked for 27 March with its reminders pending (7 and 1 days before)."""
    appointment = factories.AppointmentFactory(implant=refilled, starts_at=at(2025, 3, 27), booked_by=nurse)
    reminders_materialise_for_appointment(appointment=appointment, now=NOW)
    assert Reminder.objects.filter(appointment=appointment, status=Reminder.Status.PENDING).exists()
    return appointment


def test_nurse_edits_phone_email_and_address_kept_in_history_and_the_access_log(nurse_client, nurse, refilled):
    patient = refilled.patient
    # when
    response = nurse_client.post(_contact_url(patient), ADDRESS)
    # then
    assert response.status_code == 302
    assert response["Location"] == reverse("staff:patient_detail", args=[patient.pk])
    patient.refresh_from_db()
    assert patient.address_lines == ["12 Harbour Road", "Flat 3", "Leith", "EH6 6QN"]
    assert (str(patient.phone), patient.email) == ("+447911123457", "grace@example.org")
    latest = patient.history.latest()
    assert (latest.history_user, latest.history_change_reason, latest.address_town) == (
        nurse,
        "Contact details",
        "Leith",
    )
    log = AccessLog.objects.get(patient=patient, action=AccessLog.Action.CHANGE)
    assert log.user == nurse and log.resource == "staff:patient_contact_edit"
    assert "address_line1" in log.detail and "phone" in log.detail
    page = nurse_client.get(reverse("staff:patient_detail", args=[patient.pk])).content.decode()
    assert "12 Harbour Road<br>Flat 3<br>Leith<br>EH6 6QN" in page
    assert _contact_url(patient) in page


def test_the_form_opens_prefilled_with_the_patient_s_details(nurse_client, refilled):
    response = nurse_client.get(_contact_url(refilled.patient))
    assert response.status_code == 200
    assert response.context["form"]["email"].value() == refilled.patient.email


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("phone", "12ab", "Enter a valid phone number"),
        ("email", "not-an-email", "Enter a valid email address."),
        ("address_line1", "12 Harbour Road\x00", "Null characters are not allowed"),
        ("address_line2", "Flat\x073", "Remove the hidden control characters"),
        ("address_town", "Leith\nEdinburgh", "Remove the hidden control characters"),
        ("address_postcode", "EH6\u202e6QN", "Remove the hidden control characters"),
        ("address_postcode", "X" * 21, "at most 20 characters"),
    ],
)
def test_bad_input_is_a_field_error_and_nothing_changes(nurse_client, refilled, field, value, message):
    patient = refilled.patient
    before = Patient.objects.values().get(pk=patient.pk)
    response = nurse_client.post(_contact_url(patient), {**ADDRESS, field: value})
    assert response.status_code == 400
    assert any(message in error for error in response.context["form"].errors[field])
    assert Patient.objects.values().get(pk=patient.pk) == before
    assert not AccessLog.objects.filter(patient=patient, action=AccessLog.Action.CHANGE).exists()


def test_the_contact_service_refuses_a_field_outside_the_contact_card(refilled):
    with pytest.raises(ValidationError) as caught:
        patient_contact_change(patient=refilled.patient, data={"status": "deceased", "mrn": "X"})
    assert set(caught.value.message_dict) == {"mrn", "status"}
    refilled.patient.refresh_from_db()
    assert refilled.patient.status == Patient.Status.ACTIVE


def test_a_posted_status_or_mrn_on_the_contact_form_is_ignored(nurse_client, refilled):
    patient = refilled.patient
    response = nurse_client.post(_contact_url(patient), {**ADDRESS, "status": "deceased", "mrn": "HIJACK"})
    assert response.status_code == 302
    patient.refresh_from_db()
    assert (patient.status, patient.mrn) == (Patient.Status.ACTIVE, "MRN-GH")


def test_withdrawing_consent_cancels_the_pending_reminders_at_once(nurse_client, refilled, booked):
    response = nurse_client.post(_contact_url(refilled.patient), {**ADDRESS, "reminder_consent": ""})
    assert response.status_code == 302
    assert not Reminder.objects.filter(appointment=booked, status=Reminder.Status.PENDING).exists()
    assert Reminder.objects.filter(appointment=booked, status=Reminder.Status.CANCELLED).count() >= 1


def test_clinic_admin_edits_the_contact_card_from_the_patient_list(client, clinic_admin, refilled):
    client.force_login(clinic_admin)
    listing = client.get(reverse("staff:patient_list")).content.decode()
    assert _contact_url(refilled.patient) in listing
    response = client.post(_contact_url(refilled.patient), ADDRESS)
    assert response.status_code == 302 and response["Location"] == reverse("staff:patient_list")
    refilled.patient.refresh_from_db()
    assert refilled.patient.address_town == "Leith"


def test_a_nurse_may_not_change_the_status(nurse_client, refilled):
    assert nurse_client.get(_status_url(refilled.patient)).status_code == 403
    assert nurse_client.post(_status_url(refilled.patient), {"status": "deceased", "reason": "x"}).status_code == 403
    refilled.patient.refresh_from_db()
    assert refilled.patient.status == Patient.Status.ACTIVE


@pytest.mark.parametrize("status", [Patient.Status.DECEASED, Patient.Status.TRANSFERRED])
def test_a_patient_marked_deceased_or_transferred_gets_no_more_reminders(
    clinician_client, clinician, refilled, booked, status
):
    patient = refilled.patient
    # when
    response = clinician_client.post(_status_url(patient), {"status": status, "reason": "Letter from the GP"})
    # then
    assert response.status_code == 302
    patient.refresh_from_db()
    assert patient.status == status
    latest = patient.history.latest()
    assert (latest.history_user, latest.history_change_reason) == (clinician, "Letter from the GP")
    assert AccessLog.objects.filter(
        patient=patient, action=AccessLog.Action.CHANGE, detail=f"status: {status}"
    ).exists()
    assert not Reminder.objects.filter(patient=patient, status=Reminder.Status.PENDING).exists()
    # and a reminder already claimed by the dispatcher is not delivered either
    row = Reminder.objects.filter(patient=patient).first()
    token = uuid.uuid4()
    Reminder.objects.filter(pk=row.pk).update(status=Reminder.Status.SENDING, claim_token=token)
    assert reminder_send(reminder_id=row.pk, claim_token=str(token), now=NOW) != "sent"
    assert mail.outbox == []


def test_status_needs_a_reason_and_a_change(clinician_client, refilled):
    patient = refilled.patient
    response = clinician_client.post(_status_url(patient), {"status": "deceased", "reason": "  "})
    assert response.status_code == 400 and "reason" in response.context["form"].errors
    response = clinician_client.post(_status_url(patient), {"status": "active", "reason": "typo"})
    assert response.status_code == 400
    assert response.context["form"].errors["status"] == ["The patient is already active."]
    response = clinician_client.post(_status_url(patient), {"status": "retired", "reason": "typo"})
    assert response.status_code == 400 and "status" in response.context["form"].errors
    patient.refresh_from_db()
    assert patient.status == Patient.Status.ACTIVE


def test_the_portal_shows_the_address_read_only(client, refilled, patient_user):
    patient = refilled.patient
    Patient.objects.filter(pk=patient.pk).update(
        user=patient_user, address_line1="12 Harbour Road", address_town="Leith", address_postcode="EH6 6QN"
    )
    client.force_login(patient_user)
    page = client.get(reverse("portal:patient_home", args=[patient.pk])).content.decode()
    assert "12 Harbour Road<br>Leith<br>EH6 6QN" in page
    assert _contact_url(patient) not in page
    assert client.get(_contact_url(patient)).status_code == 403
