from django.db import migrations

from itbclinic.accounts.roles import Role, grant_role_permissions


def grant(apps, schema_editor):
    # Onboarding a clinic is the clinic admin's job: it creates patients, pumps and refills at once.
    grant_role_permissions(apps, {Role.CLINIC_ADMIN: {"interop.clinicimport": ["view", "add"]}})


class Migration(migrations.Migration):
    dependencies = [
        ("interop", "0001_clinic_import"),
        ("accounts", "0002_roles"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
