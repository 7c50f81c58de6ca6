"""
Session lifetimes that Django lacks (SECURITY.md "Authentication and sessions").

- Idle timeout: the session expires N minutes after the last request (15 staff, 30 patients);
  SESSION_SAVE_EVERY_REQUEST keeps pushing the expiry forward.
- Absolute lifetime: 12 h after login, whatever the activity; the session is flushed
  server-side so the old cookie cannot be replayed.
"""

from django.conf import settings
from django.contrib.auth import logout
from django.utils import timezone

from .roles import Role, user_roles

LOGIN_AT_KEY = "_itb_login_at"


class SessionLifetimeMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            now = timezone.now().timestamp()
            login_at = request.session.setdefault(LOGIN_AT_KEY, now)
            if now - login_at > settings.SESSION_ABSOLUTE_LIFETIME.total_seconds():
                logout(request)
            else:
                idle = (
                    settings.SESSION_IDLE_TIMEOUT_PATIENT
                    if user_roles(user) == {Role.PATIENT}
                    else settings.SESSION_IDLE_TIMEOUT_STAFF
                )
                request.session.set_expiry(int(idle.total_seconds()))
        return self.get_response(request)
