"""The pump and drug catalogues of docs/domain.md ("Pumps", "Drugs"); the clinic admin edits them."""

from decimal import Decimal

from django.db import migrations

from itbclinic.accounts.roles import Role, grant_role_permissions

SYNCHROMED_MRI = "Interrogate the pump after MRI: the motor may stall during the scan [S37][S38]."
PROMETRA_MRI = "Empty the pump before MRI [S19][S20]."

PUMP_MODELS = [
    # manufacturer, name, reservoir, flow, alarm, battery earliest end, hard stop, ERI grace, pocket tol., MRI note
    ("Medtronic", "SynchroMed II", "20", "programmable", "2.0", 5, 7, 90, "1.0", SYNCHROMED_MRI),
    ("Medtronic", "SynchroMed II", "40", "programmable", "2.0", 5, 7, 90, "2.0", SYNCHROMED_MRI),
    # Prometra's battery life is not published in what we read: the clinic sets it from the IFU.
    ("Flowonix (Infusyn)", "Prometra II", "20", "programmable", "3.0", None, None, None, "1.0", PROMETRA_MRI),
    ("Flowonix (Infusyn)", "Prometra II", "40", "programmable", "3.0", None, None, None, "2.0", PROMETRA_MRI),
    # Constant flow, no battery: never replaced for battery; alarm volume is a clinic setting.
    ("Codman", "Codman 3000", "30", "constant", "2.0", None, None, None, "2.0", ""),
    # Low-battery alarm after 5–8 years, no automatic shut-down.
    ("Medtronic", "SynchroMed EL", "10", "programmable", "2.0", 5, None, None, "1.0", SYNCHROMED_MRI),
    ("Medtronic", "SynchroMed EL", "18", "programmable", "2.0", 5, None, None, "1.0", SYNCHROMED_MRI),
]

DRUGS = [
    # name, concentration, screening only
    ("Baclofen intrathecal (Lioresal)", "50", True),
    ("Baclofen intrathecal (Lioresal)", "500", False),
    ("Baclofen intrathecal (Gablofen/generic)", "1000", False),
    ("Baclofen intrathecal (Lioresal)", "2000", False),
]


def load_catalogue(apps, schema_editor):
    PumpModel = apps.get_model("pumps", "PumpModel")
    Drug = apps.get_model("pumps", "Drug")
    for manufacturer, name, reservoir, flow, alarm, earliest, hard_stop, grace, pocket, mri in PUMP_MODELS:
        PumpModel.objects.update_or_create(
            manufacturer=manufacturer,
            name=name,
            reservoir_ml=Decimal(reservoir),
            defaults={
                "flow": flow,
                "alarm_threshold_ml": Decimal(alarm),
                "battery_earliest_end_years": earliest,
                "battery_hard_stop_years": hard_stop,
                "eri_grace_days": grace,
                "residual_tolerance_ml": Decimal("2.0"),
                "pocket_fill_tolerance_ml": Decimal(pocket),
                "mri_note": mri,
            },
        )
    for name, concentration, screening_only in DRUGS:
        Drug.objects.update_or_create(
            name=name,
            concentration_mcg_per_ml=Decimal(concentration),
            defaults={"screening_only": screening_only},
        )


def grant(apps, schema_editor):
    catalogue = ["pumpmodel", "drug", "drugpumpinterval"]
    grant_role_permissions(
        apps,
        {
            Role.NURSE: {
                "pumps.implant": ["view"],
                "pumps.doseprescription": ["view"],
                **{f"pumps.{m}": ["view"] for m in catalogue},
            },
            Role.CLINICIAN: {
                "pumps.implant": ["view", "add", "change"],
                "pumps.doseprescription": ["view", "add", "change"],
                **{f"pumps.{m}": ["view"] for m in catalogue},
            },
            Role.CLINIC_ADMIN: {
                "pumps.implant": ["view"],
                **{f"pumps.{m}": ["view", "add", "change"] for m in catalogue},
            },
            Role.PATIENT: {"pumps.implant": ["view"], "pumps.doseprescription": ["view"]},
        },
    )


class Migration(migrations.Migration):
    dependencies = [("pumps", "0001_initial"), ("accounts", "0002_roles")]
    operations = [
        migrations.RunPython(load_catalogue, migrations.RunPython.noop),
        migrations.RunPython(grant, migrations.RunPython.noop),
    ]
