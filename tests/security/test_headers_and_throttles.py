"""Security headers on every response, rate limits on login and password reset, idle logout."""

import datetime as dt
import io
import logging

import pytest
import time_machine
from django.core import mail
from django.urls import reverse

from audit.models import AccessLog

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("who", ["anonymous", "patient"])
@pytest.mark.parametrize("page", ["login", "password_reset", "portal:patient_home", "portal:calendar_settings"])
def test_security_headers_on_html_pages(client, world, who, page):
    if who == "patient":
        client.force_login(world.a.user)
    kwargs = {"patient_id": world.a.patient.pk} if page.startswith("portal:") else {}
    response = client.get(reverse(page, kwargs=kwargs))
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    if response.status_code == 200:
        assert response["Content-Type"].startswith("text/html")
        csp = response["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert "style=" not in response.content.decode()  # no inline style: CSP would block it
        assert "<script>" not in response.content.decode()


def test_headers_on_the_calendar_feed_and_404s(client, world):
    feed = client.get(reverse("portal:calendar_feed", kwargs={"token": world.a.feed_token}))
    missing = client.get(reverse("portal:calendar_feed", kwargs={"token": "wrong"}))
    for response in (feed, missing):
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["X-Frame-Options"] == "DENY"
    assert feed["Cache-Control"].startswith("private") or "no-store" in feed["Cache-Control"]


def test_password_reset_posts_are_rate_limited_per_address(
    client, world, settings, celery_eager, django_capture_on_commit_callbacks
):
    settings.AUTH_POST_RATE_LIMITS = {**settings.AUTH_POST_RATE_LIMITS, "password_reset": "3/900"}
    url = reverse("password_reset")
    statuses = []
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(5):
            statuses.append(client.post(url, {"email": world.a.user.email}, REMOTE_ADDR="192.0.2.1").status_code)
    assert statuses == [302, 302, 302, 429, 429]
    assert len(mail.outbox) == 3
    # another address is not affected, and GETs never count
    assert client.get(url, REMOTE_ADDR="192.0.2.1").status_code == 200
    assert client.post(url, {"email": world.a.user.email}, REMOTE_ADDR="192.0.2.2").status_code == 302


def test_password_reset_limit_window_ends(client, world, settings, frozen):
    settings.AUTH_POST_RATE_LIMITS = {**settings.AUTH_POST_RATE_LIMITS, "password_reset": "1/60"}
    url = reverse("password_reset")
    assert client.post(url, {"email": "x@example.org"}).status_code == 302
    refused = client.post(url, {"email": "x@example.org"})
    assert refused.status_code == 429
    assert refused["Retry-After"] == "60"
    with time_machine.travel(frozen + dt.timedelta(seconds=61), tick=False):
        assert client.post(url, {"email": "x@example.org"}).status_code == 302


def test_login_posts_are_rate_limited_across_usernames(client, world, settings):
    settings.AUTH_POST_RATE_LIMITS = {**settings.AUTH_POST_RATE_LIMITS, "login": "4/300"}
    url = reverse("login")
    statuses = [
        client.post(url, {"username": f"someone{i}", "password": "guess guess guess"}).status_code for i in range(6)
    ]
    assert statuses == [200, 200, 200, 200, 429, 429]


@pytest.mark.parametrize(
    ("trusted", "statuses"),
    [
        (0, [302, 429, 429]),  # X-Forwarded-For ignored: one address, REMOTE_ADDR
        (1, [302, 302, 429]),  # behind our proxy: the address it saw, per caller
    ],
)
def test_the_limit_counts_per_address_the_access_log_would_record(client, world, settings, trusted, statuses):
    settings.AUTH_POST_RATE_LIMITS = {**settings.AUTH_POST_RATE_LIMITS, "password_reset": "1/60"}
    settings.TRUSTED_PROXY_COUNT = trusted
    url = reverse("password_reset")
    forwarded = ["198.51.100.1", "198.51.100.2", "198.51.100.2"]
    got = [
        client.post(url, {"email": "x@example.org"}, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=f).status_code
        for f in forwarded
    ]
    assert got == statuses


def test_patient_session_ends_after_idle_timeout(client, world, settings, frozen):
    client.force_login(world.a.user)
    url = reverse("portal:patient_home", kwargs={"patient_id": world.a.patient.pk})
    assert client.get(url).status_code == 200
    with time_machine.travel(frozen + settings.SESSION_IDLE_TIMEOUT_PATIENT - dt.timedelta(minutes=1), tick=False):
        assert client.get(url).status_code == 200
    later = frozen + 2 * settings.SESSION_IDLE_TIMEOUT_PATIENT + dt.timedelta(minutes=1)
    with time_machine.travel(later, tick=False):
        response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_logs_never_hold_passwords_tokens_or_session_ids(client, world, password, caplog):
    """Log in for real, use the portal and the feed, fail some requests; grep everything written."""
    console = next(h for h in logging.getLogger().handlers if h.name == "console" or h.filters)
    buffer = io.StringIO()
    old_stream = console.setStream(buffer)
    caplog.set_level(logging.DEBUG)
    try:
        response = client.post(reverse("login"), {"username": world.a.user.username, "password": password})
        assert response.status_code == 302
        session_id = client.cookies["sessionid"].value
        home = reverse("portal:patient_home", kwargs={"patient_id": world.a.patient.pk})
        client.get(home)
        client.get(reverse("portal:patient_home", kwargs={"patient_id": world.b.patient.pk}))  # 404, logged
        created = client.post(
            reverse("portal:calendar_settings", kwargs={"patient_id": world.a.patient.pk}), {"action": "create"}
        )
        new_token = created.context["new_url"].rsplit("/", 1)[1].removesuffix(".ics")
        client.logout()
        client.get(reverse("portal:calendar_feed", kwargs={"token": new_token}))
        client.get(reverse("portal:calendar_feed", kwargs={"token": world.a.feed_token}))  # revoked: 404, logged
        client.post(reverse("login"), {"username": world.a.user.username, "password": password + "x"})
    finally:
        console.setStream(old_stream)
    written = buffer.getvalue() + "\n".join(r.getMessage() for r in caplog.records)
    assert "Not Found" in written  # the 404s were logged...
    assert "[redacted]" in buffer.getvalue()  # ...with the token masked by the handler's filter
    stored = "\n".join(
        " ".join(str(v) for v in row)
        for row in AccessLog.objects.values_list("username", "resource", "detail", "method")
    )
    assert AccessLog.objects.filter(via_token=True).count() == 1
    for secret in (password, password + "x", session_id, new_token, world.a.feed_token):
        assert secret not in buffer.getvalue(), secret
        assert secret not in stored, secret


def test_api_is_throttled_per_user(client, world, monkeypatch):
    from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

    # The classes captured the configured rates at import: lower them for this test only.
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "3/min", "anon": "2/min"})
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", {"user": "3/min", "anon": "2/min"})
    url = "/api/patients/"
    anonymous = [client.get(url).status_code for _ in range(3)]
    client.force_login(world.nurse)
    nurse = [client.get(url).status_code for _ in range(4)]
    assert anonymous == [403, 403, 403]  # refused before any throttle counts: nothing to spend
    assert nurse == [200, 200, 200, 429]
