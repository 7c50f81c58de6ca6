"""Withdrawn means gone, everywhere at once (issue 15, item 2).

Every way into a patient's portal is found from the URL resolver: the session pages of the
portal (home, the patient's pages, the .ics download), the calendar feed, the invitation link and
the password-reset link. A new portal route, or any route that takes a token, fails
`test_every_way_in_is_classified` until it is listed in WAYS_IN (or, for a staff page, in
NOT_A_WAY_IN). Then, for each kind of withdrawal, each way in is shown to work before and to be
refused after (404, 403, a redirect to the login page, or a link page that offers no form).
"""

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.contrib.sessions.models import Session
from django.core import mail
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from itbclinic.accounts.services import user_deactivate
from portal.models import CalendarFeed, CarerLink, PortalInvitation
from portal.services import calendar_feed_create, portal_invite_patient
from portal.tasks import send_portal_invitation_task
from tests import factories
from tests.portal.world import World

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "a quiet river at dawn 17"

# Every way in, by kind of key: "session" (a logged-in browser; "session-post" for a page that
# only takes a POST), "feed" (the calendar token),
# "invitation" (the invitation link), "reset" (the password-reset link).
WAYS_IN = {
    "portal:home": "session",
    "portal:patient_home": "session",
    "portal:appointment_ics": "session",
    "portal:change_request": "session",
    "portal:reminder_preferences": "session",
    "portal:calendar_settings": "session",
    "portal:change_request_withdraw": "session-post",  # a button: POST only
    "portal:passport": "session",
    "portal:calendar_feed": "feed",
    "portal:invitation_accept": "invitation",
    "password_reset_confirm": "reset",
}
# Portal routes that are not a patient's or carer's way in: the nurses' portal-access pages.
NOT_A_WAY_IN = {
    "portal:invite",
    "portal:invitation_revoke",
    "portal:carer_link_revoke",
    "portal:account_email_change",
}
TOKEN_PARAMS = {"token", "uidb64", "key", "secret"}


def _discover() -> dict[str, tuple[str, ...]]:
    """Every named route of the project that is in the portal or takes a token: name -> its parameters."""
    found: dict[str, tuple[str, ...]] = {}

    def walk(patterns, namespace: str | None) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                ns = f"{namespace}:{p.namespace}" if namespace and p.namespace else (p.namespace or namespace)
                walk(p.url_patterns, ns)
            elif isinstance(p, URLPattern) and p.name:
                key = f"{namespace}:{p.name}" if namespace else p.name
                params = tuple(sorted(p.pattern.regex.groupindex))
                if (namespace or "").split(":")[0] == "portal" or TOKEN_PARAMS & set(params):
                    found[key] = params

    walk(get_resolver().url_patterns, None)
    return found


DISCOVERED = _discover()


def test_every_way_in_is_classified():
    unclassified = set(DISCOVERED) - set(WAYS_IN) - NOT_A_WAY_IN
    assert not unclassified, f"classify these routes in WAYS_IN or NOT_A_WAY_IN: {sorted(unclassified)}"
    assert set(WAYS_IN) <= set(DISCOVERED), "a route in WAYS_IN is gone from the URLs"


# ---------------------------------------------------------------------------------------------
# The keys one person holds to patient A's portal, and how each is tried
# ---------------------------------------------------------------------------------------------
@dataclass
class Keys:
    user: object  # an account with a password: a browser session, a feed, a reset link
    client: Client
    feed_token: str
    reset_path: str
    invited: object  # a second person, invited and not set up yet: the invitation link
    invitation_token: str


def _refused(response) -> bool:
    if response.status_code in (403, 404):
        return True
    if response.status_code == 302:
        return response["Location"].split("?")[0].endswith("/accounts/login/")
    # A used or spent reset link answers 200 with Django's "this link has expired" page.
    context = response.context
    return response.status_code == 200 and context is not None and context.get("validlink") is False


def _reset_path(user) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    return reverse("password_reset_confirm", kwargs={"uidb64": uid, "token": default_token_generator.make_token(user)})


def _open_invitation(world: World, *, email: str, carer: bool, patient) -> tuple[object, str]:
    before = len(mail.outbox)
    outcome = portal_invite_patient(
        patient=patient, email=email, invited_by=world.nurse, carer=carer, consent_note="agreed in clinic"
    )
    assert send_portal_invitation_task(outcome.invitation.pk)
    token = re.search(r"/portal/welcome/([^/\s]+)/", mail.outbox[before].body).group(1)
    return outcome.user, token


def _session_url(name: str, world: World) -> str:
    params = DISCOVERED[name]
    values = {
        "patient_id": world.a.patient.pk,
        "appointment_id": world.a.appointment.pk,
        "request_id": world.a.change_request.pk,
    }
    return reverse(name, kwargs={p: values[p] for p in params})


def _try(name: str, keys: Keys, world: World, *, spend: bool):
    """One way in, tried with the person's key. `spend`: follow a reset link all the way into A's portal."""
    kind = WAYS_IN[name]
    anonymous = Client()
    if kind == "session":
        return keys.client.get(_session_url(name, world))
    if kind == "session-post":
        return keys.client.post(_session_url(name, world))
    if kind == "feed":
        return anonymous.get(reverse(name, kwargs={"token": keys.feed_token}))
    if kind == "invitation":
        return anonymous.get(reverse(name, kwargs={"token": keys.invitation_token}))
    assert kind == "reset"
    opened = anonymous.get(keys.reset_path)
    if not spend or opened.status_code != 302:
        return opened
    # The link still sets a password: what counts is whether it leads into A's portal.
    anonymous.post(opened["Location"], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    fresh = Client()
    fresh.post(reverse("login"), {"username": keys.user.username, "password": NEW_PASSWORD})
    return fresh.get(reverse("portal:patient_home", kwargs={"patient_id": world.a.patient.pk}))


def _works(name: str, response) -> bool:
    if WAYS_IN[name] in ("invitation", "reset"):
        return response.status_code == 302 and response["Location"].endswith("/set-password/")
    # 200, or the portal home sending a one-patient user on to that patient's page
    return response.status_code in (200, 302) and not _refused(response)


# ---------------------------------------------------------------------------------------------
# The kinds of withdrawal: who holds the keys, what withdraws them, which ways in they end
# ---------------------------------------------------------------------------------------------
def _carer_keys(world: World) -> Keys:
    carer = world.a.carer  # linked to patient A only
    client = Client()
    client.force_login(carer)
    _feed, token = calendar_feed_create(user=carer, patient=world.a.patient)
    invited, invitation_token = _open_invitation(
        world, email="second.carer@example.org", carer=True, patient=world.a.patient
    )
    return Keys(carer, client, token, _reset_path(carer), invited, invitation_token)


def _patient_keys(world: World) -> Keys:
    client = Client()
    client.force_login(world.a.user)
    newcomer = factories.PatientFactory(mrn="MRN-NEW", given_name="Nadia", family_name="New")
    invited, invitation_token = _open_invitation(world, email="nadia@example.org", carer=False, patient=newcomer)
    return Keys(world.a.user, client, world.a.feed_token, _reset_path(world.a.user), invited, invitation_token)


def _revoke_carer_links(world: World, keys: Keys) -> None:
    nurse = Client()
    nurse.force_login(world.nurse)
    for user in (keys.user, keys.invited):
        link = CarerLink.objects.get(carer=user, patient=world.a.patient, revoked_at__isnull=True)
        url = reverse("portal:carer_link_revoke", kwargs={"patient_id": world.a.patient.pk, "link_id": link.pk})
        assert nurse.post(url, {"reason": "consent withdrawn by phone"}).status_code == 302


def _deactivate_by_save(world: World, keys: Keys) -> None:
    # One through a plain save (as the admin's change form does), one through the service.
    keys.user.is_active = False
    keys.user.save()
    user_deactivate(user=keys.invited)


def _revoke_invitation(world: World, keys: Keys) -> None:
    nurse = Client()
    nurse.force_login(world.nurse)
    invitation = PortalInvitation.objects.get(user=keys.invited, accepted_at__isnull=True, revoked_at__isnull=True)
    url = reverse(
        "portal:invitation_revoke", kwargs={"patient_id": invitation.patient_id, "invitation_id": invitation.pk}
    )
    assert nurse.post(url, {"reason": "wrong person"}).status_code == 302


def _reissue_invitation(world: World, keys: Keys) -> None:
    invitation = PortalInvitation.objects.get(user=keys.invited, accepted_at__isnull=True, revoked_at__isnull=True)
    portal_invite_patient(
        patient=invitation.patient,
        email="the.right.address@example.org",
        invited_by=world.nurse,
        carer=invitation.carer,
        consent_note="agreed in clinic",
    )


ALL_WAYS = tuple(WAYS_IN)
INVITATION_ONLY = ("portal:invitation_accept",)


@dataclass(frozen=True)
class Withdrawal:
    keys: Callable[[World], Keys]
    withdraw: Callable[[World, Keys], None]
    ends: tuple[str, ...]


WITHDRAWALS = {
    "carer link revoked": Withdrawal(_carer_keys, _revoke_carer_links, ALL_WAYS),
    "carer deactivated": Withdrawal(_carer_keys, _deactivate_by_save, ALL_WAYS),
    "patient deactivated": Withdrawal(_patient_keys, _deactivate_by_save, ALL_WAYS),
    "invitation revoked": Withdrawal(_patient_keys, _revoke_invitation, INVITATION_ONLY),
    "carer invitation reissued": Withdrawal(_carer_keys, _reissue_invitation, INVITATION_ONLY),
    "patient invitation reissued": Withdrawal(_patient_keys, _reissue_invitation, INVITATION_ONLY),
}


@pytest.mark.parametrize("kind", list(WITHDRAWALS))
def test_every_way_in_works_before_and_is_refused_after_the_withdrawal(world, kind):
    withdrawal = WITHDRAWALS[kind]
    keys = withdrawal.keys(world)
    before = {name: _try(name, keys, world, spend=False) for name in ALL_WAYS}
    assert {n: r.status_code for n, r in before.items() if not _works(n, r)} == {}

    withdrawal.withdraw(world, keys)

    after = {name: _try(name, keys, world, spend=True) for name in withdrawal.ends}
    assert {n: r.status_code for n, r in after.items() if not _refused(r)} == {}
    # the ways this withdrawal is not about still work (a revoked invitation logs no one out)
    untouched = [n for n in ALL_WAYS if n not in withdrawal.ends]
    assert [n for n in untouched if not _works(n, _try(n, keys, world, spend=False))] == []


def test_revoking_a_carer_ends_their_feed_rows_sessions_and_records_who_and_why(world):
    keys = _carer_keys(world)
    session_key = keys.client.session.session_key
    _revoke_carer_links(world, keys)

    link = CarerLink.objects.get(carer=keys.user, patient=world.a.patient)
    assert (link.revoked_by, link.revoke_reason) == (world.nurse, "consent withdrawn by phone")
    assert link.history.first().history_user == world.nurse
    assert not CalendarFeed.objects.filter(user=keys.user, revoked_at__isnull=True).exists()
    assert _refused(keys.client.get(reverse("portal:home")))
    assert not Session.objects.filter(session_key=session_key).exists()


def test_a_carer_who_still_cares_for_someone_keeps_their_session(world):
    # given a carer of A who also cares for B
    keys = _carer_keys(world)
    CarerLink.objects.create(
        carer=keys.user,
        patient=world.b.patient,
        consent_recorded_at=world.a.carer_link.consent_recorded_at,
        consent_recorded_by=world.nurse,
        consent_note="yes",
    )
    _revoke_carer_links(world, keys)
    # then A is gone, B stays
    assert keys.client.get(reverse("portal:patient_home", kwargs={"patient_id": world.a.patient.pk})).status_code == 404
    assert keys.client.get(reverse("portal:patient_home", kwargs={"patient_id": world.b.patient.pk})).status_code == 200


def test_carer_revoke_page_confirms_and_needs_a_reason(client, world):
    link = world.a.carer_link
    url = reverse("portal:carer_link_revoke", kwargs={"patient_id": world.a.patient.pk, "link_id": link.pk})
    client.force_login(world.clinician)
    assert client.post(url, {"reason": "x"}).status_code == 403
    client.force_login(world.nurse)
    confirm = client.get(url)
    assert confirm.status_code == 200 and "Revoke this carer's access?" in confirm.content.decode()
    blank = client.post(url, {"reason": "  "})
    assert blank.status_code == 200 and "reason" in blank.context["form"].errors
    link.refresh_from_db()
    assert link.revoked_at is None
    # a link of another patient is not found through this patient's page
    other = reverse("portal:carer_link_revoke", kwargs={"patient_id": world.b.patient.pk, "link_id": link.pk})
    assert client.post(other, {"reason": "x"}).status_code == 404


def _change_form_data(form, **changes) -> dict:
    """What the browser would POST for an unchanged admin form, with `changes` applied."""
    data: dict = {}
    for name, field in form.fields.items():
        value = changes.get(name, form.initial.get(name, field.initial))
        if field.disabled or value is None:
            continue
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        elif isinstance(value, dt.datetime):
            local = timezone.localtime(value)
            data[f"{name}_0"], data[f"{name}_1"] = f"{local:%Y-%m-%d}", f"{local:%H:%M:%S}"
        elif hasattr(value, "__iter__") and not isinstance(value, str):
            data[name] = [getattr(v, "pk", v) for v in value]
        else:
            data[name] = value
    return data


def test_deactivating_through_the_admin_ends_the_feed_and_the_sessions(client, world):
    # given patient A logged in elsewhere, with a working feed
    elsewhere = Client()
    elsewhere.force_login(world.a.user)
    feed_url = reverse("portal:calendar_feed", kwargs={"token": world.a.feed_token})
    assert Client().get(feed_url).status_code == 200
    # when the clinic admin unticks "active" on the admin's change form, leaving the rest as it is
    client.force_login(world.clinic_admin)
    url = reverse("admin:accounts_user_change", args=[world.a.user.pk])
    response = client.post(url, _change_form_data(client.get(url).context["adminform"].form, is_active=False))
    assert response.status_code == 302, response.context["adminform"].form.errors
    # then the feed and the other session are refused at once
    world.a.user.refresh_from_db()
    assert world.a.user.is_active is False
    assert Client().get(feed_url).status_code == 404
    assert _refused(elsewhere.get(reverse("portal:patient_home", kwargs={"patient_id": world.a.patient.pk})))
