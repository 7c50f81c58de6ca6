"""Wiring-level tasks: the heartbeat that proves beat and the worker are alive, session cleanup."""

import logging
from importlib import import_module

from celery import shared_task
from django.conf import settings
from django.utils import timezone

logger = logging.getLogger(__name__)


@shared_task(name="itbclinic.heartbeat_task", ignore_result=True)
def heartbeat_task() -> str:
    now = timezone.localtime().isoformat()
    logger.info("heartbeat: worker alive at %s", now)
    return now


@shared_task(name="itbclinic.clear_expired_sessions_task", ignore_result=True)
def clear_expired_sessions_task() -> None:
    """What `manage.py clearsessions` does: expired rows are unusable, but still personal data."""
    import_module(settings.SESSION_ENGINE).SessionStore.clear_expired()
