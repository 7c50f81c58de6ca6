"""`seed_demo`: the demo logins and clinic, idempotent, and never on a production database."""

from io import StringIO

import pytest
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.management import CommandError, call_command

from demo.management.commands.seed_demo import DEMO_PASSWORD, DEMO_USERS
from itbclinic.accounts.models import User
from patients.models import Patient
from pumps.models import Implant
from refills.models import Appointment, FieldSafetyFlag, FieldSafetyNotice, RefillVisit

pytestmark = pytest.mark.django_db

LOGINS = {
    "nurse": "nurse",
    "clinician": "clinician",
    "admin": "clinic_admin",
    "patient1": "patient",
    "patient2": "patient",
}


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def counts() -> dict[str, int]:
    return {
        "users": User.objects.count(),
        "memberships": User.groups.through.objects.count(),
        "patients": Patient.objects.count(),
        "implants": Implant.objects.count(),
        "refill_visits": RefillVisit.objects.count(),
        "appointments": Appointment.objects.count(),
        "field_safety_notices": FieldSafetyNotice.objects.count(),
        "field_safety_flags": FieldSafetyFlag.objects.count(),
    }


def test_refuses_without_debug_and_creates_nothing(settings):
    settings.DEBUG = False

    with pytest.raises(CommandError, match="DJANGO_DEBUG=true"):
        seed()

    assert not User.objects.exists()


def test_seeding_twice_gives_the_same_counts(settings):
    settings.DEBUG = True

    first_output = seed()
    first = counts()
    second_output = seed()

    assert counts() == first
    assert first["users"] == 5
    assert first["memberships"] == 5
    assert first["patients"] == 40
    # One field-safety notice over the demo's active SynchroMed II 40 mL pumps, one action recorded.
    notice = FieldSafetyNotice.objects.get()
    assert first["field_safety_flags"] == notice.flags.count() > 1
    assert notice.flags.filter(status=FieldSafetyFlag.Status.CLOSED).count() == 1
    assert all(flag.implant.pump_model.reservoir_ml == 40 for flag in notice.flags.all())
    assert "Demo logins: 5 created, 0 already there." in first_output
    assert "Demo logins: 0 created, 5 already there." in second_output
    assert "Demo clinic: 40 patients (40 new)" in first_output
    assert "Demo clinic: 40 patients (0 new)" in second_output
    assert DEMO_PASSWORD in second_output
    # The two patient logins open the portal of a demo patient each.
    assert Patient.objects.filter(user__username__in=["patient1", "patient2"]).count() == 2


def test_the_demo_logins_have_their_roles_and_the_documented_password(client):
    seed("--force", "--users-only")

    for username, role in LOGINS.items():
        user = User.objects.get(username=username)
        assert [g.name for g in user.groups.all()] == [role]
        response = client.post("/accounts/login/", {"username": username, "password": DEMO_PASSWORD})
        assert response.status_code == 302, username
        client.post("/accounts/logout/")
    admin = User.objects.get(username="admin")
    # The clinic admin runs the Django admin through is_staff and the role's permissions: not a
    # superuser, who would pass every clinician-only check (tests/itbclinic/accounts/test_superuser.py).
    assert (admin.is_staff, admin.is_superuser) == (True, False)
    assert not User.objects.filter(is_superuser=True).exists()
    assert not User.objects.filter(is_staff=True).exclude(username="admin").exists()


def test_the_demo_password_passes_the_validators():
    for demo in DEMO_USERS:
        validate_password(DEMO_PASSWORD, user=User(username=demo.username, email=f"{demo.username}@example.org"))


def test_a_second_run_keeps_a_changed_password_and_repairs_a_lost_role():
    seed("--force", "--users-only")
    nurse = User.objects.get(username="nurse")
    nurse.set_password("the-nurse-chose-this-one")
    nurse.save()
    nurse.groups.clear()

    seed("--force", "--users-only")

    nurse.refresh_from_db()
    assert nurse.check_password("the-nurse-chose-this-one")
    assert list(nurse.groups.all()) == [Group.objects.get(name="nurse")]


def test_the_demo_clinic_admin_does_a_clinic_admins_work_and_no_clinicians(client):
    seed("--force", "--users-only")
    User.objects.filter(username="admin").update(is_superuser=True)  # a demo database of before
    seed("--force", "--users-only")  # repairs the flag
    client.post("/accounts/login/", {"username": "admin", "password": DEMO_PASSWORD})

    # users, roles, clinic settings, catalogues, lockouts and the access log in the Django admin
    for url in (
        "/admin/",
        "/admin/accounts/user/",
        "/admin/accounts/user/add/",
        "/admin/refills/clinicsettings/",
        "/admin/pumps/pumpmodel/",
        "/admin/pumps/drug/",
        "/admin/axes/accessattempt/",
        "/admin/audit/accesslog/",
    ):
        assert client.get(url).status_code == 200, url
    # but no clinician's or nurse's action
    assert client.get("/staff/patients/new/").status_code == 403
    assert client.post("/api/trials/", {}, content_type="application/json").status_code == 403
    assert not User.objects.get(username="admin").is_superuser
