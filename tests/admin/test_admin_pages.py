"""Every admin page loads for whom it should, refuses whom it should not, and scales with rows."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from patients.models import AshworthScore, Patient, ScreeningTrial, TrialAssessment, TrialStep
from pumps.models import DosePrescription, Drug, DrugPumpInterval, Implant, PumpModel
from refills.models import (
    Alert,
    Appointment,
    AppointmentChangeRequest,
    AppointmentNotice,
    ClinicSettings,
    ClosedDay,
    DeliveryAttempt,
    FieldSafetyFlag,
    FieldSafetyNotice,
    RefillVisit,
    Reminder,
    ReservoirEmptying,
    TaskRun,
)

from .conftest import MAKERS

pytestmark = pytest.mark.django_db

# What the clinic admin may do in the Django admin (the role's permissions, migrations 0002):
# "view" = list and read-only change page; "edit" = also add; None = 403 everywhere.
CLINIC_ADMIN_ACCESS = {
    Patient: "view",
    ScreeningTrial: None,
    TrialStep: None,
    TrialAssessment: None,
    AshworthScore: None,
    PumpModel: "edit",
    Drug: "edit",
    DrugPumpInterval: "edit",
    Implant: "view",
    DosePrescription: None,
    RefillVisit: None,
    Appointment: None,
    AppointmentChangeRequest: None,
    Reminder: "view",
    DeliveryAttempt: "view",
    AppointmentNotice: None,
    Alert: "view",
    ClinicSettings: "view",  # and change, but never add: the row exists
    ClosedDay: "edit",
    ReservoirEmptying: None,
    TaskRun: "view",
    FieldSafetyNotice: None,
    FieldSafetyFlag: None,
}
# Models a superuser may add from the admin; the other clinical records go through the staff app's
# services, the singleton already exists, reminders/alerts are written by the scan.
SUPERUSER_MAY_ADD = {Patient, PumpModel, Drug, DrugPumpInterval, ClosedDay}
ALL_MODELS = list(CLINIC_ADMIN_ACCESS)


def _url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def _id(model) -> str:
    return model.__name__


def test_every_model_of_the_clinical_apps_is_registered_and_covered_here():
    models = {
        m
        for label in ("patients", "pumps", "refills")
        for m in apps.get_app_config(label).get_models()
        if not m.__name__.startswith("Historical")
    }
    assert {m for m in models if not admin.site.is_registered(m)} == set()
    assert models == set(CLINIC_ADMIN_ACCESS) == set(MAKERS)


@pytest.mark.parametrize("model", ALL_MODELS, ids=_id)
def test_superuser_loads_changelist_change_page_and_history(client, superuser, make_row, model):
    row = make_row(model)
    client.force_login(superuser)

    assert client.get(_url(model, "changelist")).status_code == 200
    assert client.get(_url(model, "change", row.pk)).status_code == 200
    assert client.get(_url(model, "add")).status_code == (200 if model in SUPERUSER_MAY_ADD else 403)
    if hasattr(model, "history"):
        assert client.get(_url(model, "history", row.pk)).status_code == 200


@pytest.mark.parametrize("model", ALL_MODELS, ids=_id)
def test_clinic_admin_sees_what_the_role_permits_and_nothing_else(client, admin_staff, make_row, model):
    row = make_row(model)
    client.force_login(admin_staff)
    access = CLINIC_ADMIN_ACCESS[model]

    expected = 200 if access else 403
    assert client.get(_url(model, "changelist")).status_code == expected
    assert client.get(_url(model, "change", row.pk)).status_code == expected
    assert client.get(_url(model, "add")).status_code == (200 if access == "edit" else 403)


def test_admin_index_lists_only_permitted_models_for_the_clinic_admin(client, admin_staff):
    client.force_login(admin_staff)

    response = client.get(reverse("admin:index"))

    assert response.status_code == 200
    listed = {m["object_name"] for app in response.context["app_list"] for m in app["models"]}
    permitted = {m.__name__ for m, access in CLINIC_ADMIN_ACCESS.items() if access}
    clinical_apps = {m.__name__ for m in ALL_MODELS}
    assert listed & clinical_apps == permitted


@pytest.mark.parametrize("model", [m for m in ALL_MODELS if m is not ClinicSettings], ids=_id)
def test_changelist_query_count_does_not_grow_with_rows(client, superuser, make_row, model):
    make_row(model)
    client.force_login(superuser)
    url = _url(model, "changelist")
    client.get(url)  # warm the session and content-type caches
    with CaptureQueriesContext(connection) as one:
        assert client.get(url).status_code == 200

    for _ in range(5):
        make_row(model)
    with CaptureQueriesContext(connection) as six:
        response = client.get(url)

    assert response.status_code == 200
    assert response.context["cl"].result_count >= 6
    assert len(six) == len(one), [q["sql"] for q in six.captured_queries]


def test_clinic_settings_is_a_singleton_without_add_or_delete(client, superuser):
    settings_row = ClinicSettings.load()
    client.force_login(superuser)

    changelist = client.get(_url(ClinicSettings, "changelist"))

    assert changelist.status_code == 200
    assert changelist.context["has_add_permission"] is False
    assert client.get(_url(ClinicSettings, "add")).status_code == 403
    assert client.post(_url(ClinicSettings, "delete", settings_row.pk), {"post": "yes"}).status_code == 403
    assert ClinicSettings.objects.count() == 1
