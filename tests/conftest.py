"""Shared fixtures. Services needed by a test fail (never skip) in CI: see `require_service`."""

import os

import pytest

from tests import factories


def require_service(name: str, reason: str) -> None:
    """Skip locally when a service is absent; fail in CI (ITB_REQUIRE_SERVICES=1)."""
    message = f"{name} unavailable: {reason}"
    if os.environ.get("ITB_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def nurse(db):
    return factories.NurseFactory()


@pytest.fixture
def clinician(db):
    return factories.ClinicianFactory()


@pytest.fixture
def clinic_admin(db):
    return factories.ClinicAdminFactory()


@pytest.fixture
def patient_user(db):
    return factories.PatientUserFactory()


@pytest.fixture
def password():
    return factories.TEST_PASSWORD


@pytest.fixture(autouse=True)
def _http_and_static_files_for_tests(settings):
    """Three production settings that tests cannot use as they are.

    - The test client and live_server speak plain HTTP: no redirect to HTTPS. Production
      (DEBUG off) redirects every request but /healthz; tests/itbclinic/test_settings.py checks
      that. Cookies stay marked Secure: the test client sends them anyway.
    - The manifest storage needs `collectstatic` to have run: tests serve the source files.
    - Argon2 at production cost makes each user creation and login slow: same algorithm, cheaper.
    """
    settings.SECURE_SSL_REDIRECT = False
    settings.PASSWORD_HASHERS = ["tests.hashers.FastArgon2PasswordHasher", *settings.PASSWORD_HASHERS]
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def sms_outbox(settings):
    """Text messages go to `refills.messaging.outbox` in tests, emptied per test (like mail.outbox)."""
    from refills import messaging

    settings.SMS_BACKEND = "refills.sms_backends.LocmemBackend"
    messaging.outbox.clear()
    yield messaging.outbox
    messaging.outbox.clear()
