"""Idle timeout, absolute lifetime, logout and password changes end sessions server-side."""

import datetime as dt
import re

import pytest
import time_machine
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core import mail
from django.test import Client
from django.utils import timezone

from itbclinic.accounts.middleware import LOGIN_AT_KEY

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2025, 3, 3, 8, 0, tzinfo=dt.UTC)
PROTECTED = "/accounts/password_change/"  # any page behind login_required that every role may open


def is_logged_in(client) -> bool:
    response = client.get(PROTECTED)
    if response.status_code == 200:
        return True
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    return False


def session_key(client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def session_is_live(key: str) -> bool:
    """A row the session store would still load (expired rows wait for clearsessions)."""
    return Session.objects.filter(session_key=key, expire_date__gt=timezone.now()).exists()


def test_settings_hold_the_documented_lifetimes():
    assert dt.timedelta(minutes=15) == settings.SESSION_IDLE_TIMEOUT_STAFF
    assert dt.timedelta(minutes=30) == settings.SESSION_IDLE_TIMEOUT_PATIENT
    assert dt.timedelta(hours=12) == settings.SESSION_ABSOLUTE_LIFETIME
    assert settings.SESSION_SAVE_EVERY_REQUEST is True


@pytest.mark.parametrize(
    ("user_fixture", "idle_minutes"),
    [("nurse", 15), ("clinician", 15), ("clinic_admin", 15), ("patient_user", 30)],
)
def test_idle_timeout_counts_from_the_last_request(request, client, log_in, user_fixture, idle_minutes):
    user = request.getfixturevalue(user_fixture)
    with time_machine.travel(T0, tick=False) as traveller:
        assert log_in(client, user).status_code == 302
        # Activity just inside the limit keeps the session alive, and restarts the count.
        traveller.shift(dt.timedelta(minutes=idle_minutes) - dt.timedelta(seconds=1))
        assert is_logged_in(client)
        traveller.shift(dt.timedelta(minutes=idle_minutes) - dt.timedelta(seconds=1))
        assert is_logged_in(client)
        key = session_key(client)
        assert session_is_live(key)

        traveller.shift(dt.timedelta(minutes=idle_minutes))

        assert not session_is_live(key)
        assert not is_logged_in(client)


def test_staff_session_is_gone_after_16_idle_minutes_while_a_patients_lives_on(client, nurse, patient_user, log_in):
    patient_client = Client()
    with time_machine.travel(T0, tick=False) as traveller:
        log_in(client, nurse)
        log_in(patient_client, patient_user)

        traveller.shift(dt.timedelta(minutes=16))

        assert not is_logged_in(client)
        assert is_logged_in(patient_client)


def test_the_database_row_expires_with_the_idle_timeout(client, nurse, log_in):
    with time_machine.travel(T0, tick=False):
        log_in(client, nurse)
        assert is_logged_in(client)
        row = Session.objects.get(session_key=session_key(client))

    assert row.expire_date == T0 + dt.timedelta(minutes=15)


def test_absolute_lifetime_ends_an_active_session_12_hours_after_login(client, nurse, log_in):
    with time_machine.travel(T0, tick=False) as traveller:
        log_in(client, nurse)
        # Busy all day: a request every 10 minutes, the first one 10 minutes after login, so a
        # lifetime counted from the first request would still have 10 minutes to go at the end.
        for _ in range(71):
            traveller.shift(dt.timedelta(minutes=10))
            assert is_logged_in(client)
        assert dt.datetime.now(tz=dt.UTC) == T0 + dt.timedelta(hours=11, minutes=50)
        key = session_key(client)
        # The last stretch is capped: the row expires at the 12 h mark, not 15 idle minutes later.
        assert Session.objects.get(session_key=key).expire_date == T0 + dt.timedelta(hours=12)

        traveller.shift(dt.timedelta(minutes=10))

        assert not session_is_live(key)
        assert not is_logged_in(client)


def test_a_session_without_a_login_stamp_is_ended(client, nurse, log_in):
    log_in(client, nurse)
    store = client.session
    del store[LOGIN_AT_KEY]
    store.save()

    assert not is_logged_in(client)
    assert not Session.objects.filter(session_key=store.session_key).exists()


def test_logout_deletes_the_session_so_the_old_cookie_cannot_be_replayed(client, nurse, log_in):
    log_in(client, nurse)
    key = session_key(client)
    assert is_logged_in(client)

    response = client.post("/accounts/logout/")

    assert response.status_code == 302
    assert not Session.objects.filter(session_key=key).exists()
    replay = Client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = key
    assert not is_logged_in(replay)


def test_password_change_ends_the_users_other_sessions_only(client, nurse, clinician, password, log_in):
    other_device = Client()
    colleague = Client()
    log_in(client, nurse)
    log_in(other_device, nurse)
    log_in(colleague, clinician)
    other_key = session_key(other_device)
    new_password = "a-brand-new-passphrase-77"

    response = client.post(
        "/accounts/password_change/",
        {"old_password": password, "new_password1": new_password, "new_password2": new_password},
    )

    assert response.status_code == 302
    assert response["Location"] == "/accounts/password_change/done/"
    assert is_logged_in(client)
    assert not Session.objects.filter(session_key=other_key).exists()
    assert not is_logged_in(other_device)
    assert is_logged_in(colleague)
    nurse.refresh_from_db()
    assert nurse.check_password(new_password)


def test_a_rejected_password_change_ends_no_session(client, nurse, password, log_in):
    other_device = Client()
    log_in(client, nurse)
    log_in(other_device, nurse)

    response = client.post(
        "/accounts/password_change/",
        {"old_password": password, "new_password1": "short", "new_password2": "short"},
    )

    assert response.status_code == 200
    assert is_logged_in(other_device)
    nurse.refresh_from_db()
    assert nurse.check_password(password)


def test_password_reset_ends_every_session_of_the_user(
    client, nurse, log_in, celery_eager, django_capture_on_commit_callbacks
):
    logged_in_elsewhere = Client()
    log_in(logged_in_elsewhere, nurse)
    key = session_key(logged_in_elsewhere)

    with django_capture_on_commit_callbacks(execute=True):
        client.post("/accounts/password_reset/", {"email": nurse.email})
    assert len(mail.outbox) == 1
    link = re.search(r"https?://[^/\s]+(/accounts/reset/\S+/)", mail.outbox[0].body).group(1)
    set_password_url = client.get(link)["Location"]  # Django swaps the token for a session marker
    new_password = "reset-to-something-long-88"
    response = client.post(set_password_url, {"new_password1": new_password, "new_password2": new_password})

    assert response.status_code == 302
    assert response["Location"] == "/accounts/reset/done/"
    assert not Session.objects.filter(session_key=key).exists()
    assert not is_logged_in(logged_in_elsewhere)


def test_the_middleware_enforces_the_idle_timeout_whatever_the_session_engine(settings, client, nurse, log_in):
    # Signed-cookie sessions have no server-side expiry of their own: only the middleware decides.
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    with time_machine.travel(T0, tick=False) as traveller:
        log_in(client, nurse)
        traveller.shift(dt.timedelta(minutes=14))
        assert is_logged_in(client)

        traveller.shift(dt.timedelta(minutes=15))

        assert not is_logged_in(client)
