"""docker-compose.yml and the Dockerfile agree with the code (Docker itself cannot run here)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.management import get_commands

BASE_DIR = Path(settings.BASE_DIR)
COMPOSE = yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
WEB = ["web1", "web2"]
WORKERS = ["scans1", "scans2", "sends1", "sends2"]
BEATS = ["beat1", "beat2"]
APP_SERVICES = ["migrate", *WEB, *WORKERS, *BEATS]
REQUIRED_VARIABLES = {
    "DJANGO_SECRET_KEY",
    "DJANGO_DEBUG",
    "DJANGO_ALLOWED_HOSTS",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CLINIC_TIME_ZONE",
    "EMAIL_URL",
}
# Read by the postgres image, not by the app.
POSTGRES_IMAGE_VARIABLES = {"POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"}


def settings_variables() -> set[str]:
    """Every name settings.py reads: env("X"), env.bool("X"), env.db("X"), env.email_url("X")..."""
    source = (BASE_DIR / "itbclinic" / "settings.py").read_text()
    return set(re.findall(r"\benv(?:\.\w+)?\(\s*\"([A-Z][A-Z0-9_]*)\"", source))


def interpolated_variables(text: str) -> set[str]:
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))


def command_of(service: str) -> list[str]:
    command = SERVICES[service]["command"]
    assert isinstance(command, list), f"{service}: use the exec form (a list), no shell in between"
    return command


def test_the_services_are_the_production_shape():
    assert set(SERVICES) == {"postgres", "pgbouncer", "redis", *APP_SERVICES}
    for name in APP_SERVICES:
        assert SERVICES[name]["build"] == "."
        assert SERVICES[name]["image"] == "itbclinic:latest"


def test_the_app_services_set_exactly_variables_the_settings_read():
    known = settings_variables()
    assert known >= REQUIRED_VARIABLES  # the documented names exist in settings.py
    for name in APP_SERVICES:
        environment = SERVICES[name]["environment"]
        assert set(environment) >= REQUIRED_VARIABLES, name
        assert set(environment) - known == set(), f"{name} sets variables the settings never read"
        assert environment["DJANGO_DEBUG"] == "false"


def test_every_interpolated_variable_is_read_by_the_settings_or_the_postgres_image():
    text = (BASE_DIR / "docker-compose.yml").read_text()

    assert interpolated_variables(text) - settings_variables() - POSTGRES_IMAGE_VARIABLES == set()


def test_secrets_come_from_the_environment_and_are_required():
    environment = SERVICES["web1"]["environment"]
    assert environment["DJANGO_SECRET_KEY"].startswith("${DJANGO_SECRET_KEY:?")
    assert "${POSTGRES_PASSWORD:?" in environment["DATABASE_URL"]
    assert SERVICES["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    assert "env_file" not in str(COMPOSE)  # only the names listed above reach the containers


def test_the_database_url_goes_through_pgbouncer_in_transaction_mode_to_postgres():
    import environ

    database = environ.Env.db_url_config(
        SERVICES["web1"]["environment"]["DATABASE_URL"].replace(
            "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in .env}", "pw"
        )
    )
    postgres = SERVICES["postgres"]["environment"]
    bouncer = SERVICES["pgbouncer"]["environment"]
    assert (database["ENGINE"], database["HOST"], database["PORT"]) == (
        "django.db.backends.postgresql",
        "pgbouncer",
        int(bouncer["LISTEN_PORT"]),
    )
    assert (bouncer["DB_HOST"], bouncer["POOL_MODE"]) == ("postgres", "transaction")
    assert (database["NAME"], database["USER"]) == (postgres["POSTGRES_DB"], postgres["POSTGRES_USER"])
    assert (bouncer["DB_NAME"], bouncer["DB_USER"]) == (postgres["POSTGRES_DB"], postgres["POSTGRES_USER"])
    # Transaction pooling needs no server-side cursors and no persistent connections (settings.py).
    assert SERVICES["web1"]["environment"]["DATABASE_TRANSACTION_POOLING"] == "true"
    assert SERVICES["web1"]["environment"]["CELERY_BROKER_URL"] == "redis://redis:6379/0"


def test_postgres_and_redis_keep_their_data_and_report_health():
    assert "pgdata:/var/lib/postgresql/data" in SERVICES["postgres"]["volumes"]
    assert "pgdata" in COMPOSE["volumes"]
    assert "pg_isready" in " ".join(SERVICES["postgres"]["healthcheck"]["test"])
    assert SERVICES["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_start_order_waits_for_health_and_the_migration():
    assert SERVICES["migrate"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "pgbouncer": {"condition": "service_started"},
    }
    assert SERVICES["migrate"]["restart"] == "no"
    for name in [*WEB, *WORKERS, *BEATS]:
        assert SERVICES[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
            "pgbouncer": {"condition": "service_started"},
        }, name


def test_two_of_everything_beats_claiming_each_run_and_a_worker_pair_per_queue():
    beats = [name for name, service in SERVICES.items() if "beat" in service.get("command", [])]
    assert beats == BEATS
    # Each beat its own state file; the claim in the database keeps them from doubling a run.
    assert len({next(a for a in command_of(b) if a.startswith("--schedule=")) for b in BEATS}) == 2
    assert settings.CELERY_BEAT_SCHEDULER == "itbclinic.beat:ClaimingScheduler"
    queues = {}
    for name in WORKERS:
        command = command_of(name)
        assert "beat" not in command and "-B" not in command  # no embedded beat in a scalable worker
        queues[name] = command[command.index("-Q") + 1]
    assert queues == {"scans1": "scans", "scans2": "scans", "sends1": "sends", "sends2": "sends"}
    assert {settings.CELERY_SCANS_QUEUE, settings.CELERY_SENDS_QUEUE} == {"scans", "sends"}
    assert len({next(a for a in command_of(n) if a.startswith("--hostname=")) for n in WORKERS}) == 4
    assert SERVICES["web2"]["command"] == SERVICES["web1"]["command"]


def run(argv: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "DJANGO_SECRET_KEY": "compose-test-" + "x" * 50, "PYTHONPATH": str(BASE_DIR)}
    binary = Path(sys.executable).parent / argv[0]
    argv = [str(binary) if binary.exists() else argv[0], *argv[1:]]
    return subprocess.run(argv, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120)


def test_the_web_command_loads_the_wsgi_application():
    command = command_of("web1")
    assert command[:2] == ["gunicorn", "itbclinic.wsgi:application"]
    assert "whitenoise.middleware.WhiteNoiseMiddleware" in settings.MIDDLEWARE  # gunicorn serves static files

    result = run([*command, "--check-config"])  # gunicorn imports the app, then exits

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("service", "kind"), [("scans1", "worker"), ("sends1", "worker"), ("beat1", "beat")])
def test_the_celery_commands_load_the_app(service, kind):
    command = command_of(service)
    assert command[:4] == ["celery", "-A", "itbclinic", kind]

    result = run([*command, "--help"])  # celery resolves -A itbclinic before printing the help

    assert result.returncode == 0, result.stderr
    assert f"Usage: celery {kind}" in result.stdout


def test_the_migrate_step_runs_the_django_command():
    assert command_of("migrate") == ["python", "manage.py", "migrate", "--noinput"]
    assert (BASE_DIR / "manage.py").exists()
    assert get_commands()["migrate"] == "django.core"


def test_the_dockerfile_builds_a_slim_non_root_image_with_the_pinned_requirements():
    dockerfile = (BASE_DIR / "Dockerfile").read_text()
    lines = [line.strip() for line in dockerfile.splitlines() if line.strip() and not line.startswith("#")]

    assert lines[0] == "FROM python:3.11-slim"
    assert "COPY requirements.txt ." in lines
    assert "RUN pip install -r requirements.txt" in lines
    assert lines.index("COPY requirements.txt .") < lines.index("COPY . .")  # dependency layer cached
    assert any("manage.py collectstatic --noinput" in line for line in lines)
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users == ["itb"]
    assert lines.index("USER itb") > max(i for i, line in enumerate(lines) if line.startswith("RUN "))
    requirements = (BASE_DIR / "requirements.txt").read_text()
    assert re.search(r"^gunicorn==", requirements, re.M)
    assert re.search(r"^whitenoise==", requirements, re.M)


def test_the_build_context_leaves_out_local_state_and_secrets():
    ignored = (BASE_DIR / ".dockerignore").read_text().split()

    assert {".git", ".venv", "var", ".env", "*.sqlite3", "staticfiles"} <= set(ignored)
