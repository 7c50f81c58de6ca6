"""Settings come from the environment (read at import, so each case runs in a fresh interpreter)."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

BASE_DIR = Path(settings.BASE_DIR)
DOCUMENTED = [
    "DJANGO_SECRET_KEY",
    "DJANGO_DEBUG",
    "DJANGO_ALLOWED_HOSTS",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CELERY_BROKER_DATA_DIR",
    "CLINIC_TIME_ZONE",
    "EMAIL_URL",
    "CACHE_URL",
]
PROBE = """
import json
from itbclinic import settings as s
db = s.DATABASES["default"]
print(json.dumps({
    "DEBUG": s.DEBUG,
    "SECRET_KEY": s.SECRET_KEY,
    "ALLOWED_HOSTS": s.ALLOWED_HOSTS,
    "DB_ENGINE": db["ENGINE"], "DB_NAME": str(db["NAME"]), "DB_HOST": db.get("HOST", ""),
    "DB_USER": db.get("USER", ""), "DB_TEST_NAME": str(db.get("TEST", {}).get("NAME", "")),
    "DB_OPTIONS": sorted(db.get("OPTIONS", {})),
    "CELERY_BROKER_URL": s.CELERY_BROKER_URL,
    "BROKER_OPTIONS": s.CELERY_BROKER_TRANSPORT_OPTIONS,
    "TIME_ZONE": s.TIME_ZONE, "CELERY_TIMEZONE": s.CELERY_TIMEZONE, "USE_TZ": s.USE_TZ,
    **{k: getattr(s, k, None) for k in ("EMAIL_BACKEND", "EMAIL_HOST", "EMAIL_PORT", "EMAIL_USE_TLS")},
    "EMAIL_HOST_USER": getattr(s, "EMAIL_HOST_USER", None),
    "SECURE_SSL_REDIRECT": s.SECURE_SSL_REDIRECT, "SESSION_COOKIE_SECURE": s.SESSION_COOKIE_SECURE,
    "CSRF_COOKIE_SECURE": s.CSRF_COOKIE_SECURE, "SECURE_HSTS_SECONDS": s.SECURE_HSTS_SECONDS,
    "STATICFILES_BACKEND": s.STORAGES["staticfiles"]["BACKEND"],
}))
"""


def clean_env(**overrides: str) -> dict[str, str]:
    """This process's environment without the documented variables (CI sets some), plus overrides."""
    env = {k: v for k, v in os.environ.items() if k not in DOCUMENTED and not k.startswith("DJANGO_")}
    env["PYTHONPATH"] = str(BASE_DIR)
    env.update(overrides)
    return env


def import_settings(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=BASE_DIR, env=clean_env(**env), capture_output=True, text=True, timeout=60
    )


def read_settings(**env: str) -> dict:
    result = import_settings(**env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_defaults_are_the_local_demo(tmp_path):
    # given no environment but the one thing production cannot default: a secret key of its own
    # (the broker folder redirected so the test leaves var/ alone)
    values = read_settings(CELERY_BROKER_DATA_DIR=str(tmp_path / "broker"), DJANGO_SECRET_KEY=secrets.token_urlsafe(50))

    assert values["DEBUG"] is False
    assert values["ALLOWED_HOSTS"] == ["localhost", "127.0.0.1", "[::1]", "testserver"]
    assert values["DB_ENGINE"] == "django.db.backends.sqlite3"
    assert values["DB_NAME"] == str(BASE_DIR / "var" / "db.sqlite3")
    assert values["DB_TEST_NAME"] == str(BASE_DIR / "var" / "test-db.sqlite3")
    assert values["DB_OPTIONS"] == ["init_command", "timeout", "transaction_mode"]
    assert values["CELERY_BROKER_URL"] == "filesystem://"
    assert values["BROKER_OPTIONS"]["data_folder_in"] == str(tmp_path / "broker" / "queue")
    assert (tmp_path / "broker" / "queue").is_dir()
    assert (values["TIME_ZONE"], values["CELERY_TIMEZONE"], values["USE_TZ"]) == ("Europe/London",) * 2 + (True,)
    assert values["EMAIL_BACKEND"] == "django.core.mail.backends.console.EmailBackend"
    # DEBUG off means HTTPS on, even with no configuration at all.
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] == 31536000
    assert values["STATICFILES_BACKEND"] == "whitenoise.storage.CompressedManifestStaticFilesStorage"


def test_every_documented_variable_is_read():
    key = secrets.token_urlsafe(50)

    values = read_settings(
        DJANGO_SECRET_KEY=key,
        DJANGO_DEBUG="false",
        DJANGO_ALLOWED_HOSTS="clinic.example.org,itb.example.org",
        DATABASE_URL="postgres://itb:pw@db.example.org:5432/itbclinic",
        CELERY_BROKER_URL="redis://cache.example.org:6379/2",
        CLINIC_TIME_ZONE="America/New_York",
        EMAIL_URL="smtp+tls://mailer:pw@smtp.example.org:587",
    )

    assert values["SECRET_KEY"] == key
    assert values["ALLOWED_HOSTS"] == ["clinic.example.org", "itb.example.org"]
    assert (values["DB_ENGINE"], values["DB_NAME"], values["DB_HOST"], values["DB_USER"]) == (
        "django.db.backends.postgresql",
        "itbclinic",
        "db.example.org",
        "itb",
    )
    assert values["CELERY_BROKER_URL"] == "redis://cache.example.org:6379/2"
    assert values["BROKER_OPTIONS"] == {"visibility_timeout": 3600}
    assert (values["TIME_ZONE"], values["CELERY_TIMEZONE"]) == ("America/New_York", "America/New_York")
    assert values["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert (values["EMAIL_HOST"], values["EMAIL_PORT"], values["EMAIL_USE_TLS"], values["EMAIL_HOST_USER"]) == (
        "smtp.example.org",
        587,
        True,
        "mailer",
    )


@pytest.mark.parametrize(
    "key", ["", "django-insecure-local-demo-key-not-for-production"], ids=["no-key", "the-public-demo-key"]
)
def test_production_mode_refuses_to_start_without_a_key_of_its_own(tmp_path, key):
    env = {"CELERY_BROKER_DATA_DIR": str(tmp_path), **({"DJANGO_SECRET_KEY": key} if key else {})}

    result = import_settings(**env)

    assert result.returncode == 1
    assert "ImproperlyConfigured: DJANGO_SECRET_KEY must be set to a secret of your own" in result.stderr
    assert result.stdout == ""


def test_debug_on_is_the_plain_http_local_demo(tmp_path):
    # given no key at all: the local demo (`make run`) starts with the public demo key
    values = read_settings(DJANGO_DEBUG="true", CELERY_BROKER_DATA_DIR=str(tmp_path))

    assert values["DEBUG"] is True
    assert values["SECRET_KEY"] == "django-insecure-local-demo-key-not-for-production"
    assert [values[k] for k in ("SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE")] == [False] * 3
    assert values["SECURE_HSTS_SECONDS"] == 0
    assert values["STATICFILES_BACKEND"] == "django.contrib.staticfiles.storage.StaticFilesStorage"


def run_deploy_check(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def production_env(tmp_path, **overrides: str) -> dict[str, str]:
    return {
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "clinic.example.org",
        "CELERY_BROKER_DATA_DIR": str(tmp_path),
        # The check reads the configuration only: no Redis server needs to answer.
        "CACHE_URL": "redis://cache.example.org:6379/1",
        **overrides,
    }


def test_deploy_check_is_clean_with_the_production_environment(tmp_path):
    result = run_deploy_check(**production_env(tmp_path))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


@pytest.mark.parametrize(
    ("override", "check_id"),
    [
        # Not even a warning: without a key of its own, production mode does not start at all.
        ({"DJANGO_SECRET_KEY": ""}, "ImproperlyConfigured: DJANGO_SECRET_KEY must be set"),
        ({"DJANGO_DEBUG": "true"}, "security.W018"),
        # Login limits counted per process: each gunicorn worker would multiply them.
        ({"CACHE_URL": ""}, "portal.W001"),
    ],
    ids=["demo-secret-key", "debug-on", "per-process-cache"],
)
def test_deploy_check_fails_on_a_demo_setting(tmp_path, override, check_id):
    env = production_env(tmp_path, **override)
    env = {k: v for k, v in env.items() if v}

    result = run_deploy_check(**env)

    assert result.returncode == 1
    assert check_id in result.stderr
