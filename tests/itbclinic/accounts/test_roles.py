"""The four roles exist as groups from the migrations, with representative permissions."""

import pytest
from django.contrib.auth.models import Group

from itbclinic.accounts.roles import Role, has_role, is_staff_member, user_roles
from tests import factories

pytestmark = pytest.mark.django_db


def test_the_four_roles_are_groups():
    assert set(Group.objects.values_list("name", flat=True)) >= {"nurse", "clinician", "patient", "clinic_admin"}
    assert {role.value for role in Role} == {"nurse", "clinician", "patient", "clinic_admin"}


# (role, permissions it has, permissions it must not have)
ROLE_PERMISSIONS = [
    (
        Role.NURSE,
        [
            "patients.add_patient",
            "patients.view_screeningtrial",
            "refills.add_refillvisit",
            "refills.add_appointment",
            "patients.change_contact_patient",
        ],
        [
            "patients.add_screeningtrial",
            "pumps.add_implant",
            "pumps.add_doseprescription",
            "accounts.add_user",
            "patients.change_status_patient",
        ],
    ),
    (
        Role.CLINICIAN,
        [
            "patients.add_screeningtrial",
            "pumps.add_implant",
            "pumps.add_doseprescription",
            "refills.add_appointment",
            "patients.change_contact_patient",
            "patients.change_status_patient",
        ],
        ["refills.add_refillvisit", "refills.change_clinicsettings", "accounts.add_user"],
    ),
    (
        Role.CLINIC_ADMIN,
        [
            "accounts.add_user",
            "refills.change_clinicsettings",
            "refills.add_closedday",
            "pumps.change_pumpmodel",
            "patients.change_contact_patient",
            "patients.change_status_patient",
        ],
        ["patients.change_patient", "pumps.add_implant", "refills.add_refillvisit", "pumps.add_doseprescription"],
    ),
    (
        Role.PATIENT,
        ["patients.view_patient", "refills.view_appointment", "refills.add_appointmentchangerequest"],
        [
            "patients.change_patient",
            "refills.add_appointment",
            "refills.change_appointment",
            "pumps.change_implant",
            "patients.change_contact_patient",
            "patients.change_status_patient",
        ],
    ),
]


@pytest.mark.parametrize(("role", "granted", "denied"), ROLE_PERMISSIONS, ids=[r[0].value for r in ROLE_PERMISSIONS])
def test_each_role_has_its_permissions_and_not_others(role, granted, denied):
    user = factories.UserFactory(role=role)

    assert [perm for perm in granted if not user.has_perm(perm)] == []
    assert [perm for perm in denied if user.has_perm(perm)] == []


def test_a_user_without_a_group_has_no_permission_and_no_role():
    user = factories.UserFactory()

    assert user.get_all_permissions() == set()
    assert user_roles(user) == frozenset()
    assert not is_staff_member(user)


def test_role_helpers(nurse, clinician, clinic_admin, patient_user):
    assert user_roles(nurse) == {Role.NURSE}
    assert has_role(clinician, Role.NURSE, Role.CLINICIAN)
    assert not has_role(patient_user, Role.NURSE, Role.CLINICIAN, Role.CLINIC_ADMIN)
    assert [is_staff_member(u) for u in (nurse, clinician, clinic_admin, patient_user)] == [True, True, True, False]
