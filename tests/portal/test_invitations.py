"""Getting in: a nurse's invitation, the one-time link, carers with consent, forgotten passwords."""

import datetime as dt
import re

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse

from patients.models import Patient
from portal.models import CarerLink, PortalInvitation
from portal.services import portal_invite_patient
from tests import factories

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "a quiet river at dawn 17"


@pytest.fixture
def new_patient(world):
    return factories.PatientFactory(mrn="MRN-NEW", given_name="Nadia", family_name="New", email="nadia@example.org")


def _logs_in(client, username: str, password: str) -> bool:
    response = client.post(reverse("login"), {"username": username, "password": password})
    return response.status_code == 302 and "_auth_user_id" in client.session


def _link_path(message) -> str:
    return re.search(r"https?://[^/\s]+(/portal/welcome/\S+/)", message.body).group(1)


def test_invite_view_is_for_nurses_only(client, world, new_patient):
    url = reverse("portal:invite", kwargs={"patient_id": new_patient.pk})
    for user, expected in [(world.clinician, 403), (world.clinic_admin, 403), (world.a.user, 403), (world.nurse, 200)]:
        client.force_login(user)
        assert client.get(url).status_code == expected, user
    client.logout()
    assert client.get(url).status_code == 302


def test_invitation_email_link_sets_password_once_and_logs_in(
    client, world, new_patient, django_capture_on_commit_callbacks
):
    client.force_login(world.nurse)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("portal:invite", kwargs={"patient_id": new_patient.pk}), {"email": "Nadia@Example.org"}
        )
    assert response.status_code == 302
    (message,) = mail.outbox
    assert message.to == ["nadia@example.org"]
    assert "Your username is: nadia@example.org" in message.body
    patient = Patient.objects.get(pk=new_patient.pk)
    assert patient.user.username == "nadia@example.org" and not patient.user.has_usable_password()
    assert patient.user.groups.filter(name="patient").exists()
    client.logout()

    # when the patient opens the link: redirected to a URL without the token, then sets a password
    path = _link_path(message)
    first = client.get(path)
    assert first.status_code == 302 and first["Location"].endswith("/set-password/")
    form_page = client.get(first["Location"])
    assert form_page.context["validlink"] is True
    done = client.post(first["Location"], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})

    # then they are logged in on their own portal page, and the link is spent
    assert done.status_code == 302 and done["Location"] == reverse("portal:home")
    home = client.get(done["Location"], follow=True)
    assert home.status_code == 200 and "Hello, Nadia" in home.content.decode()
    assert PortalInvitation.objects.get(patient=patient).accepted_at is not None
    client.logout()
    again = client.get(path, follow=True)
    assert again.context["validlink"] is False
    assert _logs_in(client, "nadia@example.org", NEW_PASSWORD)


def test_invitation_link_expires(client, world, new_patient, django_capture_on_commit_callbacks, frozen):
    with django_capture_on_commit_callbacks(execute=True):
        portal_invite_patient(patient=new_patient, email="nadia@example.org", invited_by=world.nurse)
    path = _link_path(mail.outbox[0])
    with time_machine.travel(frozen + dt.timedelta(hours=72, minutes=1), tick=False):
        response = client.get(path, follow=True)
    assert response.context["validlink"] is False
    assert not Patient.objects.get(pk=new_patient.pk).user.has_usable_password()


def test_password_reset_token_is_not_an_invitation_token(client, world, new_patient):
    from django.contrib.auth.tokens import default_token_generator
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    portal_invite_patient(patient=new_patient, email="nadia@example.org", invited_by=world.nurse)
    user = Patient.objects.get(pk=new_patient.pk).user
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    path = reverse(
        "portal:invitation_accept", kwargs={"uidb64": uid, "token": default_token_generator.make_token(user)}
    )
    assert client.get(path, follow=True).context["validlink"] is False


def test_carer_invitation_needs_consent_and_links_the_carer(world, new_patient):
    with pytest.raises(ValidationError) as excinfo:
        portal_invite_patient(patient=new_patient, email="carer@example.org", invited_by=world.nurse, carer=True)
    assert excinfo.value.message_dict == {
        "consent_note": ["Record how the patient agreed to this carer seeing their portal."]
    }
    assert not CarerLink.objects.filter(patient=new_patient).exists()

    invitation = portal_invite_patient(
        patient=new_patient,
        email="carer@example.org",
        invited_by=world.nurse,
        carer=True,
        consent_note="Nadia agreed in clinic",
    )
    link = CarerLink.objects.get(patient=new_patient)
    assert (link.carer, link.consent_recorded_by, link.consent_note, link.revoked_at) == (
        invitation.user,
        world.nurse,
        "Nadia agreed in clinic",
        None,
    )
    assert Patient.objects.get(pk=new_patient.pk).user is None  # a carer is not the patient


def test_one_carer_for_several_patients(world, new_patient):
    portal_invite_patient(
        patient=new_patient, email="carer@example.org", invited_by=world.nurse, carer=True, consent_note="yes"
    )
    portal_invite_patient(
        patient=world.a.patient, email="carer@example.org", invited_by=world.nurse, carer=True, consent_note="yes"
    )
    links = CarerLink.objects.filter(carer__username="carer@example.org").values_list("patient__mrn", flat=True)
    assert sorted(links) == ["MRN-A", "MRN-NEW"]


@pytest.mark.parametrize(
    "email,error",
    [
        ("nurse.nina@example.org", "This email belongs to a staff account: use another address."),
        (
            "alice.adams@example.org",
            "This email already opens another patient's portal: invite this person as a carer.",
        ),
    ],
)
def test_invitation_refuses_staff_and_other_patients_accounts(world, new_patient, email, error):
    with pytest.raises(ValidationError) as excinfo:
        portal_invite_patient(patient=new_patient, email=email, invited_by=world.nurse)
    assert excinfo.value.message_dict == {"email": [error]}
    assert not PortalInvitation.objects.exists()


def test_only_nurses_may_invite(world, new_patient):
    with pytest.raises(ValidationError):
        portal_invite_patient(patient=new_patient, email="x@example.org", invited_by=world.clinician)
    assert not PortalInvitation.objects.exists()


def test_forgotten_password_flow_from_the_portal(client, world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("password_reset"), {"email": world.a.user.email})
    assert response.status_code == 302
    (message,) = mail.outbox
    path = re.search(r"https?://[^/\s]+(/accounts/reset/\S+/)", message.body).group(1)
    form_url = client.get(path)["Location"]
    client.post(form_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert _logs_in(client, world.a.user.username, NEW_PASSWORD)
    assert client.get(reverse("portal:home")).status_code == 302


def test_locked_out_patient_sees_the_lockout_page_then_gets_back_in(client, world, password, settings, frozen):
    settings.AXES_FAILURE_LIMIT = 3
    url = reverse("login")
    for _ in range(3):
        client.post(url, {"username": world.a.user.username, "password": "wrong password!!"})
    locked = client.post(url, {"username": world.a.user.username, "password": password})
    assert locked.status_code == 429
    assert "Too many failed attempts" in locked.content.decode()
    with time_machine.travel(frozen + settings.AXES_COOLOFF_TIME + dt.timedelta(seconds=1), tick=False):
        ok = client.post(url, {"username": world.a.user.username, "password": password})
    assert ok.status_code == 302
