"""MRNs are one identifier whatever their case: existing rows normalised, then a unique constraint on Upper(mrn).

Two patients whose MRNs differ only in case or surrounding spaces ("demo-0001", "DEMO-0001") would
be one MRN: the migration stops and names them, so the clinic merges or corrects one record first
(nothing is changed until no such pair remains). Names and MRN refuse control characters.
"""

import django.db.models.functions.text
from django.conf import settings
from django.db import migrations, models

import core.validators
import patients.models


def normalise_mrns(apps, schema_editor):
    Patient = apps.get_model("patients", "Patient")
    seen: dict[str, list[str]] = {}
    rows = list(Patient.objects.values_list("pk", "mrn"))
    for _, mrn in rows:
        seen.setdefault(mrn.strip().upper(), []).append(mrn)
    clashes = {key: mrns for key, mrns in seen.items() if len(mrns) > 1}
    if clashes:
        listed = "; ".join(
            f"{key}: {', '.join(repr(m) for m in sorted(mrns))}" for key, mrns in sorted(clashes.items())
        )
        raise RuntimeError(
            "Patients whose medical record numbers differ only in case or spaces would become one MRN. "
            f"Correct or merge them, then migrate again: {listed}"
        )
    for pk, mrn in rows:
        if mrn != mrn.strip().upper():
            # A queryset update: the normalised value is what the row always meant (no history row).
            Patient.objects.filter(pk=pk).update(mrn=mrn.strip().upper())


class Migration(migrations.Migration):
    dependencies = [
        ("patients", "0003_patient_address_and_edit_permissions"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="historicalpatient",
            name="family_name",
            field=models.CharField(max_length=100, validators=[core.validators.NoControlCharactersValidator()]),
        ),
        migrations.AlterField(
            model_name="historicalpatient",
            name="given_name",
            field=models.CharField(max_length=100, validators=[core.validators.NoControlCharactersValidator()]),
        ),
        migrations.AlterField(
            model_name="historicalpatient",
            name="mrn",
            field=patients.models.MRNField(
                db_index=True,
                max_length=32,
                validators=[core.validators.NoControlCharactersValidator()],
                verbose_name="medical record number",
            ),
        ),
        migrations.AlterField(
            model_name="patient",
            name="family_name",
            field=models.CharField(max_length=100, validators=[core.validators.NoControlCharactersValidator()]),
        ),
        migrations.AlterField(
            model_name="patient",
            name="given_name",
            field=models.CharField(max_length=100, validators=[core.validators.NoControlCharactersValidator()]),
        ),
        migrations.AlterField(
            model_name="patient",
            name="mrn",
            field=patients.models.MRNField(
                max_length=32,
                unique=True,
                validators=[core.validators.NoControlCharactersValidator()],
                verbose_name="medical record number",
            ),
        ),
        migrations.RunPython(normalise_mrns, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="patient",
            constraint=models.UniqueConstraint(
                django.db.models.functions.text.Upper("mrn"),
                name="patient_mrn_unique_case_insensitive",
                violation_error_message="A patient with this medical record number already exists.",
            ),
        ),
    ]
