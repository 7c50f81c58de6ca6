"""Every API operation of the generated OpenAPI schema, with who may call it and a valid body.

The access tests enumerate the schema (not this file): an operation that appears in the schema
without an entry in OPERATIONS fails them, so a new route cannot escape the checks.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

from drf_spectacular.generators import SchemaGenerator

from tests.helpers import REFILL_LOTS, SAFETY_CHECKLIST_ALL_DONE

NURSE, CLINICIAN, ADMIN, PATIENT = "nurse", "clinician", "clinic_admin", "patient"
STAFF_READERS = frozenset({NURSE, CLINICIAN})
CATALOGUE_READERS = frozenset({NURSE, CLINICIAN, ADMIN})
ALL_STAFF = frozenset({NURSE, CLINICIAN, ADMIN})
EVERYONE = frozenset({NURSE, CLINICIAN, ADMIN, PATIENT})
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def api_schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def schema_operations(schema: dict | None = None) -> set[tuple[str, str]]:
    schema = schema or api_schema()
    return {
        (path, method.upper())
        for path, item in schema["paths"].items()
        if path.startswith("/api/")
        for method in item
        if method.upper() in METHODS
    }


@dataclass(frozen=True)
class Resource:
    """A collection: the world's object its `{id}` names, and the roles that may read it."""

    key: str
    readers: frozenset[str]


RESOURCES = {
    "patients": Resource("patient", EVERYONE),
    "trials": Resource("trial", STAFF_READERS),
    "pump-models": Resource("pump_model", CATALOGUE_READERS),
    "drugs": Resource("drug", CATALOGUE_READERS),
    "drug-pump-intervals": Resource("interval", CATALOGUE_READERS),
    "implants": Resource("implant", EVERYONE),
    "dose-prescriptions": Resource("dose", frozenset({NURSE, CLINICIAN, PATIENT})),
    "refill-visits": Resource("visit", frozenset({NURSE, CLINICIAN, PATIENT})),
    "appointments": Resource("appointment", frozenset({NURSE, CLINICIAN, PATIENT})),
    "refill-forecast": Resource("", STAFF_READERS),
    "due-for-refill": Resource("", STAFF_READERS),
    "alerts": Resource("", ALL_STAFF),
}


def resource_of(path: str) -> Resource:
    return RESOURCES[path.split("/")[2]]


def is_object_route(path: str) -> bool:
    return "{id}" in path


def fill(path: str, ids: dict[str, int]) -> str:
    """The path with the world's ids: `{id}` is the collection's object, others by their name."""
    resource = resource_of(path)
    path = path.replace("{id}", str(ids[resource.key])) if "{id}" in path else path
    return re.sub(r"\{(\w+)_id\}", lambda m: str(ids[m.group(1)]), path)


@dataclass(frozen=True)
class Operation:
    allowed: frozenset[str]
    body: Callable | None = None  # world, side -> dict (side: the patient whose objects the path names)


def _book(w, s):
    return {"patient": s.patient.pk, "kind": "refill", "starts_at": "2025-03-25T10:00:00Z"}


def _visit(w, s):
    return {
        "implant": s.implant.pk,
        "performed_at": "2025-03-03T09:30:00Z",
        "actual_residual_ml": "8.80",
        "volume_added_ml": "20",
        "drug": w.drug.pk,
        "drug_lot": "LOT-9",
        "daily_dose_after_mcg": "400",
        **SAFETY_CHECKLIST_ALL_DONE,
        **REFILL_LOTS,
    }


def _implant(w, s):
    return {
        "patient": w.patient_without_pump.pk,
        "pump_model": w.pump_model.pk,
        "serial_number": "MATRIX-1",
        "implanted_on": "2025-02-01",
        "surgeon": "Ms S",
        "hospital": "City",
        "catheter_tip_level": "T10",
    }


def _patient(w, s):
    return {
        "mrn": "MATRIX-NEW",
        "given_name": "New",
        "family_name": "Patient",
        "date_of_birth": "1970-01-01",
        "spasticity_origin": "cerebral",
        "diagnosis": "cp",
    }


def _pump_model(w, s):
    return {
        "manufacturer": "Acme",
        "name": "Model M",
        "reservoir_ml": "20.0",
        "flow": "programmable",
        "alarm_threshold_ml": "2.0",
    }


def _forecast(w, s):
    return {
        "refilled_on": "2025-01-06",
        "volume_ml": "20",
        "concentration_mcg_per_ml": "2000",
        "daily_dose_mcg": "400",
        "alarm_threshold_ml": "2.0",
        "implant": s.implant.pk,
    }


def _reason(w, s):
    return {"reason": "Entered on the wrong record"}


ANY_STAFF_WRITER = frozenset({NURSE, CLINICIAN})

OPERATIONS: dict[tuple[str, str], Operation] = {
    # Patients
    ("/api/patients/", "GET"): Operation(EVERYONE),
    ("/api/patients/", "POST"): Operation(ANY_STAFF_WRITER, _patient),
    ("/api/patients/{id}/", "GET"): Operation(EVERYONE),
    ("/api/patients/{id}/", "PATCH"): Operation(ANY_STAFF_WRITER, lambda w, s: {"notes": "Seen today"}),
    ("/api/patients/{id}/mark-entered-in-error/", "POST"): Operation(ANY_STAFF_WRITER, _reason),
    # Screening trials
    ("/api/trials/", "GET"): Operation(STAFF_READERS),
    ("/api/trials/", "POST"): Operation(
        frozenset({CLINICIAN}), lambda w, s: {"patient": s.patient.pk, "started_on": "2025-03-03"}
    ),
    ("/api/trials/{id}/", "GET"): Operation(STAFF_READERS),
    ("/api/trials/{id}/summary/", "GET"): Operation(STAFF_READERS),
    ("/api/trials/{id}/verdict/", "POST"): Operation(
        frozenset({CLINICIAN}),
        lambda w, s: {
            "verdict": "positive",
            "positivity_rule": "clinician",
            "effective_bolus_mcg": "50",
            "effect_hours": "6",
        },
    ),
    ("/api/trials/{id}/steps/", "GET"): Operation(STAFF_READERS),
    ("/api/trials/{id}/steps/", "POST"): Operation(
        frozenset({CLINICIAN}), lambda w, s: {"given_at": "2025-03-03T09:00:00Z", "dose_mcg": "75", "volume_ml": "1.5"}
    ),
    ("/api/trials/{id}/assessments/", "GET"): Operation(STAFF_READERS),
    ("/api/trials/{id}/assessments/", "POST"): Operation(
        frozenset({CLINICIAN}),
        lambda w, s: {"assessed_at": "2025-03-03T12:00:00Z", "hours_after": "4", "ashworth": {"hip_flexors_l": "2"}},
    ),
    ("/api/trials/{id}/steps/{step_id}/mark-entered-in-error/", "POST"): Operation(frozenset({CLINICIAN}), _reason),
    ("/api/trials/{id}/assessments/{assessment_id}/mark-entered-in-error/", "POST"): Operation(
        frozenset({CLINICIAN}), _reason
    ),
    ("/api/trials/{id}/mark-entered-in-error/", "POST"): Operation(frozenset({CLINICIAN}), _reason),
    # Catalogues
    ("/api/pump-models/", "GET"): Operation(CATALOGUE_READERS),
    ("/api/pump-models/", "POST"): Operation(frozenset({ADMIN}), _pump_model),
    ("/api/pump-models/{id}/", "GET"): Operation(CATALOGUE_READERS),
    ("/api/pump-models/{id}/", "PATCH"): Operation(frozenset({ADMIN}), lambda w, s: {"mri_note": "Check after MRI."}),
    ("/api/drugs/", "GET"): Operation(CATALOGUE_READERS),
    ("/api/drugs/", "POST"): Operation(
        frozenset({ADMIN}),
        lambda w, s: {"name": "Baclofen compounded", "concentration_mcg_per_ml": "3000", "compounded": True},
    ),
    ("/api/drugs/{id}/", "GET"): Operation(CATALOGUE_READERS),
    ("/api/drugs/{id}/", "PATCH"): Operation(frozenset({ADMIN}), lambda w, s: {"max_interval_days": 120}),
    ("/api/drug-pump-intervals/", "GET"): Operation(CATALOGUE_READERS),
    ("/api/drug-pump-intervals/", "POST"): Operation(
        frozenset({ADMIN}),
        lambda w, s: {"drug": w.drug.pk, "pump_model": w.pump_model.pk, "max_interval_days": 90},
    ),
    ("/api/drug-pump-intervals/{id}/", "GET"): Operation(CATALOGUE_READERS),
    ("/api/drug-pump-intervals/{id}/", "PATCH"): Operation(frozenset({ADMIN}), lambda w, s: {"max_interval_days": 60}),
    # Implants
    ("/api/implants/", "GET"): Operation(EVERYONE),
    ("/api/implants/", "POST"): Operation(frozenset({CLINICIAN}), _implant),
    ("/api/implants/{id}/", "GET"): Operation(EVERYONE),
    ("/api/implants/{id}/eri/", "POST"): Operation(
        frozenset({CLINICIAN}), lambda w, s: {"eri_reported_on": "2025-03-01"}
    ),
    ("/api/implants/{id}/explant/", "POST"): Operation(
        frozenset({CLINICIAN}), lambda w, s: {"explanted_on": "2025-03-02", "explant_reason": "Infection"}
    ),
    ("/api/implants/{id}/replace/", "POST"): Operation(
        frozenset({CLINICIAN}),
        lambda w, s: {
            "explanted_on": "2025-03-02",
            "explant_reason": "Battery at end of service",
            "pump_model": w.pump_model.pk,
            "serial_number": "MATRIX-REPLACE",
            "surgeon": "Ms S",
            "hospital": "City",
            "catheter_tip_level": "T10",
        },
    ),
    ("/api/implants/{id}/empty/", "POST"): Operation(
        frozenset({NURSE, CLINICIAN}), lambda w, s: {"emptied_at": "2025-03-02T09:00:00Z", "reason": "mri"}
    ),
    ("/api/implants/{id}/mark-entered-in-error/", "POST"): Operation(frozenset({CLINICIAN}), _reason),
    # Dose prescriptions
    ("/api/dose-prescriptions/", "GET"): Operation(frozenset({NURSE, CLINICIAN, PATIENT})),
    ("/api/dose-prescriptions/", "POST"): Operation(
        frozenset({CLINICIAN}),
        lambda w, s: {"implant": s.implant.pk, "daily_dose_mcg": "450", "effective_at": "2025-03-03T09:00:00Z"},
    ),
    ("/api/dose-prescriptions/{id}/", "GET"): Operation(frozenset({NURSE, CLINICIAN, PATIENT})),
    ("/api/dose-prescriptions/{id}/mark-entered-in-error/", "POST"): Operation(frozenset({CLINICIAN}), _reason),
    # Refill visits
    ("/api/refill-visits/", "GET"): Operation(frozenset({NURSE, CLINICIAN, PATIENT})),
    ("/api/refill-visits/", "POST"): Operation(frozenset({NURSE}), _visit),
    ("/api/refill-visits/{id}/", "GET"): Operation(frozenset({NURSE, CLINICIAN, PATIENT})),
    ("/api/refill-visits/{id}/mark-entered-in-error/", "POST"): Operation(frozenset({NURSE}), _reason),
    # Appointments
    ("/api/appointments/", "GET"): Operation(frozenset({NURSE, CLINICIAN, PATIENT})),
    ("/api/appointments/", "POST"): Operation(ANY_STAFF_WRITER, _book),
    ("/api/appointments/{id}/", "GET"): Operation(frozenset({NURSE, CLINICIAN, PATIENT})),
    ("/api/appointments/{id}/move/", "POST"): Operation(
        ANY_STAFF_WRITER, lambda w, s: {"starts_at": "2025-03-21T10:00:00Z"}
    ),
    ("/api/appointments/{id}/cancel/", "POST"): Operation(ANY_STAFF_WRITER, lambda w, s: {"cancel_reason": "Unwell"}),
    ("/api/appointments/{id}/no-show/", "POST"): Operation(ANY_STAFF_WRITER, lambda w, s: {}),
    ("/api/appointments/{id}/mark-entered-in-error/", "POST"): Operation(ANY_STAFF_WRITER, _reason),
    # The care schedule's calculators and lists
    ("/api/refill-forecast/", "POST"): Operation(STAFF_READERS, _forecast),
    ("/api/due-for-refill/", "GET"): Operation(STAFF_READERS),
    # Open alerts: every staff role reads them (the clinic admin watches the net too).
    ("/api/alerts/", "GET"): Operation(ALL_STAFF),
}


def expected_outcome(role: str, path: str, method: str) -> str:
    """The status class one role must get: "2xx", "403", "404" or "405"."""
    if role == "anonymous":
        return "403"  # session authentication: not logged in is 403 (no WWW-Authenticate scheme)
    readers = resource_of(path).readers
    hidden = is_object_route(path) and role not in readers
    operation = OPERATIONS.get((path, method))
    if operation is None:
        return "404" if hidden else "405"
    if role in operation.allowed:
        return "2xx"
    return "404" if hidden else "403"


def outcome_of(status_code: int) -> str:
    return "2xx" if 200 <= status_code < 300 else str(status_code)
