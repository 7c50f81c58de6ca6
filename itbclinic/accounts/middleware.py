"""
Session lifetimes that Django lacks (SECURITY.md "Authentication and sessions").

- Absolute lifetime: 12 h after the login itself (stamped by the `user_logged_in` handler in
  signals.py), whatever the activity since.
- Idle timeout: 15 min for staff, 30 min for patients, counted from the last request.

Django's database session store already refuses a row whose `expire_date` has passed, and
SESSION_SAVE_EVERY_REQUEST pushes that date forward on every request; the middleware also
checks both limits itself from timestamps kept in the session, so the rule holds whichever
session engine is configured. An expired session is flushed server-side (the row is deleted),
so replaying the old cookie finds nothing.
"""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import logout
from django.utils import timezone

from .roles import Role, user_roles

LOGIN_AT_KEY = "_itb_login_at"
LAST_SEEN_KEY = "_itb_last_seen"


def idle_timeout_for(user) -> timedelta:
    """Patients get the longer idle timeout; anyone holding a staff role gets the staff one."""
    if user_roles(user) == {Role.PATIENT}:
        return settings.SESSION_IDLE_TIMEOUT_PATIENT
    return settings.SESSION_IDLE_TIMEOUT_STAFF


class SessionLifetimeMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            self._enforce(request, user)
        return self.get_response(request)

    def _enforce(self, request, user) -> None:
        now = timezone.now().timestamp()
        idle = idle_timeout_for(user).total_seconds()
        login_at = request.session.get(LOGIN_AT_KEY)
        last_seen = request.session.get(LAST_SEEN_KEY, login_at)
        # A session without a login stamp was not created by our login path: fail closed.
        expired = (
            login_at is None
            or now - login_at >= settings.SESSION_ABSOLUTE_LIFETIME.total_seconds()
            or now - last_seen >= idle
        )
        if expired:
            logout(request)  # flushes the session row and swaps in AnonymousUser
            return
        request.session[LAST_SEEN_KEY] = now
        remaining = settings.SESSION_ABSOLUTE_LIFETIME.total_seconds() - (now - login_at)
        # The cookie and the row never outlive the absolute limit, even when the idle one is longer.
        request.session.set_expiry(max(1, int(min(idle, remaining))))
