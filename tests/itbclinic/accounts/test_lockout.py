"""django-axes: a lock per username and address after repeated failures, lifted by the cool-off."""

import datetime as dt

import pytest
import time_machine
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import SESSION_KEY

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2025, 3, 3, 8, 0, tzinfo=dt.UTC)
ATTACKER = "192.0.2.66"
NURSE_DESK = "192.0.2.10"


def attempt(client, username, password, address=ATTACKER):
    return client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def fail_until_locked(client, username, address=ATTACKER):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, username, "not-the-password", address)


def test_limit_and_cool_off_are_the_documented_ones():
    assert settings.AXES_FAILURE_LIMIT == 5
    assert dt.timedelta(minutes=15) == settings.AXES_COOLOFF_TIME
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]


def test_a_failure_below_the_limit_does_not_lock(client, nurse, password):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = attempt(client, nurse.username, "not-the-password")
        assert response.status_code == 200  # the login form again, with its error

    response = attempt(client, nurse.username, password)

    assert response.status_code == 302
    assert client.session[SESSION_KEY] == str(nurse.pk)
    assert not AccessAttempt.objects.filter(username=nurse.username).exists()  # reset on success


def test_the_limit_locks_even_the_right_password_out(client, nurse, password):
    with time_machine.travel(T0, tick=False):
        fail_until_locked(client, nurse.username)

        response = attempt(client, nurse.username, password)

    assert response.status_code == 429
    assert "Too many failed attempts" in response.content.decode()
    assert SESSION_KEY not in client.session
    # The attempt made while locked out is not recorded: it must not push the lock's end back.
    assert AccessAttempt.objects.get(username=nurse.username, ip_address=ATTACKER).failures_since_start == 5


def test_the_lock_is_per_username_and_address(client, nurse, clinician, password):
    with time_machine.travel(T0, tick=False):
        fail_until_locked(client, nurse.username)

        # The real nurse at her own desk is not locked out by someone else's guesses...
        assert attempt(client, nurse.username, password, NURSE_DESK).status_code == 302
        client.logout()
        # ...nor is a colleague logging in from the attacker's address.
        assert attempt(client, clinician.username, password, ATTACKER).status_code == 302
        client.logout()
        assert attempt(client, nurse.username, password, ATTACKER).status_code == 429


def test_the_cool_off_lifts_the_lock(client, nurse, password):
    with time_machine.travel(T0, tick=False) as traveller:
        fail_until_locked(client, nurse.username)

        traveller.shift(settings.AXES_COOLOFF_TIME)
        assert attempt(client, nurse.username, password).status_code == 429  # the boundary is inclusive

        traveller.shift(dt.timedelta(seconds=1))
        response = attempt(client, nurse.username, password)

        assert response.status_code == 302
        assert client.session[SESSION_KEY] == str(nurse.pk)


def test_attempts_during_the_lock_do_not_extend_it(client, nurse, password):
    with time_machine.travel(T0, tick=False) as traveller:
        fail_until_locked(client, nurse.username)
        for _ in range(2):
            traveller.shift(dt.timedelta(minutes=7))
            assert attempt(client, nurse.username, "still-guessing").status_code == 429

        traveller.shift(dt.timedelta(minutes=1, seconds=1))  # just past 15 minutes after the locking failure
        response = attempt(client, nurse.username, password)

    assert response.status_code == 302
