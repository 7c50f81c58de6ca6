"""Wiring tasks, called directly (the worker tests run them through a real worker)."""

import datetime as dt

import pytest
import time_machine
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session

from itbclinic.tasks import clear_expired_sessions_task, heartbeat_task

T0 = dt.datetime(2025, 3, 3, 8, 0, tzinfo=dt.UTC)


def test_heartbeat_reports_the_clinic_local_time():
    with time_machine.travel(T0, tick=False):
        assert heartbeat_task() == "2025-03-03T08:00:00+00:00"  # London is on GMT in March before the 30th


@pytest.mark.django_db
def test_expired_session_rows_are_deleted_and_live_ones_kept():
    with time_machine.travel(T0, tick=False) as traveller:
        old, live = SessionStore(), SessionStore()
        old.set_expiry(60)
        old.create()
        traveller.shift(dt.timedelta(minutes=5))
        live.set_expiry(60)
        live.create()

        clear_expired_sessions_task()

        assert list(Session.objects.values_list("session_key", flat=True)) == [live.session_key]


def test_beat_runs_the_heartbeat_within_a_minute_and_the_cleanup_hourly():
    schedule = settings.CELERY_BEAT_SCHEDULE
    assert schedule["heartbeat"] == {"task": "itbclinic.heartbeat_task", "schedule": 30.0}
    assert schedule["clear-expired-sessions"] == {"task": "itbclinic.clear_expired_sessions_task", "schedule": 3600.0}
