"""
A limit on POSTs per client address to every form that checks a password (the login, the Django
admin's login, the password change), and to the password-reset and invitation pages.

django-axes locks a username after repeated failed logins; this limit adds what it does not
cover: one address trying many usernames, and anyone flooding password-reset emails. DRF's
throttles cover the API. Rates are `AUTH_POST_RATE_LIMITS = {route name: "count/seconds"}`.

The counting is django-ratelimit's (`django_ratelimit.core.get_usage`, in Django's default
cache): a fixed window of `seconds` per address and route, whose edges django-ratelimit staggers
per key. The views are Django's own (LoginView, PasswordResetView) and the portal's, so the
limit is applied by route name in this middleware rather than by decorating each view.
`django_ratelimit` is deliberately not in INSTALLED_APPS: its system check refuses the local
default cache (LocMemCache, not shared between processes), which is what the demo and the tests
use; the library works without it. Its place is taken by a deploy check (portal/checks.py):
production must count in a shared cache.

The client address is `audit.services.client_address` (TRUSTED_PROXY_COUNT), the same one
django-axes locks on: a forged X-Forwarded-For moves neither count onto another address.
"""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django_ratelimit.core import get_usage

from audit.services import client_address


def _client_key(group: str, request: HttpRequest) -> str:
    """The address the access log records (audit.services.client_address), or "unknown"."""
    return client_address(request=request) or "unknown"


def _window_seconds(rate: str) -> int:
    return int(rate.split("/")[1])


def auth_post_rate_limited(*, request: HttpRequest, route: str) -> bool:
    """Count this POST to `route` against its address's limit; True when it goes over.

    The count lives in the default cache: with CACHE_URL on Redis every web process (gunicorn
    worker) adds to the same count. A route without a configured rate is never limited.
    """
    rate = getattr(settings, "AUTH_POST_RATE_LIMITS", {}).get(route)
    if not rate:
        return False
    usage = get_usage(
        request,
        group=f"auth-post-rate:{route}",
        key=_client_key,
        rate=rate,
        method="POST",
        increment=True,
    )
    return usage is not None and bool(usage["should_limit"])


class AuthPostRateLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        if request.method != "POST":
            return None
        match = request.resolver_match
        route = match.view_name if match else ""
        if not auth_post_rate_limited(request=request, route=route):
            return None
        body = render_to_string("portal/too_many_requests.html", request=request)
        response = HttpResponse(body, status=429)
        response["Retry-After"] = str(_window_seconds(settings.AUTH_POST_RATE_LIMITS[route]))
        return response
