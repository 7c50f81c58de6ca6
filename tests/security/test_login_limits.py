"""Limits that hold in production: one client address for axes and the POST limits, every login form
limited, and the count shared by every web process (issue 15, item 3).

The client address is `audit.services.client_address` with TRUSTED_PROXY_COUNT: behind n proxies
of ours, the n-th address from the right of X-Forwarded-For; without a proxy, REMOTE_ADDR. What a
client writes into X-Forwarded-For itself never becomes the address that is counted or locked.
"""

import datetime as dt
import os
import subprocess
import sys
import uuid

import environ
import pytest
import redis
import time_machine
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.views import LoginView, PasswordChangeView
from django.urls import URLPattern, URLResolver, get_resolver

from tests.conftest import require_service

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2025, 3, 3, 8, 0, tzinfo=dt.UTC)
PROXY = "10.0.0.1"  # our TLS proxy: every request arrives from it when TRUSTED_PROXY_COUNT=1
ATTACKER = "192.0.2.66"
NURSE_DESK = "192.0.2.10"
LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"


def as_seen_by_the_app(address: str, *, forged: str, trusted: int) -> dict[str, str]:
    """The META of a request from `address` that wrote `forged` into X-Forwarded-For itself.

    No proxy: the request arrives from `address` with the header as the client sent it. Behind
    our proxy: it arrives from the proxy, which appended the address it saw to the header.
    """
    if trusted == 0:
        return {"REMOTE_ADDR": address, "HTTP_X_FORWARDED_FOR": forged}
    return {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": f"{forged}, {address}" if forged else address}


def bad_login(client, username, meta, url=LOGIN):
    return client.post(url, {"username": username, "password": "not-the-password"}, **meta)


# ---------------------------------------------------------------------------
# A forged X-Forwarded-For cannot lock out another address
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("trusted", [0, 1], ids=["no-proxy", "behind-our-proxy"])
def test_forged_forwarded_for_cannot_lock_the_nurse_out_in_axes(client, nurse, password, settings, trusted):
    settings.TRUSTED_PROXY_COUNT = trusted
    forged = as_seen_by_the_app(ATTACKER, forged=NURSE_DESK, trusted=trusted)
    with time_machine.travel(T0, tick=False):
        # given five failed logins for the nurse, each claiming to come from her desk
        for _ in range(settings.AXES_FAILURE_LIMIT):
            bad_login(client, nurse.username, forged)

        # then the lock is on the attacker's address, and the nurse at her desk still gets in
        assert list(AccessAttempt.objects.values_list("ip_address", "failures_since_start")) == [(ATTACKER, 5)]
        desk = as_seen_by_the_app(NURSE_DESK, forged="", trusted=trusted)
        response = client.post(LOGIN, {"username": nurse.username, "password": password}, **desk)
        assert response.status_code == 302
        assert client.session[SESSION_KEY] == str(nurse.pk)
        client.logout()
        # while the attacker's address stays locked, even with the right password
        assert client.post(LOGIN, {"username": nurse.username, "password": password}, **forged).status_code == 429


@pytest.mark.parametrize("trusted", [0, 1], ids=["no-proxy", "behind-our-proxy"])
def test_forged_forwarded_for_cannot_spend_another_addresses_post_limit(client, nurse, settings, trusted):
    settings.TRUSTED_PROXY_COUNT = trusted
    settings.AUTH_POST_RATE_LIMITS = {**settings.AUTH_POST_RATE_LIMITS, "login": "2/300"}
    forged = as_seen_by_the_app(ATTACKER, forged=NURSE_DESK, trusted=trusted)

    attacker = [bad_login(client, f"someone{i}", forged).status_code for i in range(3)]
    desk = bad_login(client, nurse.username, as_seen_by_the_app(NURSE_DESK, forged="", trusted=trusted))

    assert attacker == [200, 200, 429]
    assert desk.status_code == 200  # the login form with its error: her address has its own count


@pytest.mark.parametrize(
    ("trusted", "remote", "forwarded", "expected"),
    [
        (0, "192.0.2.5", "198.51.100.1", "192.0.2.5"),
        (1, PROXY, "6.6.6.6, 198.51.100.1", "198.51.100.1"),
        (2, PROXY, "6.6.6.6, 198.51.100.1, 10.0.0.2", "198.51.100.1"),
    ],
)
def test_axes_the_post_limit_and_the_access_log_count_the_same_address(
    client, nurse, settings, trusted, remote, forwarded, expected
):
    settings.TRUSTED_PROXY_COUNT = trusted
    settings.AUTH_POST_RATE_LIMITS = {**settings.AUTH_POST_RATE_LIMITS, "login": "1/300"}
    meta = {"REMOTE_ADDR": remote, "HTTP_X_FORWARDED_FOR": forwarded}

    first = bad_login(client, nurse.username, meta)
    # the same client through another proxy hop of ours (another REMOTE_ADDR) is the same address
    second = bad_login(client, nurse.username, {**meta, "REMOTE_ADDR": "10.0.0.9" if trusted else remote})

    assert first.status_code == 200
    assert AccessAttempt.objects.get(username=nurse.username).ip_address == expected
    assert second.status_code == 429


def test_axes_uses_the_database_handler_and_the_apps_client_address():
    # The one handler in every mode (settings.py "Accounts, passwords, lockout" says why).
    assert settings.AXES_HANDLER == "axes.handlers.database.AxesDatabaseHandler"
    assert settings.AXES_CLIENT_IP_CALLABLE == "audit.services.axes_client_address"


# ---------------------------------------------------------------------------
# Every login form is limited, the Django admin's included
# ---------------------------------------------------------------------------
def _password_forms() -> set[str]:
    """Route names of every view that checks a password: LoginView, PasswordChangeView, the admin's login."""
    found: set[str] = set()

    def walk(patterns, namespace):
        for p in patterns:
            if isinstance(p, URLResolver):
                ns = f"{namespace}:{p.namespace}" if namespace and p.namespace else (p.namespace or namespace)
                walk(p.url_patterns, ns)
            elif isinstance(p, URLPattern) and p.name:
                view_class = getattr(p.callback, "view_class", None)
                admin_login = p.callback.__module__.startswith("django.contrib.admin") and p.name == "login"
                if admin_login or (view_class and issubclass(view_class, LoginView | PasswordChangeView)):
                    found.add(f"{namespace}:{p.name}" if namespace else p.name)

    walk(get_resolver().url_patterns, None)
    return found


def test_every_form_that_checks_a_password_has_a_post_limit():
    forms = _password_forms()

    assert {"login", "admin:login", "password_change"} <= forms
    assert forms <= set(settings.AUTH_POST_RATE_LIMITS), forms - set(settings.AUTH_POST_RATE_LIMITS)


def test_admin_login_posts_are_limited_per_address(client, settings):
    settings.AUTH_POST_RATE_LIMITS = {**settings.AUTH_POST_RATE_LIMITS, "admin:login": "3/300"}

    statuses = [
        bad_login(client, f"admin{i}", {"REMOTE_ADDR": ATTACKER}, url=ADMIN_LOGIN).status_code for i in range(5)
    ]
    other = bad_login(client, "admin", {"REMOTE_ADDR": NURSE_DESK}, url=ADMIN_LOGIN)

    assert statuses == [200, 200, 200, 429, 429]
    assert other.status_code == 200
    assert client.get(ADMIN_LOGIN, REMOTE_ADDR=ATTACKER).status_code == 200  # GETs never count


def test_admin_login_has_a_limit_by_default():
    assert settings.AUTH_POST_RATE_LIMITS["admin:login"] == settings.AUTH_POST_RATE_LIMITS["login"] == "20/300"


def test_axes_locks_the_admin_login_too(client, clinic_admin, password):
    clinic_admin.is_staff = True
    clinic_admin.save()
    with time_machine.travel(T0, tick=False):
        for _ in range(settings.AXES_FAILURE_LIMIT):
            bad_login(client, clinic_admin.username, {"REMOTE_ADDR": ATTACKER}, url=ADMIN_LOGIN)

        locked = client.post(
            ADMIN_LOGIN, {"username": clinic_admin.username, "password": password}, REMOTE_ADDR=ATTACKER
        )
        elsewhere = client.post(
            ADMIN_LOGIN, {"username": clinic_admin.username, "password": password}, REMOTE_ADDR=NURSE_DESK
        )

    assert locked.status_code == 429
    assert elsewhere.status_code == 302


# ---------------------------------------------------------------------------
# Two web processes share the count (Redis, as in docker-compose.yml)
# ---------------------------------------------------------------------------
COUNT_IN_ANOTHER_PROCESS = """
import django
django.setup()
from django.test import RequestFactory
from portal.throttling import auth_post_rate_limited

def post_from(address):
    request = RequestFactory().post("/accounts/login/", REMOTE_ADDR=address)
    return auth_post_rate_limited(request=request, route="login")

print(post_from("192.0.2.7"), post_from("192.0.2.7"), post_from("192.0.2.8"))
"""


@pytest.fixture
def redis_cache_url():
    """A Redis cache of this test's own: CACHE_URL when it names Redis, else database 2 on localhost.

    Its keys carry a prefix of their own and are deleted afterwards: nothing else in that database
    is touched (never FLUSHDB).
    """
    base = os.environ.get("CACHE_URL", "")
    base = base.split("?")[0] if base.startswith("redis://") else "redis://127.0.0.1:6379/2"
    try:
        redis.Redis.from_url(base, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        require_service("Redis", f"{base} does not answer: {exc}")
    prefix = f"itb-test-{uuid.uuid4().hex}"
    yield f"{base}?key_prefix={prefix}"
    client = redis.Redis.from_url(base)
    for key in client.scan_iter(match=f"{prefix}:*"):
        client.delete(key)


def test_two_processes_share_the_login_count(client, settings, redis_cache_url):
    # given this process and another one, both counting in the same Redis (two gunicorn workers)
    rate = "3/86400"  # a window of a day: both processes count inside the same one
    settings.CACHES = {"default": environ.Env.cache_url_config(redis_cache_url)}
    settings.AUTH_POST_RATE_LIMITS = {**settings.AUTH_POST_RATE_LIMITS, "login": rate}
    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"

    # when this one takes two POSTs from an address
    here = [bad_login(client, "someone", {"REMOTE_ADDR": "192.0.2.7"}).status_code for _ in range(2)]
    # and the other takes two more from it, and one from another address
    other = subprocess.run(
        [sys.executable, "-c", COUNT_IN_ANOTHER_PROCESS],
        cwd=settings.BASE_DIR,
        env={**os.environ, "CACHE_URL": redis_cache_url, "LOGIN_POST_RATE": rate},
        capture_output=True,
        text=True,
        timeout=120,
    )

    # then the other process went on from this one's count (third allowed, fourth over)...
    assert here == [200, 200]
    assert other.returncode == 0, other.stderr
    assert other.stdout.split() == ["False", "True", "False"]
    # ...and this one sees the other's: the address is over its limit here too
    assert bad_login(client, "someone", {"REMOTE_ADDR": "192.0.2.7"}).status_code == 429
    assert bad_login(client, "someone", {"REMOTE_ADDR": "192.0.2.8"}).status_code == 200
