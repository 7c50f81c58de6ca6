from django.db import migrations

from itbclinic.accounts.roles import Role, grant_role_permissions

TRIAL_MODELS = ["screeningtrial", "trialstep", "trialassessment", "ashworthscore"]


def grant(apps, schema_editor):
    grant_role_permissions(
        apps,
        {
            Role.NURSE: {
                "patients.patient": ["view", "add", "change"],
                **{f"patients.{m}": ["view"] for m in TRIAL_MODELS},
            },
            Role.CLINICIAN: {
                "patients.patient": ["view", "add", "change"],
                **{f"patients.{m}": ["view", "add", "change"] for m in TRIAL_MODELS},
            },
            Role.CLINIC_ADMIN: {"patients.patient": ["view"]},
            # Object-level scoping (own records only) is enforced in selectors and views.
            Role.PATIENT: {"patients.patient": ["view"]},
        },
    )


class Migration(migrations.Migration):
    dependencies = [("patients", "0001_initial"), ("accounts", "0002_roles")]
    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
