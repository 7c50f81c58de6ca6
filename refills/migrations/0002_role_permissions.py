from django.db import migrations

from itbclinic.accounts.roles import Role, grant_role_permissions


def grant(apps, schema_editor):
    grant_role_permissions(
        apps,
        {
            Role.NURSE: {
                "refills.refillvisit": ["view", "add", "change"],
                "refills.appointment": ["view", "add", "change"],
                "refills.appointmentchangerequest": ["view", "change"],
                "refills.reminder": ["view"],
                "refills.alert": ["view", "change"],
                "refills.clinicsettings": ["view"],
                "refills.closedday": ["view"],
            },
            Role.CLINICIAN: {
                "refills.refillvisit": ["view"],
                # Clinicians may book too: only they may override the safe window with a reason.
                "refills.appointment": ["view", "add", "change"],
                "refills.appointmentchangerequest": ["view"],
                "refills.reminder": ["view"],
                "refills.alert": ["view", "change"],
                "refills.clinicsettings": ["view"],
                "refills.closedday": ["view"],
            },
            Role.CLINIC_ADMIN: {
                "refills.clinicsettings": ["view", "change"],
                "refills.closedday": ["view", "add", "change", "delete"],
                "refills.reminder": ["view"],
                "refills.alert": ["view"],
            },
            Role.PATIENT: {
                "refills.refillvisit": ["view"],
                "refills.appointment": ["view"],
                "refills.appointmentchangerequest": ["view", "add"],
            },
        },
    )


def create_settings(apps, schema_editor):
    apps.get_model("refills", "ClinicSettings").objects.get_or_create(pk=1)


class Migration(migrations.Migration):
    dependencies = [("refills", "0001_initial"), ("accounts", "0002_roles")]
    operations = [
        migrations.RunPython(grant, migrations.RunPython.noop),
        migrations.RunPython(create_settings, migrations.RunPython.noop),
    ]
