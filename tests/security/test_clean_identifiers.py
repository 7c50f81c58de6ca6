"""Clean identifiers (issue 15, item 8): one MRN whatever its case, no control or direction characters
in names, MRN and place, through every way in (staff forms, API, admin form, services).

The rule is on the model fields (patients.models.MRNField, core.validators.validate_no_control_characters):
forms and the admin are ModelForms, and the API's services call `full_clean`.
"""

import importlib
import json

import pytest
from django.contrib.admin.sites import site
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.test import RequestFactory
from django.urls import reverse

from core.validators import validate_no_control_characters
from patients.models import Patient
from refills.models import Appointment
from refills.services import appointment_move
from tests import factories

pytestmark = pytest.mark.django_db

NEW_PATIENT = {
    "mrn": "MRN-NEW",
    "given_name": "Ada",
    "family_name": "Lovelace",
    "date_of_birth": "1980-12-10",
    "spasticity_origin": "spinal",
    "diagnosis": "ms",
    "reminder_channel": "email",
    "email": "ada@example.org",
    "phone": "",
}
# Line breaks, tab, NUL-like C0, DEL, C1 (NEL), and the bidi overrides, isolates and marks.
FORBIDDEN = ["\n", "\r", "\t", "\x1b", "\x7f", "\x85", "\u202e", "\u202a", "\u2066", "\u2069", "\u200e", "\u200f"]


def api(client, method, url, body):
    return client.generic(method, url, data=json.dumps(body), content_type="application/json")


@pytest.fixture
def nurse_client(client, world):
    client.force_login(world.nurse)
    return client


# ---------------------------------------------------------------------------
# MRN: normalised on the way in, unique whatever its case
# ---------------------------------------------------------------------------
def test_an_mrn_is_stored_stripped_and_upper_case_from_the_api_and_the_staff_form(nurse_client):
    created = api(nurse_client, "POST", "/api/patients/", {**NEW_PATIENT, "mrn": "  demo-0001 "})
    form = nurse_client.post(reverse("staff:patient_create"), {**NEW_PATIENT, "mrn": "demo-0002"})

    assert created.status_code == 201
    assert created.json()["mrn"] == "DEMO-0001"
    assert form.status_code == 302
    assert sorted(Patient.objects.filter(mrn__startswith="DEMO-").values_list("mrn", flat=True)) == [
        "DEMO-0001",
        "DEMO-0002",
    ]
    assert Patient.objects.get(mrn="demo-0001").given_name == "Ada"  # lookups are normalised too


@pytest.mark.parametrize("typed", ["mrn-a", "Mrn-A ", " MRN-A"])
def test_an_mrn_differing_only_in_case_or_spaces_is_a_duplicate(nurse_client, world, typed):
    assert world.a.patient.mrn == "MRN-A"

    by_api = api(nurse_client, "POST", "/api/patients/", {**NEW_PATIENT, "mrn": typed})
    by_form = nurse_client.post(reverse("staff:patient_create"), {**NEW_PATIENT, "mrn": typed})

    assert by_api.status_code == 400
    assert list(by_api.json()) == ["mrn"]
    assert by_form.status_code == 400
    assert by_form.context["form"].errors["mrn"] == ["Patient with this Medical record number already exists."]
    assert Patient.objects.filter(given_name="Ada").count() == 0


def test_the_database_refuses_a_case_variant_of_an_mrn(world):
    # given SQL that goes around the model (a script, a bulk load)
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE patients_patient SET mrn = %s WHERE id = %s", ["mrn-a", world.b.patient.pk])
    assert Patient.objects.get(pk=world.b.patient.pk).mrn == "MRN-B"


MIGRATION = importlib.import_module("patients.migrations.0004_mrn_case_insensitive_and_plain_names")


class _Rows:
    """A stand-in for the historical Patient model: the rows a database held before the migration."""

    def __init__(self, rows):
        self.rows = dict(rows)
        self.objects = self

    def values_list(self, *fields):
        return list(self.rows.items())

    def filter(self, pk):
        self._pk = pk
        return self

    def update(self, mrn):
        self.rows[self._pk] = mrn


class _Apps:
    def __init__(self, model):
        self.model = model

    def get_model(self, app_label, name):
        return self.model


def test_the_migration_normalises_existing_mrns():
    rows = _Rows({1: "demo-0001 ", 2: "MRN-B", 3: "x1"})

    MIGRATION.normalise_mrns(_Apps(rows), None)

    assert rows.rows == {1: "DEMO-0001", 2: "MRN-B", 3: "X1"}


def test_the_migration_stops_and_names_mrns_that_would_collide():
    rows = _Rows({1: "demo-0001", 2: "DEMO-0001", 3: "mrn-b"})

    with pytest.raises(RuntimeError, match=r"DEMO-0001: 'DEMO-0001', 'demo-0001'"):
        MIGRATION.normalise_mrns(_Apps(rows), None)

    assert rows.rows == {1: "demo-0001", 2: "DEMO-0001", 3: "mrn-b"}  # nothing changed


# ---------------------------------------------------------------------------
# Control and bidi characters refused in names, MRN and place
# ---------------------------------------------------------------------------
def test_ordinary_names_pass_and_every_forbidden_character_is_refused():
    validate_no_control_characters("Zoë O'Brien-Łukasz 李")
    for char in FORBIDDEN:
        with pytest.raises(ValidationError):
            validate_no_control_characters(f"MRN{char}1000")


@pytest.mark.parametrize("char", FORBIDDEN, ids=[f"U+{ord(c):04X}" for c in FORBIDDEN])
@pytest.mark.parametrize("field", ["mrn", "given_name", "family_name"])
def test_names_and_mrn_refuse_control_and_bidi_characters_in_the_api_and_the_form(nurse_client, field, char):
    value = f"AB{char}CD"

    by_api = api(nurse_client, "POST", "/api/patients/", {**NEW_PATIENT, field: value})
    by_form = nurse_client.post(reverse("staff:patient_create"), {**NEW_PATIENT, field: value})

    assert by_api.status_code == 400
    assert list(by_api.json()) == [field]
    assert by_form.status_code == 400
    assert list(by_form.context["form"].errors) == [field]
    assert not Patient.objects.filter(email="ada@example.org").exists()


def test_the_admin_form_refuses_a_bidi_override_in_a_name(world):
    request = RequestFactory().get("/admin/")
    request.user = factories.UserFactory(is_staff=True, is_superuser=True)
    patient = world.b.patient
    form_class = site._registry[Patient].get_form(request, patient, fields=["given_name", "family_name"])

    form = form_class(instance=patient, data={"given_name": "Bob\u202e", "family_name": "Brown"})

    assert not form.is_valid()
    assert list(form.errors) == ["given_name"]


@pytest.mark.parametrize("char", ["\r\n", "\u202e", "\u2067"], ids=["CRLF", "U+202E", "U+2067"])
def test_place_refuses_control_and_bidi_characters_when_booking_and_moving(nurse_client, world, char):
    place = f"Room 2{char}Bring nothing"
    booked = api(
        nurse_client,
        "POST",
        "/api/appointments/",
        {"patient": world.a.patient.pk, "kind": "review", "starts_at": "2025-03-25T10:00:00Z", "place": place},
    )
    appointment = world.b.appointment
    moved = api(
        nurse_client,
        "POST",
        f"/api/appointments/{appointment.pk}/move/",
        {"starts_at": "2025-03-26T10:00:00Z", "place": place},
    )

    assert booked.status_code == 400
    assert list(booked.json()) == ["place"]
    assert moved.status_code == 400
    assert list(moved.json()) == ["place"]
    assert not Appointment.objects.filter(place=place).exists()


def test_moving_with_a_clean_place_still_works(world):
    appointment = appointment_move(
        appointment=world.b.appointment,
        starts_at=world.b.appointment.starts_at,
        moved_by=world.nurse,
        place="Room 3",
    )
    assert appointment.place == "Room 3"
