"""Wiring views: the role-based landing page and the health probe."""

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .accounts.roles import Role, user_roles
from .celery import app as celery_app

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
    except Exception:  # any driver error means "not reachable"
        return False


def _broker_ok() -> bool:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:  # kombu raises transport-specific errors
        return False


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _database_ok(), "broker": _broker_ok()}
    healthy = all(checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", **{k: "ok" if v else "down" for k, v in checks.items()}},
        status=200 if healthy else 503,
    )
