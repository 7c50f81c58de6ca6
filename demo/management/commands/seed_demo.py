"""
`python manage.py seed_demo`: the demo logins, then the demo clinic. Idempotent.

The users come first (staff record the care, two patients get portal logins), then
`seed_clinic` builds about forty patients at every stage (demo/clinic.py). Running it again
creates nothing new and never resets a password someone changed.

The demo password is published (README), so the command refuses to run unless DEBUG is on
(the local demo, `make run`) or --force is given.
"""

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from demo.clinic import seed_clinic as build_demo_clinic
from itbclinic.accounts.models import User
from itbclinic.accounts.roles import Role
from patients.models import Patient

DEMO_PASSWORD = "itb-demo-pass-2026"  # noqa: S105  (documented in the README: demo only)


@dataclass(frozen=True)
class DemoUser:
    username: str
    role: Role
    first_name: str
    last_name: str


DEMO_USERS = [
    DemoUser("nurse", Role.NURSE, "Nina", "Okafor"),
    DemoUser("clinician", Role.CLINICIAN, "Colin", "Hart"),
    # The clinic admin also runs the Django admin (settings, catalogues, accounts, lockouts): is_staff
    # and the role's permissions, never a superuser (a superuser passes every permission check).
    DemoUser("admin", Role.CLINIC_ADMIN, "Alex", "Morgan"),
    # Names come from the patient record each is linked to by seed_clinic.
    DemoUser("patient1", Role.PATIENT, "", ""),
    DemoUser("patient2", Role.PATIENT, "", ""),
]


@transaction.atomic
def seed_users() -> tuple[dict[str, User], int]:
    """The demo logins (created once, their role and flags repaired); returns them and how many are new."""
    users, created = {}, 0
    for demo in DEMO_USERS:
        user, is_new = User.objects.get_or_create(
            username=demo.username,
            defaults={
                "first_name": demo.first_name,
                "last_name": demo.last_name,
                "email": f"{demo.username}@example.org",
            },
        )
        if is_new:
            user.set_password(DEMO_PASSWORD)
            created += 1
        user.is_staff = demo.role == Role.CLINIC_ADMIN
        user.is_superuser = False  # repairs a demo database from before the admin was a plain role
        user.save()
        user.groups.add(Group.objects.get(name=demo.role.value))
        users[demo.username] = user
    return users, created


def seed_clinic(*, users: dict[str, User]) -> dict[str, int]:
    """The demo clinic's patients, trials, pumps, refills and appointments (demo/clinic.py)."""
    counts = build_demo_clinic(today=timezone.localdate(), users=users)
    for user in (users["patient1"], users["patient2"]):
        patient = Patient.objects.filter(user=user).first()
        if patient is not None and not user.first_name:
            User.objects.filter(pk=user.pk).update(first_name=patient.given_name, last_name=patient.family_name)
    return counts


class Command(BaseCommand):
    help = "Create the demo logins and the demo clinic (idempotent; DEBUG only unless --force)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--force", action="store_true", help="Seed even with DEBUG off (never on a real clinic's database)."
        )
        parser.add_argument("--users-only", action="store_true", help="Create the demo logins only.")

    def handle(self, *args, force: bool = False, users_only: bool = False, **options):
        if not settings.DEBUG and not force:
            raise CommandError(
                "seed_demo creates logins with a published password: it runs only with DJANGO_DEBUG=true "
                "(the local demo). Use --force to seed a non-production database anyway."
            )
        users, created = seed_users()
        self.stdout.write(f"Demo logins: {created} created, {len(users) - created} already there.")
        if not users_only:
            counts = seed_clinic(users=users)
            self.stdout.write(
                "Demo clinic: {patients} patients ({patients_created} new), {implants} pumps, "
                "{refill_visits} refill visits, {appointments} appointments.".format(**counts)
            )
        self.stdout.write("")
        self.stdout.write(f"Log in with any of these (password {DEMO_PASSWORD!r} for new accounts):")
        for demo in DEMO_USERS:
            self.stdout.write(f"  {demo.username:<10} {demo.role.value.replace('_', ' ')}")
