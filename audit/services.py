"""Writes to the access log. Call `audit_record_access` wherever a patient's record is shown or exported."""

import ipaddress
import logging
from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import models, transaction
from django.http import HttpRequest
from django.urls import ResolverMatch
from django.utils import timezone

from itbclinic.accounts.models import User

from .models import AccessLog

logger = logging.getLogger("itbclinic.audit")


def client_address(*, request: HttpRequest) -> str | None:
    """The caller's address: REMOTE_ADDR, or X-Forwarded-For only behind a configured proxy.

    TRUSTED_PROXY_COUNT = n (default 0) says n reverse proxies we run append to
    X-Forwarded-For; the address they saw is the n-th from the right. Without that setting the
    header is ignored, because any client can send it; with it, whatever a client wrote to the
    left of what our proxies appended is ignored too. The access log records this address, and
    the POST limits (portal/throttling.py) and django-axes (`axes_client_address`) count by it.
    """
    trusted = int(getattr(settings, "TRUSTED_PROXY_COUNT", 0) or 0)
    candidate = request.META.get("REMOTE_ADDR", "")
    if trusted > 0:
        hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
        if len(hops) >= trusted:
            candidate = hops[-trusted]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def axes_client_address(request: HttpRequest) -> str | None:
    """`client_address` for django-axes (AXES_CLIENT_IP_CALLABLE passes the request positionally)."""
    return client_address(request=request)


def _resource_of(request: HttpRequest | None) -> str:
    match: ResolverMatch | None = getattr(request, "resolver_match", None) if request is not None else None
    if match is not None and match.view_name:
        return match.view_name
    return "unknown"


@transaction.atomic
def audit_record_access(
    *,
    user: User | AnonymousUser | None,
    patient: models.Model,
    action: str,
    request: HttpRequest | None,
    detail: str = "",
    resource: str | None = None,
    via_token: bool = False,
) -> AccessLog:
    """Append one row: `user` saw (or exported) `patient`'s record (a patients.Patient) through `request`.

    `action` is an `AccessLog.Action` ("view", "export", "change"). `resource` defaults to the
    route name of the request (never its path, which can hold a token). `detail` is a short, safe
    description ("appointment 42", "wallet card"): never put a token, password or session id in it.
    `user` may be None only for token-authenticated reads (`via_token=True`).
    """
    if action not in AccessLog.Action.values:
        raise ValueError(f"action must be one of {AccessLog.Action.values}, got {action!r}")
    # No account for None or an unauthenticated user (AnonymousUser is never authenticated).
    account = None if user is None or isinstance(user, AnonymousUser) else user
    if account is not None and not getattr(account, "is_authenticated", False):
        account = None
    entry = AccessLog.objects.create(
        user=account,
        username=account.get_username() if account is not None else "",
        # audit sits below patients in the layering, so it cannot name patients.Patient here.
        patient=patient,  # type: ignore[misc]
        action=action,
        resource=(resource or _resource_of(request))[:200],
        detail=detail[:200],
        method=(request.method or "")[:8] if request is not None else "",
        remote_addr=client_address(request=request) if request is not None else None,
        via_token=via_token,
    )
    logger.info("access user=%s patient=%s action=%s resource=%s", entry.user_id, patient.pk, action, entry.resource)
    return entry


def audit_record_accesses(
    *,
    user: User | AnonymousUser | None,
    patients: Iterable[models.Model],
    action: str,
    request: HttpRequest | None,
    detail: str = "",
    resource: str | None = None,
) -> list[AccessLog]:
    """`audit_record_access` for every patient a list disclosed, in one bulk insert (whatever the page size).

    One row per distinct patient, in the order first shown; nothing is written for an empty list.
    """
    if action not in AccessLog.Action.values:
        raise ValueError(f"action must be one of {AccessLog.Action.values}, got {action!r}")
    account = None if user is None or isinstance(user, AnonymousUser) else user
    if account is not None and not getattr(account, "is_authenticated", False):
        account = None
    distinct: dict[object, models.Model] = {}
    for patient in patients:
        if patient is not None and patient.pk not in distinct:
            distinct[patient.pk] = patient
    if not distinct:
        return []
    common = {
        "user": account,
        "username": account.get_username() if account is not None else "",
        "action": action,
        "resource": (resource or _resource_of(request))[:200],
        "detail": detail[:200],
        "method": (request.method or "")[:8] if request is not None else "",
        "remote_addr": client_address(request=request) if request is not None else None,
    }
    at = timezone.now()
    # audit sits below patients in the layering, so it cannot name patients.Patient here.
    entries = AccessLog.objects.bulk_create(
        [AccessLog(at=at, patient=patient, **common) for patient in distinct.values()]  # type: ignore[misc]
    )
    logger.info(
        "access user=%s patients=%s action=%s resource=%s",
        getattr(account, "pk", None),
        ",".join(str(pk) for pk in distinct),
        action,
        common["resource"],
    )
    return entries
