"""The clinic admin sees django-axes' login attempts and lifts a lockout (deletes the attempt row).

Before, the demo clinic admin was a superuser and had this implicitly; the role now says it.
"""

from django.db import migrations

from itbclinic.accounts.roles import Role, grant_role_permissions


def grant(apps, schema_editor):
    grant_role_permissions(
        apps,
        {Role.CLINIC_ADMIN: {"axes.accessattempt": ["view", "delete"], "axes.accesslog": ["view"]}},
    )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_roles"), ("axes", "0009_add_session_hash")]
    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
