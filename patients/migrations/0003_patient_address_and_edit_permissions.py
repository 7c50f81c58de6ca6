# The postal address of a patient, and who may edit contact details or status from the staff pages.

import core.validators
from django.db import migrations, models

from itbclinic.accounts.roles import Role, grant_role_permissions


def grant(apps, schema_editor):
    # Contact details and address: every staff role (the clinic admin keeps the patient list up to
    # date). Status (transferred, deceased) ends reminders: clinicians and the clinic admin.
    grant_role_permissions(
        apps,
        {
            Role.NURSE: {"patients.patient": ["change_contact"]},
            Role.CLINICIAN: {"patients.patient": ["change_contact", "change_status"]},
            Role.CLINIC_ADMIN: {"patients.patient": ["change_contact", "change_status"]},
        },
    )


class Migration(migrations.Migration):
    dependencies = [
        ("patients", "0002_role_permissions"),
        ("accounts", "0002_roles"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="patient",
            options={
                "ordering": ["family_name", "given_name"],
                "permissions": [
                    ("change_contact_patient", "Can change a patient's contact details and address"),
                    ("change_status_patient", "Can change a patient's status (active, transferred, deceased)"),
                ],
            },
        ),
        migrations.AddField(
            model_name="historicalpatient",
            name="address_line1",
            field=models.CharField(
                blank=True,
                max_length=200,
                validators=[core.validators.NoControlCharactersValidator()],
                verbose_name="address line 1",
            ),
        ),
        migrations.AddField(
            model_name="historicalpatient",
            name="address_line2",
            field=models.CharField(
                blank=True,
                max_length=200,
                validators=[core.validators.NoControlCharactersValidator()],
                verbose_name="address line 2",
            ),
        ),
        migrations.AddField(
            model_name="historicalpatient",
            name="address_postcode",
            field=models.CharField(
                blank=True,
                max_length=20,
                validators=[core.validators.NoControlCharactersValidator()],
                verbose_name="postcode",
            ),
        ),
        migrations.AddField(
            model_name="historicalpatient",
            name="address_town",
            field=models.CharField(
                blank=True,
                max_length=100,
                validators=[core.validators.NoControlCharactersValidator()],
                verbose_name="town or city",
            ),
        ),
        migrations.AddField(
            model_name="patient",
            name="address_line1",
            field=models.CharField(
                blank=True,
                max_length=200,
                validators=[core.validators.NoControlCharactersValidator()],
                verbose_name="address line 1",
            ),
        ),
        migrations.AddField(
            model_name="patient",
            name="address_line2",
            field=models.CharField(
                blank=True,
                max_length=200,
                validators=[core.validators.NoControlCharactersValidator()],
                verbose_name="address line 2",
            ),
        ),
        migrations.AddField(
            model_name="patient",
            name="address_postcode",
            field=models.CharField(
                blank=True,
                max_length=20,
                validators=[core.validators.NoControlCharactersValidator()],
                verbose_name="postcode",
            ),
        ),
        migrations.AddField(
            model_name="patient",
            name="address_town",
            field=models.CharField(
                blank=True,
                max_length=100,
                validators=[core.validators.NoControlCharactersValidator()],
                verbose_name="town or city",
            ),
        ),
        migrations.RunPython(grant, migrations.RunPython.noop),
    ]
