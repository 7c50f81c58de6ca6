"""GET /api/alerts/: the open alerts, urgent first, for every staff role; patients and anonymous are refused."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AccessLog
from refills.models import Alert
from tests.api.conftest import NOW
from tests.api.routes import api_schema

pytestmark = pytest.mark.django_db

KEY_DATE = dt.date(2025, 4, 1)


def alert(patient, *, kind=Alert.Kind.REFILL_UNBOOKED, severity=Alert.Severity.WARNING, days=0, **fields) -> Alert:
    return Alert.objects.create(
        kind=kind,
        severity=severity,
        patient=patient,
        key_date=KEY_DATE + dt.timedelta(days=days),
        message=f"{kind} for {patient.mrn}",
        **fields,
    )


def results(response) -> list[dict]:
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_open_alerts_are_listed_urgent_first_with_their_fields(world, client_for, frozen_now):
    # given: a warning about A, then an urgent one about B (raised later), one resolved
    warning = alert(world.a.patient, implant=world.a.implant)
    urgent = alert(
        world.b.patient,
        kind=Alert.Kind.REFILL_URGENT,
        severity=Alert.Severity.URGENT,
        audience=Alert.Audience.CLINICIANS,
        implant=world.b.implant,
        risk_flags="autonomic dysreflexia",
        escalation_count=2,
    )
    alert(world.a.patient, kind=Alert.Kind.NO_SHOW, resolved_at=NOW)

    # when
    rows = results(client_for("nurse").call("GET", "/api/alerts/"))

    # then
    assert rows == [
        {
            "id": urgent.pk,
            "kind": "refill_urgent",
            "kind_display": "URGENT: alarm date near, nothing booked",
            "severity": "urgent",
            "audience": "clinicians",
            "patient": world.b.patient.pk,
            "mrn": "MRN-B",
            "implant": world.b.implant.pk,
            "key_date": "2025-04-01",
            "message": "refill_urgent for MRN-B",
            "risk_flags": "autonomic dysreflexia",
            "raised_at": "2025-03-03T10:00:00Z",
            "acknowledged_at": None,
            "escalation_count": 2,
        },
        {
            "id": warning.pk,
            "kind": "refill_unbooked",
            "kind_display": "Refill due soon, nothing booked",
            "severity": "warning",
            "audience": "nurses",
            "patient": world.a.patient.pk,
            "mrn": "MRN-A",
            "implant": world.a.implant.pk,
            "key_date": "2025-04-01",
            "message": "refill_unbooked for MRN-A",
            "risk_flags": "",
            "raised_at": "2025-03-03T10:00:00Z",
            "acknowledged_at": None,
            "escalation_count": 0,
        },
    ]


@pytest.mark.parametrize("role,status", [("nurse", 200), ("clinician", 200), ("clinic_admin", 200)])
def test_every_staff_role_reads_the_alerts(world, client_for, role, status):
    alert(world.a.patient)

    response = client_for(role).call("GET", "/api/alerts/")

    assert response.status_code == status
    assert len(response.json()["results"]) == 1


@pytest.mark.parametrize("role", ["patient", "anonymous"])
def test_patients_and_anonymous_callers_are_refused(world, client_for, role):
    alert(world.a.patient)

    response = client_for(role).call("GET", "/api/alerts/")

    assert response.status_code == 403
    assert "results" not in response.json()
    assert not AccessLog.objects.filter(patient=world.a.patient, resource__contains="alert").exists()


@pytest.mark.parametrize(
    "query,expected",
    [
        ("kind=no_show", {"a-no-show"}),
        ("severity=urgent", {"b-urgent"}),
        ("audience=clinicians", {"b-urgent"}),
        ("patient={a}", {"a-warning", "a-no-show"}),
        ("patient={b}&severity=warning", set()),
        ("kind=refill_unbooked&severity=warning", {"a-warning"}),
    ],
)
def test_filters_narrow_the_open_alerts(world, client_for, query, expected):
    made = {
        "a-warning": alert(world.a.patient),
        "a-no-show": alert(world.a.patient, kind=Alert.Kind.NO_SHOW),
        "b-urgent": alert(
            world.b.patient,
            kind=Alert.Kind.REFILL_URGENT,
            severity=Alert.Severity.URGENT,
            audience=Alert.Audience.CLINICIANS,
        ),
    }
    names = {a.pk: name for name, a in made.items()}
    url = "/api/alerts/?" + query.format(a=world.a.patient.pk, b=world.b.patient.pk)

    rows = results(client_for("nurse").call("GET", url))

    assert {names[row["id"]] for row in rows} == expected


@pytest.mark.parametrize(
    "query,field",
    [
        ("kind=nonsense", "kind"),
        ("severity=critical", "severity"),
        ("patient=abc", "patient"),
        ("patinet=1", "patinet"),
        ("ordering=-id", "ordering"),
        ("page_size=0", "page_size"),
    ],
)
def test_a_bad_or_unknown_parameter_is_a_400_naming_it(world, client_for, query, field):
    response = client_for("nurse").call("GET", f"/api/alerts/?{query}")

    assert response.status_code == 400
    assert field in response.json()


def test_the_list_is_paginated_like_the_others(world, client_for):
    for day in range(3):
        alert(world.a.patient, days=day)

    body = client_for("nurse").call("GET", "/api/alerts/?page_size=2").json()

    assert (body["count"], len(body["results"]), body["next"] is not None) == (3, 2, True)


def test_listing_writes_one_access_log_row_per_patient_shown(world, client_for):
    alert(world.a.patient)
    alert(world.a.patient, days=1)
    alert(world.b.patient)
    before = AccessLog.objects.count()

    results(client_for("nurse").call("GET", "/api/alerts/"))

    rows = list(AccessLog.objects.order_by("id")[before:])
    assert sorted(r.patient_id for r in rows) == sorted([world.a.patient.pk, world.b.patient.pk])
    assert {(r.user_id, r.action, r.detail) for r in rows} == {(world.nurse.pk, "view", "list alert")}


def test_the_query_count_does_not_grow_with_the_number_of_alerts(world, client_for):
    # The access log writes one row per patient shown (as every list does): same patients, more alerts.
    patients = [world.a.patient, world.b.patient, world.patient_without_pump]
    client = client_for("nurse")
    for patient in patients:
        alert(patient)
    client.call("GET", "/api/alerts/")  # the session and role caches warm up

    with CaptureQueriesContext(connection) as three:
        assert len(results(client.call("GET", "/api/alerts/"))) == 3
    for patient in patients:
        for day in range(1, 10):
            alert(patient, days=day, implant=world.a.implant, kind=Alert.Kind.BATTERY_WINDOW)
    with CaptureQueriesContext(connection) as thirty:
        assert len(results(client.call("GET", "/api/alerts/"))) == 30

    assert len(thirty.captured_queries) == len(three.captured_queries)


def test_the_schema_documents_the_route_and_its_filters():
    operation = api_schema()["paths"]["/api/alerts/"]["get"]

    assert {p["name"] for p in operation["parameters"]} == {
        "kind",
        "severity",
        "audience",
        "patient",
        "page",
        "page_size",
    }
    assert set(api_schema()["paths"]["/api/alerts/"]) == {"get"}
