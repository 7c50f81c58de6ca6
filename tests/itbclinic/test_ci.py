"""The CI script's promises, and the pip-audit gate that cannot pass by auditing nothing."""

import importlib.util
import os
from pathlib import Path

import pytest
from django.conf import settings

CI_DIR = Path(settings.BASE_DIR) / ".ci"


def load_pip_audit_gate():
    spec = importlib.util.spec_from_file_location("pip_audit_gate", CI_DIR / "pip_audit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gate = load_pip_audit_gate()
SKIPPED = {"name": "django", "skip_reason": "Dependency not found on PyPI and could not be audited: django (5.2.19)"}
CLEAN = {"name": "celery", "version": "5.5.3", "vulns": []}
VULNERABLE = {
    "name": "oldlib",
    "version": "1.0",
    "vulns": [{"id": "PYSEC-2099-1", "fix_versions": ["1.1"], "aliases": []}],
}


def test_a_known_vulnerability_fails():
    code, lines = gate.evaluate({"dependencies": [CLEAN, VULNERABLE], "fixes": []}, require_audit=False)

    assert code == 1
    assert lines == ["pip-audit: oldlib 1.0: PYSEC-2099-1 (fixed in 1.1)"]


def test_nothing_audited_warns_and_fails_only_when_an_audit_is_required():
    report = {"dependencies": [SKIPPED, SKIPPED], "fixes": []}

    assert gate.evaluate(report, require_audit=False)[0] == 0
    assert gate.evaluate(report, require_audit=True)[0] == 1
    assert "NOTHING AUDITED" in gate.evaluate(report, require_audit=False)[1][0]


def test_a_partial_audit_passes_and_names_what_was_skipped():
    code, lines = gate.evaluate({"dependencies": [CLEAN, SKIPPED], "fixes": []}, require_audit=True)

    assert code == 0
    assert lines == [
        "pip-audit: 1 packages audited, no known vulnerabilities.",
        f"pip-audit: not audited: {SKIPPED['skip_reason']}",
    ]


@pytest.fixture(scope="module")
def ci_run() -> str:
    return (CI_DIR / "run").read_text()


def test_the_ci_script_is_strict_bash_and_executable(ci_run):
    assert ci_run.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in ci_run
    assert os.access(CI_DIR / "run", os.X_OK)


def test_the_ci_script_runs_against_postgresql_and_redis_and_fails_on_a_missing_service(ci_run):
    assert 'export DATABASE_URL="postgres://postgres@127.0.0.1:5432/itbclinic_ci"' in ci_run
    assert 'export CELERY_BROKER_URL="redis://127.0.0.1:6379/0"' in ci_run
    assert "export ITB_REQUIRE_SERVICES=1" in ci_run
    assert "pg_ctlcluster --skip-systemctl-redirect" in ci_run
    assert "redis-server --daemonize yes" in ci_run
    assert ci_run.index("make lint") < ci_run.index("make test")
