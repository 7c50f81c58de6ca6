"""Roles are roles: the superuser flag grants nothing clinical (issue 15, item 4).

A superuser is a technical account: it may use the Django admin (Django's own superuser there),
but staff pages, the API and the pages' buttons check the role's permissions only
(core/permissions.py). A clinic admin who is also a superuser can do what a clinic admin can,
nothing a clinician can. The full role × route × method matrix has both rows
(tests/security/test_url_matrix.py: "superuser", "clinic_admin_superuser").
"""

import pytest
from django.contrib.admin.sites import site
from django.test import RequestFactory
from django.urls import reverse

from core.permissions import granted_permissions, holds_permissions
from itbclinic.accounts.models import User
from patients.models import Patient, ScreeningTrial
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser(db):
    return factories.UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.fixture
def superuser_clinic_admin(db):
    return factories.ClinicAdminFactory(username="admin.root", is_staff=True, is_superuser=True)


def test_the_flag_adds_no_permission_to_what_the_role_grants(clinic_admin, superuser_clinic_admin, superuser):
    assert superuser_clinic_admin.has_perm("patients.add_patient")  # Django's answer...
    assert not holds_permissions(superuser_clinic_admin, ["patients.add_patient"])  # ...not ours
    assert granted_permissions(superuser_clinic_admin) == granted_permissions(clinic_admin)
    assert "patients.view_patient" in granted_permissions(clinic_admin)
    assert granted_permissions(superuser) == frozenset()
    assert not holds_permissions(superuser, ["patients.view_patient"])


def test_a_superuser_without_a_role_may_use_the_django_admin(client, superuser):
    client.force_login(superuser)

    for url in ("/admin/", "/admin/patients/patient/", "/admin/accounts/user/", "/admin/axes/accessattempt/"):
        assert client.get(url).status_code == 200, url


def test_a_superuser_without_a_role_is_refused_every_clinical_page_and_route(client, superuser):
    client.force_login(superuser)

    assert client.get(reverse("staff:worklist")).status_code == 403
    assert client.get(reverse("staff:patient_create")).status_code == 403
    assert client.get("/api/patients/").status_code == 403
    created = client.post(
        "/api/patients/",
        {"mrn": "ROOT-1", "given_name": "Root", "family_name": "Made", "date_of_birth": "1980-01-01"},
        content_type="application/json",
    )
    assert created.status_code == 403
    assert not Patient.objects.filter(mrn="ROOT-1").exists()


def test_a_clinic_admin_who_is_a_superuser_cannot_do_a_clinicians_action(client, superuser_clinic_admin):
    patient = factories.PatientFactory()
    client.force_login(superuser_clinic_admin)

    # what a clinic admin may do: read the patient list...
    listing = client.get(reverse("staff:patient_list"))
    assert listing.status_code == 200
    assert "Add a patient" not in listing.content.decode()  # no button beyond the role
    # ...and nothing a clinician or nurse does
    assert client.get(reverse("staff:trial_start", kwargs={"patient_id": patient.pk})).status_code == 403
    assert client.get(reverse("staff:patient_create")).status_code == 403
    started = client.post("/api/trials/", {"patient": patient.pk, "kind": "bolus"}, content_type="application/json")
    assert started.status_code == 403
    assert not ScreeningTrial.objects.filter(patient=patient).exists()


def test_only_a_superuser_hands_out_the_superuser_flag_in_the_admin(clinic_admin, superuser):
    user_admin = site._registry[User]
    as_clinic_admin = RequestFactory().get("/admin/accounts/user/1/change/")
    as_clinic_admin.user = clinic_admin
    as_superuser = RequestFactory().get("/admin/accounts/user/1/change/")
    as_superuser.user = superuser

    assert {"is_superuser", "user_permissions"} <= set(user_admin.get_readonly_fields(as_clinic_admin, clinic_admin))
    assert not {"is_superuser", "user_permissions"} & set(user_admin.get_readonly_fields(as_superuser, clinic_admin))


def test_the_clinic_admin_role_sees_and_lifts_lockouts(client, clinic_admin):
    clinic_admin.is_staff = True
    clinic_admin.save()
    assert holds_permissions(clinic_admin, ["axes.view_accessattempt", "axes.delete_accessattempt"])
    client.force_login(clinic_admin)

    assert client.get("/admin/axes/accessattempt/").status_code == 200
