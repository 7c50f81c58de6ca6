from django.db import migrations

from itbclinic.accounts.roles import Role, grant_role_permissions


def grant(apps, schema_editor):
    grant_role_permissions(apps, {Role.CLINIC_ADMIN: {"portal.carerlink": ["view"]}})


class Migration(migrations.Migration):
    dependencies = [("portal", "0001_initial"), ("accounts", "0002_roles")]
    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
