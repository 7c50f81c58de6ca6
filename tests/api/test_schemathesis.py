"""Schemathesis over the whole generated schema, as a nurse and as a patient, against the real
database (the WSGI app in-process, inside the test's transaction; the world of conftest.py).

Checks: no server error; status code, content type, headers and body conform to the schema; data
that breaks the schema is rejected. Left out: `positive_data_acceptance` (schema-valid input can
still break a clinical rule: 400 is right), `ignored_auth` (it expects 401; session auth answers
403, and the access matrix checks anonymous calls on every route), `unsupported_method` (the
matrix asserts every method of every route) and the stateful checks.

Bounded: SCHEMATHESIS_MAX_EXAMPLES per operation and phase (default 15).
"""

import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.middleware.csrf import CSRF_ALLOWED_CHARS
from django.test import Client
from django.utils.crypto import get_random_string
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api import stats
from tests.api.routes import api_schema, resource_of

SCHEMA = schemathesis.openapi.from_dict(api_schema())
# The coverage phase enumerates boundary values of every parameter: hundreds of cases per
# operation, unbounded by max_examples. Examples and fuzzing (positive and negative) stay.
SCHEMA.config.phases.coverage.enabled = False
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "15"))
BOUNDED = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


@pytest.fixture
def session_of(world, no_throttling):
    """Cookies and CSRF header of a logged-in user, and the WSGI app built with the test settings."""
    app = get_wsgi_application()
    sessions = {}
    # As Django's test client does: a request must not close the test's connection (and with it
    # the transaction the world lives in) when it ends.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)

    def _session_of(role: str):
        if role not in sessions:
            client = Client()
            client.force_login(world.users[role])
            secret = get_random_string(32, allowed_chars=CSRF_ALLOWED_CHARS)
            sessions[role] = {
                "app": app,
                "cookies": {"sessionid": client.cookies["sessionid"].value, "csrftoken": secret},
                "headers": {"X-CSRFToken": secret},
            }
        return sessions[role]

    yield _session_of
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


SEEN: set[tuple[str, str]] = set()


def steer_to_the_world(case, world) -> None:
    """Point valid cases at patient A's real records, so they reach the services, not just a 404.

    Invalid (negative) cases are left as generated: they must be rejected whatever they name.
    """
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    ids = world.ids(world.a)
    for name in list(case.path_parameters or {}):
        case.path_parameters[name] = ids[resource_of(case.path).key if name == "id" else name.removesuffix("_id")]
    if isinstance(case.body, dict):
        references = {**ids, "prescriber": world.clinician.pk}
        for name in case.body.keys() & references.keys():
            case.body[name] = references[name]


def call(case, session, role: str):
    response = case.call_and_validate(checks=CHECKS, **session)
    if (role, case.operation.label) not in SEEN:
        SEEN.add((role, case.operation.label))
        stats.record(f"schemathesis_operations_{role}")
    stats.record(f"schemathesis_cases_{role}")
    stats.record(f"schemathesis_{role}_{response.status_code // 100}xx")
    return response


@SCHEMA.parametrize()
@BOUNDED
@pytest.mark.slow
def test_api_conforms_to_its_schema_as_a_nurse(case, world, session_of):
    steer_to_the_world(case, world)
    call(case, session_of("nurse"), "nurse")


@SCHEMA.parametrize()
@BOUNDED
@pytest.mark.slow
def test_api_conforms_to_its_schema_as_a_patient(case, world, session_of):
    steer_to_the_world(case, world)
    call(case, session_of("patient"), "patient")
