"""
A cache-based limit on POSTs to the login, password-reset and invitation pages, per address.

django-axes locks a username after repeated failed logins; this limit adds what it does not
cover: one address trying many usernames, and anyone flooding password-reset emails. DRF's
throttles cover the API. Rates are `AUTH_POST_RATE_LIMITS = {route name: "count/seconds"}`.
"""

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from audit.services import client_address


def _parse(rate: str) -> tuple[int, int]:
    count, seconds = rate.split("/")
    return int(count), int(seconds)


def rate_limit_exceeded(*, scope: str, key: str, rate: str) -> bool:
    """Count one hit in the current window; True once more than `count` hits fell in it."""
    count, seconds = _parse(rate)
    cache_key = f"auth-post-rate:{scope}:{key}"
    if cache.add(cache_key, 1, timeout=seconds):
        return count < 1
    try:
        hits = cache.incr(cache_key)
    except ValueError:  # expired between add and incr: start a new window
        cache.set(cache_key, 1, timeout=seconds)
        hits = 1
    return hits > count


class AuthPostRateLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        if request.method != "POST":
            return None
        match = request.resolver_match
        rate = getattr(settings, "AUTH_POST_RATE_LIMITS", {}).get(match.view_name if match else "")
        if not rate:
            return None
        address = client_address(request=request) or "unknown"
        if rate_limit_exceeded(scope=match.view_name, key=address, rate=rate):
            body = render_to_string("portal/too_many_requests.html", request=request)
            response = HttpResponse(body, status=429)
            response["Retry-After"] = str(_parse(rate)[1])
            return response
        return None
