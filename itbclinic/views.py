"""Wiring views: the role-based landing page and the health probe."""

import logging
import os

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from refills import watchdog

from .accounts.roles import Role, user_roles
from .celery import app as celery_app

logger = logging.getLogger(__name__)

# Where each audience lands after logging in, first match wins.
LANDING_PAGES = [
    (Role.PATIENT, "portal:home"),
    (Role.NURSE, "staff:worklist"),
    (Role.CLINICIAN, "staff:worklist"),
    (Role.CLINIC_ADMIN, "admin:index"),
]


@login_required
def home(request: HttpRequest) -> HttpResponse:
    roles = user_roles(request.user)
    for role, url_name in LANDING_PAGES:
        if role in roles:
            try:
                return redirect(reverse(url_name))
            except NoReverseMatch:
                continue
    return render(request, "home.html", {"roles": sorted(roles)})


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception as exc:  # any driver error means "not reachable"
        logger.warning("healthz: database unreachable (%s)", type(exc).__name__)
        return False


def _broker_ok() -> bool:
    try:
        with celery_app.connection_for_write() as conn:
            # One quick try: a probe must answer within the load balancer's timeout.
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
            if conn.transport_cls == "filesystem":
                # The filesystem transport "connects" to anything: check its folders instead.
                options = conn.transport_options
                folders = {options["data_folder_in"], options["data_folder_out"]}
                if not all(os.path.isdir(f) and os.access(f, os.W_OK) for f in folders):
                    raise OSError("filesystem broker folder missing or read-only")
        return True
    except Exception as exc:  # kombu raises transport-specific errors
        # The class name only: a broker URL in the message could carry a password.
        logger.warning("healthz: broker unreachable (%s)", type(exc).__name__)
        return False


def _overdue_tasks() -> list[watchdog.OverdueTask] | None:
    """The scheduled tasks that have not completed within twice their period; None if unknown."""
    try:
        return watchdog.task_list_overdue(now=timezone.now(), watching_since=watchdog.PROCESS_STARTED_AT)
    except Exception as exc:  # e.g. a database not migrated yet: unknown is not healthy
        logger.warning("healthz: task runs unreadable (%s)", type(exc).__name__)
        return None


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database and broker answer and the safety scan is running; else 503.

    The body of a healthy probe is `{"status", "database", "broker"}`. When a scheduled task is
    overdue it adds `stale_tasks` (their names); when that includes the scan — without which no
    reminder or alert is raised — it adds `scan: "stale"` and `scan_last_completed_at`, and answers
    503: a load balancer or monitor then pages someone instead of the clinic finding out too late.
    """
    checks = {"database": _database_ok(), "broker": _broker_ok()}
    body: dict = {k: "ok" if v else "down" for k, v in checks.items()}
    healthy = all(checks.values())
    if checks["database"]:
        overdue = _overdue_tasks()
        if overdue is None:
            body["scan"] = "unknown"
            healthy = False
        elif overdue:
            body["stale_tasks"] = [task.name for task in overdue]
            scan = next((task for task in overdue if task.is_scan), None)
            if scan is not None:
                completed = scan.last_completed_at
                body["scan"] = "stale"
                body["scan_last_completed_at"] = completed.isoformat() if completed else None
                healthy = False
            logger.warning("healthz: overdue scheduled tasks %s", body["stale_tasks"])
    return JsonResponse({"status": "ok" if healthy else "unavailable", **body}, status=200 if healthy else 503)
