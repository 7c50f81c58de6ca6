"""Who may do what, and whose records each user sees (SECURITY.md "Access").

Every operation is enumerated from the generated OpenAPI schema; every (role, route, method) cell
is asserted, including the methods a route does not offer (405, or 404 when the object is not
the caller's to see). Patient A is then pointed at patient B's objects on every route.
"""

import json
import re

import pytest
from django.db import transaction
from django.forms.models import model_to_dict

from itbclinic.accounts.models import User
from patients.models import AshworthScore, Patient, ScreeningTrial, TrialAssessment, TrialStep
from pumps.models import DosePrescription, Drug, DrugPumpInterval, Implant, PumpModel
from refills.models import Appointment, RefillVisit
from tests.api import stats
from tests.api.routes import (
    METHODS,
    OPERATIONS,
    RESOURCES,
    api_schema,
    expected_outcome,
    fill,
    is_object_route,
    outcome_of,
    schema_operations,
)

pytestmark = pytest.mark.django_db

SCHEMA = api_schema()
PATHS = sorted({path for path, _ in schema_operations(SCHEMA)})
ALL_MODELS = [
    Patient,
    ScreeningTrial,
    TrialStep,
    TrialAssessment,
    AshworthScore,
    PumpModel,
    Drug,
    DrugPumpInterval,
    Implant,
    DosePrescription,
    RefillVisit,
    Appointment,
    User,
]


def test_every_schema_operation_is_classified():
    in_schema = schema_operations(SCHEMA)

    assert in_schema - set(OPERATIONS) == set(), "classify these operations in tests/api/routes.py OPERATIONS"
    assert set(OPERATIONS) - in_schema == set(), "these classified operations are gone from the schema"
    assert {path.split("/")[2] for path in PATHS} == set(RESOURCES)


@pytest.mark.parametrize("role", ["anonymous", "patient", "nurse", "clinician", "clinic_admin"])
def test_role_route_method_matrix(world, client_for, no_throttling, role):
    client = client_for(role)
    ids = world.ids(world.a)
    mismatches = []
    cells = 0
    for path in PATHS:
        for method in METHODS:
            operation = OPERATIONS.get((path, method))
            body = operation.body(world, world.a) if operation and operation.body else None
            if body is None and method in ("POST", "PUT", "PATCH"):
                body = {}
            expected = expected_outcome(role, path, method)
            # Each cell runs in a savepoint rolled back after it: cells cannot affect each other.
            with transaction.atomic():
                response = client.call(method, fill(path, ids), body)
                transaction.set_rollback(True)
            cells += 1
            if outcome_of(response.status_code) != expected:
                mismatches.append(
                    f"{role:12} {method:6} {path}: expected {expected}, got {response.status_code} "
                    f"{response.content[:200]!r}"
                )
    stats.record("matrix_cells", cells)
    print(f"\n{role}: {cells} cells ({len(PATHS)} routes x {len(METHODS)} methods)")
    assert mismatches == [], "\n".join(mismatches)


# ---------------------------------------------------------------------------
# Patient A against patient B's objects
# ---------------------------------------------------------------------------
def snapshot(world) -> dict:
    """Patient B's records (every field and its history length) and the row count of every model."""
    b = world.b
    rows = {}
    for name, obj in b.ids().items():
        record = type(getattr(b, name))._default_manager.get(pk=obj)
        rows[name] = (json.dumps(model_to_dict(record), default=str, sort_keys=True), record.history.count())
    rows["counts"] = {model.__name__: model._default_manager.count() for model in ALL_MODELS}
    rows["staff_users"] = list(User.objects.filter(is_staff=True).values_list("pk", flat=True))
    return rows


def test_patient_a_gets_404_for_patient_b_objects_on_every_route_and_method(world, client_for, no_throttling):
    client = client_for("patient")
    ids = world.ids(world.b)
    before = snapshot(world)
    wrong = []
    object_routes = [path for path in PATHS if is_object_route(path)]
    for path in object_routes:
        for method in METHODS:
            body = {"reason": "x", "patient": world.a.patient.pk, "status": "cancelled", "cancel_reason": "x"}
            response = client.call(method, fill(path, ids), None if method in ("GET", "DELETE") else body)
            if response.status_code != 404:
                wrong.append(f"{method} {path}: {response.status_code}")

    stats.record("bola_cells", len(object_routes) * len(METHODS))
    assert wrong == []
    assert snapshot(world) == before


LIST_ROUTES = sorted(path for path, method in OPERATIONS if method == "GET" and not is_object_route(path))


@pytest.mark.parametrize("path", LIST_ROUTES)
def test_list_filters_never_show_patient_a_another_patients_rows(world, client_for, path):
    client = client_for("patient")
    b = world.b
    own = client.call("GET", path)
    if "patient" not in RESOURCES[path.split("/")[2]].readers:
        assert own.status_code == 403
        return
    own_ids = {row["id"] for row in own.json()["results"]}
    assert own_ids, "patient A has a record of this kind in the world"
    b_ids = ",".join(str(i) for i in b.ids().values())
    probes = [
        f"?patient={b.patient.pk}",
        f"?implant={b.implant.pk}",
        f"?id__in={b_ids}",
        f"?id={b.patient.pk}",
        f"?pk={b.patient.pk}",
        f"?search={b.patient.mrn}",
        f"?search={b.implant.serial_number}",
        f"?serial_number={b.implant.serial_number}",
        "?ordering=-id",
        "?ordering=patient__family_name",
        "?ordering=implant__patient__mrn",
        "?page_size=200",
    ]
    for probe in probes:
        response = client.call("GET", path + probe)
        assert response.status_code in (200, 400), probe
        if response.status_code == 200:
            assert {row["id"] for row in response.json()["results"]} <= own_ids, probe
    if path != "/api/patients/":
        assert client.call("GET", f"{path}?patient={b.patient.pk}").json()["results"] == []


def test_patient_sees_own_records_read_only(world, client_for):
    client = client_for("patient")

    assert [row["id"] for row in client.call("GET", "/api/patients/").json()["results"]] == [world.a.patient.pk]
    assert [row["id"] for row in client.call("GET", "/api/implants/").json()["results"]] == [world.a.implant.pk]
    assert [row["id"] for row in client.call("GET", "/api/refill-visits/").json()["results"]] == [world.a.visit.pk]
    assert [row["id"] for row in client.call("GET", "/api/appointments/").json()["results"]] == [world.a.appointment.pk]
    assert [row["id"] for row in client.call("GET", "/api/dose-prescriptions/").json()["results"]] == [world.a.dose.pk]
    assert client.call("PATCH", f"/api/patients/{world.a.patient.pk}/", {"notes": "x"}).status_code == 403


# ---------------------------------------------------------------------------
# What a patient receives: the field sets, exactly
# ---------------------------------------------------------------------------
PATIENT_FIELDS = {
    "/api/patients/{id}/": {
        "id",
        "mrn",
        "given_name",
        "family_name",
        "date_of_birth",
        "email",
        "phone",
        "reminder_consent",
        "reminder_channel",
    },
    "/api/implants/{id}/": {
        "id",
        "pump_model_name",
        "serial_number",
        "implanted_on",
        "hospital",
        "mri_notes",
        "eri_reported_on",
        "explanted_on",
        "is_active",
        "forecast_alarm_on",
        "forecast_due_by",
    },
    "/api/dose-prescriptions/{id}/": {
        "id",
        "implant",
        "effective_at",
        "daily_dose_mcg",
        "concentration_mcg_per_ml",
        "dosing_mode",
    },
    "/api/refill-visits/{id}/": {
        "id",
        "implant",
        "performed_at",
        "volume_added_ml",
        "concentration_mcg_per_ml",
        "daily_dose_after_mcg",
        "alarm_on",
        "due_by",
    },
    "/api/appointments/{id}/": {"id", "kind", "starts_at", "duration_minutes", "place", "status"},
}


@pytest.mark.parametrize("path", sorted(PATIENT_FIELDS))
def test_patient_facing_field_sets_are_exactly_the_minimum(world, client_for, path):
    ids = world.ids(world.a)

    one = client_for("patient").call("GET", fill(path, ids))
    many = client_for("patient").call("GET", path.replace("{id}/", ""))
    staff = client_for("nurse").call("GET", fill(path, ids))

    assert set(one.json()) == PATIENT_FIELDS[path]
    assert [set(row) for row in many.json()["results"]] == [PATIENT_FIELDS[path]]
    # Staff see more: the patient's set is a strict subset of theirs.
    assert PATIENT_FIELDS[path] < set(staff.json())


def test_every_route_a_patient_can_read_has_its_field_set_asserted():
    readable = {
        path
        for path, method in OPERATIONS
        if method == "GET" and is_object_route(path) and "patient" in OPERATIONS[(path, method)].allowed
    }

    assert readable == set(PATIENT_FIELDS)


# ---------------------------------------------------------------------------
# No mass assignment
# ---------------------------------------------------------------------------
def test_patient_posting_privileged_fields_changes_nothing(world, client_for, no_throttling):
    client = client_for("patient")
    before = snapshot(world)
    payload = {
        "patient": world.b.patient.pk,
        "status": "deceased",
        "is_staff": True,
        "is_superuser": True,
        "user": world.a.user.pk,
        "groups": ["nurse"],
    }
    answers = {}
    for path, method in OPERATIONS:
        if method in ("POST", "PATCH"):
            for side in (world.a, world.b):
                url = fill(path, world.ids(side))
                answers[(method, url)] = client.call(method, url, payload).status_code

    assert set(answers.values()) <= {403, 404}
    assert snapshot(world) == before
    world.a.user.refresh_from_db()
    assert (
        world.a.user.is_staff,
        world.a.user.is_superuser,
        list(world.a.user.groups.values_list("name", flat=True)),
    ) == (
        False,
        False,
        ["patient"],
    )


def test_every_api_url_pattern_is_in_the_schema():
    """A route under /api/ left out of the schema (schema=None, a plain view) would escape the matrix."""
    from django.urls import reverse

    from itbclinic import api_urls

    routed = {
        reverse(f"api:{pattern.name}", kwargs=dict.fromkeys(pattern.pattern.regex.groupindex, "7"))
        for pattern in api_urls.urlpatterns
        # not-found answers everything else; FHIR's $everything is a FHIR operation, documented in
        # docs/fhir.md rather than the OpenAPI schema (the generator drops its "$"), and in the URL matrix.
        if pattern.name not in ("not-found", "fhir-patient-everything")
    }
    documented = {re.sub(r"\{\w+\}", "7", path) for path in PATHS}

    assert routed == documented
