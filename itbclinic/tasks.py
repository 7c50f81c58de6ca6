"""Wiring-level tasks: the heartbeat that proves beat and the worker are alive."""

import logging

from celery import shared_task
from django.utils import timezone

logger = logging.getLogger(__name__)


@shared_task(name="itbclinic.heartbeat_task", ignore_result=True)
def heartbeat_task() -> str:
    now = timezone.localtime().isoformat()
    logger.info("heartbeat: worker alive at %s", now)
    return now
