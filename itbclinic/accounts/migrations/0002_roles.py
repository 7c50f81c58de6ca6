"""The four roles exist from the first migrations; each app grants its own models' permissions."""

from django.db import migrations

from itbclinic.accounts.roles import Role, grant_role_permissions


def create_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for role in Role:
        Group.objects.get_or_create(name=role.value)
    grant_role_permissions(
        apps,
        {
            Role.CLINIC_ADMIN: {"accounts.user": ["view", "add", "change"], "auth.group": ["view"]},
        },
    )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]
    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
