"""Getting in: a nurse's invitation, the one-time link, carers with consent, forgotten passwords."""

import datetime as dt
import re
from pathlib import Path

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse

from patients.models import Patient
from portal.models import CarerLink, PortalAccountEmailChange, PortalInvitation, hash_token
from portal.services import portal_invitation_revoke, portal_invite_patient
from portal.tasks import send_portal_invitation_task
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
    client, world, new_patient, celery_eager, django_capture_on_commit_callbacks
):
    client.force_login(world.nurse)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("portal:invite", kwargs={"patient_id": new_patient.pk}), {"email": "Nadia@Example.org"}
        )
    assert response.status_code == 302
    (message,) = mail.outbox
    assert message.to == ["nadia@example.org"]
    assert "username" not in message.body.lower()
    patient = Patient.objects.get(pk=new_patient.pk)
    assert patient.user.username == "nadia@example.org" and not patient.user.has_usable_password()
    assert patient.user.groups.filter(name="patient").exists()
    invitation = PortalInvitation.objects.get(patient=patient)
    token = _link_path(message).rstrip("/").rsplit("/", 1)[1]
    assert invitation.token_hash == hash_token(token) and token not in invitation.token_hash  # only the hash kept
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
    again = client.get(path)
    assert again.status_code == 404 and again.context["validlink"] is False
    assert "This link no longer works" in again.content.decode()
    assert _logs_in(client, "nadia@example.org", NEW_PASSWORD)


def _invite(*, patient, email, nurse, carer=False, consent_note=""):
    """Invite through the service and run the worker's half in this process; the emailed link's path."""
    before = len(mail.outbox)
    outcome = portal_invite_patient(
        patient=patient, email=email, invited_by=nurse, carer=carer, consent_note=consent_note
    )
    if outcome.invitation is None:
        return outcome, None
    assert send_portal_invitation_task(outcome.invitation.pk) is True
    return outcome, _link_path(mail.outbox[before])


def test_invitation_link_expires(client, world, new_patient, frozen):
    _outcome, path = _invite(patient=new_patient, email="nadia@example.org", nurse=world.nurse)
    with time_machine.travel(frozen + dt.timedelta(hours=72, minutes=1), tick=False):
        response = client.get(path)
    assert response.status_code == 404 and response.context["validlink"] is False
    assert not Patient.objects.get(pk=new_patient.pk).user.has_usable_password()


@pytest.mark.parametrize("kind", ["password-reset token", "random", "empty-ish", "very long", "set-password step"])
def test_a_token_that_is_not_an_open_invitation_opens_nothing(client, world, new_patient, kind):
    from django.contrib.auth.tokens import default_token_generator

    _invite(patient=new_patient, email="nadia@example.org", nurse=world.nurse)
    user = Patient.objects.get(pk=new_patient.pk).user
    token = {
        "password-reset token": default_token_generator.make_token(user),
        "random": "x" * 43,
        "empty-ish": "-",
        "very long": "a" * 500,
        "set-password step": "set-password",  # without a token in the session
    }[kind]
    for method in ("get", "post"):
        response = getattr(client, method)(reverse("portal:invitation_accept", kwargs={"token": token}))
        assert response.status_code == 404 and response.context["validlink"] is False
    assert not Patient.objects.get(pk=new_patient.pk).user.has_usable_password()


def test_a_new_invitation_revokes_the_earlier_link_and_follows_the_new_address(client, world, new_patient):
    # given an invitation to a mistyped address, then one to the right address
    first, typo_path = _invite(patient=new_patient, email="nadia@exmaple.org", nurse=world.nurse)
    _second, right_path = _invite(patient=new_patient, email="nadia@example.org", nurse=world.nurse)

    # then the two emails carry different links, the first one no longer works
    assert typo_path != right_path
    first.invitation.refresh_from_db()
    assert first.invitation.revoked_at is not None and first.invitation.revoked_by == world.nurse
    assert client.get(typo_path).status_code == 404
    assert client.get(right_path).status_code == 302
    # and the account nobody had set up now belongs to the right address (no stranger's login)
    user = Patient.objects.get(pk=new_patient.pk).user
    assert (user.username, user.email) == ("nadia@example.org", "nadia@example.org")
    assert mail.outbox[0].to == ["nadia@exmaple.org"] and mail.outbox[1].to == ["nadia@example.org"]


def test_reinviting_a_patient_who_has_an_account_sends_only_its_own_password_reset(
    client, world, celery_eager, django_capture_on_commit_callbacks, password
):
    """The attack of issue 15: a nurse invites patient1 again, to a stranger's address."""
    alice = world.a.user
    alice_email, alice_username = alice.email, alice.username
    client.force_login(world.nurse)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("portal:invite", kwargs={"patient_id": world.a.patient.pk}),
            {"email": "stranger@example.net"},
            follow=True,
        )
    # the nurse is told what happened
    page = response.content.decode()
    assert "already has a portal account: nothing about it was changed" in page
    assert alice_email in page
    # the only email goes to the address already on the account, with its own reset link, no username
    (message,) = mail.outbox
    assert message.to == [alice_email]
    assert re.search(r"https?://[^/\s]+/accounts/reset/\S+/", message.body)
    assert alice_username not in message.body and alice_username not in message.subject
    assert "/portal/welcome/" not in message.body
    # the account is unchanged, and no invitation link exists for the stranger
    alice.refresh_from_db()
    assert (alice.email, alice.username) == (alice_email, alice_username) and alice.check_password(password)
    assert not PortalInvitation.objects.filter(email="stranger@example.net").exists()


def test_nurse_sees_and_revokes_an_open_invitation_after_confirming(client, world, new_patient):
    outcome, path = _invite(patient=new_patient, email="nadia@example.org", nurse=world.nurse)
    invitation = outcome.invitation
    client.force_login(world.nurse)
    access = client.get(reverse("portal:invite", kwargs={"patient_id": new_patient.pk}))
    assert [i.pk for i in access.context["open_invitations"]] == [invitation.pk]
    revoke_url = reverse(
        "portal:invitation_revoke", kwargs={"patient_id": new_patient.pk, "invitation_id": invitation.pk}
    )
    assert revoke_url in access.content.decode()

    # the GET only asks: the link still works
    confirm = client.get(revoke_url)
    assert confirm.status_code == 200 and "Revoke this invitation?" in confirm.content.decode()
    invitation.refresh_from_db()
    assert invitation.revoked_at is None

    # the POST revokes it, with who and why in the row and its history
    done = client.post(revoke_url, {"reason": "wrong address"})
    assert done.status_code == 302
    invitation.refresh_from_db()
    assert (invitation.revoked_by, invitation.revoke_reason) == (world.nurse, "wrong address")
    assert invitation.history.first().history_user == world.nurse
    assert client.get(reverse("portal:invite", kwargs={"patient_id": new_patient.pk})).context["open_invitations"] == []
    client.logout()
    refused = client.get(path)
    assert refused.status_code == 404 and "This link no longer works" in refused.content.decode()
    # a second revoke changes nothing
    client.force_login(world.nurse)
    again = client.post(revoke_url, {"reason": "again"}, follow=True)
    assert "no longer open" in again.content.decode()
    invitation.refresh_from_db()
    assert invitation.revoke_reason == "wrong address"


def test_only_nurses_revoke_invitations(client, world, new_patient):
    outcome, _path = _invite(patient=new_patient, email="nadia@example.org", nurse=world.nurse)
    url = reverse(
        "portal:invitation_revoke", kwargs={"patient_id": new_patient.pk, "invitation_id": outcome.invitation.pk}
    )
    for user in (world.clinician, world.clinic_admin, world.a.user):
        client.force_login(user)
        assert client.post(url, {"reason": "x"}).status_code == 403
    outcome.invitation.refresh_from_db()
    assert outcome.invitation.revoked_at is None


def test_revoking_a_carer_invitation_takes_the_link_it_made_for_an_account_nobody_set_up(world, new_patient):
    outcome, _path = _invite(
        patient=new_patient, email="carer@example.org", nurse=world.nurse, carer=True, consent_note="yes"
    )
    link = CarerLink.objects.get(patient=new_patient)
    assert portal_invitation_revoke(invitation=outcome.invitation, by=world.nurse, reason="typo") is True
    link.refresh_from_db()
    assert link.revoked_at is not None and link.revoked_by == world.nurse
    # the worker's half sends nothing for a revoked invitation
    assert send_portal_invitation_task(outcome.invitation.pk) is False


def test_email_change_is_its_own_audited_action_and_tells_the_old_address(
    client, world, password, celery_eager, django_capture_on_commit_callbacks
):
    alice = world.a.user
    old_email = alice.email
    url = reverse("portal:account_email_change", kwargs={"patient_id": world.a.patient.pk})
    for user in (world.clinician, world.clinic_admin, world.a.user):
        client.force_login(user)
        assert client.post(url, {"new_email": "x@example.org", "reason": "x"}).status_code == 403
    client.force_login(world.nurse)
    # bad input: form errors naming the field, nothing changed
    taken = client.post(url, {"new_email": world.b.user.email, "reason": "asked"})
    assert taken.status_code == 200 and taken.context["form"].errors == {
        "new_email": ["Another account uses this email."]
    }
    no_reason = client.post(url, {"new_email": "alice.new@example.org", "reason": ""})
    assert no_reason.status_code == 200 and "reason" in no_reason.context["form"].errors
    assert not mail.outbox

    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(url, {"new_email": "Alice.New@example.org", "reason": "asked in clinic"})
    assert done.status_code == 302
    alice.refresh_from_db()
    assert alice.email == "alice.new@example.org" and alice.check_password(password)
    change = PortalAccountEmailChange.objects.get(user=alice)
    assert (change.old_email, change.new_email, change.reason, change.changed_by) == (
        old_email,
        "alice.new@example.org",
        "asked in clinic",
        world.nurse,
    )
    (notice,) = mail.outbox
    assert notice.to == [old_email]
    assert "alice.new@example.org" not in notice.body and alice.username not in notice.body
    page = client.get(reverse("portal:invite", kwargs={"patient_id": world.a.patient.pk})).content.decode()
    assert "asked in clinic" in page


def test_no_email_template_states_a_username():
    """Every email body and subject template of the project (text and HTML): no username in any."""
    from django.conf import settings

    base = Path(settings.BASE_DIR)
    templates = [
        path
        for path in base.glob("*/templates/**/*")
        if path.is_file()
        and ".venv" not in path.parts
        and ("email" in path.parts or "email" in path.name or "_sms" in path.name)
    ]
    assert len(templates) >= 10, templates  # the refills, portal and registration emails are all found
    for path in templates:
        assert "username" not in path.read_text().lower(), path


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
    ).invitation
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


def test_forgotten_password_flow_from_the_portal(client, world, celery_eager, django_capture_on_commit_callbacks):
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
