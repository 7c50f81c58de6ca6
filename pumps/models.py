"""Pump and drug catalogues, implants and dose prescriptions. Knows patients, never refills."""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.template.defaultfilters import pluralize
from simple_history.models import HistoricalRecords

from core.formatting import format_drug, format_pump
from core.records import ClinicalRecord
from patients.models import VERTEBRAL_LEVELS, Patient


class PumpModel(models.Model):
    """A catalogue row of settings per pump model (docs/domain.md "Pumps"); editable in the admin."""

    class Flow(models.TextChoices):
        PROGRAMMABLE = "programmable", "Programmable"
        CONSTANT = "constant", "Constant flow (dose changes only via concentration)"

    manufacturer = models.CharField(max_length=100)
    name = models.CharField(max_length=100)
    reservoir_ml = models.DecimalField(max_digits=5, decimal_places=1)
    flow = models.CharField(max_length=16, choices=Flow.choices)
    alarm_threshold_ml = models.DecimalField(
        max_digits=4, decimal_places=1, help_text="Low-reservoir alarm volume used for the refill date."
    )
    # Battery: None for pumps without a battery (Codman 3000 is never replaced for battery).
    battery_earliest_end_years = models.PositiveSmallIntegerField(null=True, blank=True)
    battery_hard_stop_years = models.PositiveSmallIntegerField(null=True, blank=True)
    replacement_plan_months_before = models.PositiveSmallIntegerField(default=6)
    eri_grace_days = models.PositiveSmallIntegerField(null=True, blank=True)
    # Tolerances: aspiration discrepancy [S27], post-fill (pocket fill) discrepancy [S28].
    residual_tolerance_ml = models.DecimalField(
        max_digits=4, decimal_places=1, default=2, help_text="Aspiration discrepancy above this is flagged."
    )
    pocket_fill_tolerance_ml = models.DecimalField(
        max_digits=4, decimal_places=1, default=1, help_text="Post-fill discrepancy that may mean a pocket fill."
    )
    mri_note = models.TextField(blank=True)
    # The manufacturer's patient/clinician helpline for this model, shown on the emergency pump
    # passport. Left blank until the clinic confirms it from the pump's own patient card.
    helpline_phone = models.CharField(
        max_length=40, blank=True, help_text="Manufacturer's helpline (from the pump's patient card)."
    )
    # Constant-flow pumps: the restrictor's flow, labelled per pump; this is the default an
    # implant starts from (docs/domain.md "What feeds the forecast") [S25].
    default_flow_ml_per_day = models.DecimalField(
        max_digits=6, decimal_places=3, null=True, blank=True, help_text="Constant-flow pumps only."
    )
    # The programmable range from the model's IFU (catalogue settings with safe defaults): a
    # daily volume or an alarm volume outside it cannot be programmed, so it cannot be true.
    min_flow_ml_per_day = models.DecimalField(max_digits=6, decimal_places=3, default=Decimal("0.020"))
    max_flow_ml_per_day = models.DecimalField(max_digits=6, decimal_places=3, default=Decimal("24.000"))
    alarm_min_ml = models.DecimalField(max_digits=4, decimal_places=1, default=Decimal("0.0"))
    alarm_max_ml = models.DecimalField(max_digits=4, decimal_places=1, default=Decimal("10.0"))
    patient_boluses = models.BooleanField(  # [S21]
        default=False, help_text="Patient-activated boluses possible (Prometra PTC)."
    )
    is_active = models.BooleanField(default=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["manufacturer", "name", "reservoir_ml"]
        constraints = [
            models.UniqueConstraint(
                fields=["manufacturer", "name", "reservoir_ml"],
                name="pumpmodel_unique",
                violation_error_message="This pump model is already in the catalogue.",
            ),
            models.CheckConstraint(
                condition=Q(reservoir_ml__gt=0),
                name="pumpmodel_reservoir_positive",
                violation_error_message="The reservoir must be more than 0 mL.",
            ),
            models.CheckConstraint(
                condition=Q(alarm_threshold_ml__gte=0) & Q(alarm_threshold_ml__lt=F("reservoir_ml")),
                name="pumpmodel_alarm_below_reservoir",
                violation_error_message="The alarm volume must be 0 mL or more and less than the reservoir.",
            ),
            models.CheckConstraint(
                condition=Q(battery_hard_stop_years__isnull=True)
                | Q(battery_earliest_end_years__isnull=True)
                | Q(battery_earliest_end_years__lte=F("battery_hard_stop_years")),
                name="pumpmodel_battery_window_ordered",
                violation_error_message="The earliest battery end cannot be after the latest (hard stop).",
            ),
            models.CheckConstraint(
                condition=Q(min_flow_ml_per_day__gt=0) & Q(min_flow_ml_per_day__lt=F("max_flow_ml_per_day")),
                name="pumpmodel_flow_range_ordered",
                violation_error_message="The lowest daily volume must be more than 0 and less than the highest.",
            ),
            models.CheckConstraint(
                condition=Q(alarm_min_ml__gte=0) & Q(alarm_min_ml__lte=F("alarm_max_ml")),
                name="pumpmodel_alarm_range_ordered",
                violation_error_message="The lowest alarm volume must be 0 mL or more and no more than the highest.",
            ),
            models.CheckConstraint(
                condition=Q(default_flow_ml_per_day__isnull=True) | Q(default_flow_ml_per_day__gt=0),
                name="pumpmodel_default_flow_positive",
                violation_error_message="The default flow must be more than 0 mL/day.",
            ),
        ]

    def __str__(self) -> str:
        return format_pump(self)

    @property
    def is_constant_flow(self) -> bool:
        return self.flow == self.Flow.CONSTANT

    @property
    def has_battery(self) -> bool:
        return self.battery_hard_stop_years is not None or self.battery_earliest_end_years is not None


class Drug(models.Model):
    """A drug product at one concentration (docs/domain.md "Drugs")."""

    name = models.CharField(max_length=100)
    concentration_mcg_per_ml = models.DecimalField(max_digits=7, decimal_places=1)
    screening_only = models.BooleanField(default=False)
    compounded = models.BooleanField(default=False)
    # docs/domain.md "Drugs": no label cap for baclofen was found; the seed leaflet gives 2–6 months,
    # so 180 days until the clinic confirms it from the product's label (blank: no cap).
    max_interval_days = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        default=180,
        help_text="Stability cap on the refill interval, whatever the volume (confirm from the label).",
    )
    # Hard bounds on a daily dose (catalogue settings, safe defaults): outside them an entry is
    # refused as a typo. The usual ranges, which ask for confirmation, are clinic settings.
    min_daily_dose_mcg = models.DecimalField(max_digits=8, decimal_places=2, default=Decimal("10"))
    max_daily_dose_mcg = models.DecimalField(max_digits=8, decimal_places=2, default=Decimal("2000"))
    is_active = models.BooleanField(default=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["name", "concentration_mcg_per_ml"]
        constraints = [
            models.UniqueConstraint(
                fields=["name", "concentration_mcg_per_ml"],
                name="drug_unique",
                violation_error_message="This drug at this concentration is already in the catalogue.",
            ),
            models.CheckConstraint(
                condition=Q(concentration_mcg_per_ml__gt=0),
                name="drug_concentration_positive",
                violation_error_message="The concentration must be more than 0 mcg/mL.",
            ),
            models.CheckConstraint(
                condition=Q(min_daily_dose_mcg__gt=0) & Q(min_daily_dose_mcg__lt=F("max_daily_dose_mcg")),
                name="drug_dose_bounds_ordered",
                violation_error_message="The lowest daily dose must be more than 0 and less than the highest.",
            ),
        ]

    def __str__(self) -> str:
        return format_drug(self)


class DrugPumpInterval(models.Model):
    """A refill-interval cap for one drug in one pump model (overrides the drug's own cap)."""

    drug = models.ForeignKey(Drug, on_delete=models.CASCADE, related_name="pump_intervals")
    pump_model = models.ForeignKey(PumpModel, on_delete=models.CASCADE, related_name="drug_intervals")
    max_interval_days = models.PositiveSmallIntegerField()

    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["drug", "pump_model"],
                name="drugpumpinterval_unique",
                violation_error_message="This drug already has a refill interval for this pump model.",
            ),
            models.CheckConstraint(
                condition=Q(max_interval_days__gt=0),
                name="drugpumpinterval_positive",
                violation_error_message="The refill interval must be at least 1 day.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.drug} in {self.pump_model}: {self.max_interval_days} day{pluralize(self.max_interval_days)}"


class Implant(ClinicalRecord):
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="implants")
    pump_model = models.ForeignKey(PumpModel, on_delete=models.PROTECT, related_name="implants")
    # Copied from the model so "serial unique per manufacturer" can be a database constraint.
    manufacturer = models.CharField(max_length=100, editable=False)
    serial_number = models.CharField(max_length=64)
    implanted_on = models.DateField()
    surgeon = models.CharField(max_length=200)
    hospital = models.CharField(max_length=200)
    catheter_model = models.CharField(max_length=100, blank=True)
    catheter_tip_level = models.CharField(max_length=3, choices=VERTEBRAL_LEVELS)
    mri_notes = models.TextField(blank=True)
    eri_reported_on = models.DateField("ERI reported on", null=True, blank=True)
    explanted_on = models.DateField(null=True, blank=True)
    explant_reason = models.TextField(blank=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # The fill in theatre: the first interval of the forecast starts at the implant.
    fill_volume_ml = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    fill_drug = models.ForeignKey(Drug, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    fill_drug_lot = models.CharField(max_length=64, blank=True)
    fill_alarm_threshold_ml = models.DecimalField(max_digits=4, decimal_places=1, null=True, blank=True)
    # Constant-flow pumps: the flow labelled on this pump (defaults from the model).
    flow_ml_per_day = models.DecimalField(max_digits=6, decimal_places=3, null=True, blank=True)
    # The forecast in force, computed from the pump's whole history by one pure function
    # (refills/forecasting.py) and stored by the care schedule's services in the same transaction
    # as every write that changes the history, so the clinic's schedule is one indexed query.
    forecast_alarm_on = models.DateField(null=True, blank=True, editable=False)
    forecast_empty_on = models.DateField(null=True, blank=True, editable=False)
    forecast_due_by = models.DateField(null=True, blank=True, editable=False, db_index=True)
    # Why there is no forecast (blank when there is one): see refills.forecasting.Problem.
    forecast_problem = models.CharField(max_length=24, blank=True, editable=False)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-implanted_on", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["manufacturer", "serial_number"],
                condition=Q(entered_in_error=False),
                name="implant_serial_unique_per_manufacturer",
                violation_error_message="A pump with this serial number from this manufacturer is already recorded.",
            ),
            models.UniqueConstraint(
                fields=["patient"],
                condition=Q(explanted_on__isnull=True, entered_in_error=False),
                name="implant_one_active_per_patient",
                violation_error_message="This patient already has a pump in place: record its explant first.",
            ),
            models.CheckConstraint(
                condition=Q(explanted_on__isnull=True) | Q(explanted_on__gte=F("implanted_on")),
                name="implant_explant_after_implant",
                violation_error_message="The explant date cannot be before the implant date.",
            ),
            models.CheckConstraint(
                condition=Q(eri_reported_on__isnull=True) | Q(eri_reported_on__gte=F("implanted_on")),
                name="implant_eri_after_implant",
                violation_error_message="The ERI date cannot be before the implant date.",
            ),
            models.CheckConstraint(
                condition=Q(fill_volume_ml__isnull=True) | Q(fill_volume_ml__gt=0),
                name="implant_fill_positive",
                violation_error_message="The fill volume must be more than 0 mL.",
            ),
            models.CheckConstraint(
                condition=Q(flow_ml_per_day__isnull=True) | Q(flow_ml_per_day__gt=0),
                name="implant_flow_positive",
                violation_error_message="The flow must be more than 0 mL/day.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pump_model} #{self.serial_number}"

    @property
    def is_active(self) -> bool:
        return self.explanted_on is None and not self.entered_in_error


class DosePrescription(ClinicalRecord):
    """The dose in force from `effective_at` on: the prescription history of one implant.

    A refill visit that changes the dose writes one too; the forecast always uses the latest.
    """

    class Mode(models.TextChoices):
        SIMPLE_CONTINUOUS = "simple_continuous", "Simple continuous"
        FLEX = "flex", "Flexible (steps per day)"
        PERIODIC_BOLUS = "periodic_bolus", "Periodic bolus"

    implant = models.ForeignKey(Implant, on_delete=models.PROTECT, related_name="prescriptions")
    effective_at = models.DateTimeField()
    daily_dose_mcg = models.DecimalField(
        max_digits=8, decimal_places=2, help_text="Total per 24 h (flex/bolus: the sum of the day)."
    )
    concentration_mcg_per_ml = models.DecimalField(max_digits=7, decimal_places=1)
    dosing_mode = models.CharField(max_length=20, choices=Mode.choices, default=Mode.SIMPLE_CONTINUOUS)
    # Flex: [{"start": "HH:MM", "mcg_per_hour": "…"}…]; periodic bolus: [{"at": "HH:MM", "mcg": "…"}…]
    schedule = models.JSONField(default=list, blank=True)
    # Patient-activated boluses (Prometra PTC): the forecast counts every allowed bolus [S21].
    patient_bolus_mcg = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    patient_boluses_per_day = models.PositiveSmallIntegerField(null=True, blank=True)
    prescribed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField(blank=True)
    # A change beyond the clinic's titration limits, confirmed by the prescribing clinician.
    titration_confirmed = models.BooleanField(default=False)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-effective_at", "-id"]
        get_latest_by = "effective_at"
        constraints = [
            models.CheckConstraint(
                condition=Q(daily_dose_mcg__gt=0),
                name="doseprescription_dose_positive",
                violation_error_message="The daily dose must be more than 0 mcg.",
            ),
            models.CheckConstraint(
                condition=Q(concentration_mcg_per_ml__gt=0),
                name="doseprescription_concentration_positive",
                violation_error_message="The concentration must be more than 0 mcg/mL.",
            ),
            models.CheckConstraint(
                condition=Q(patient_bolus_mcg__isnull=True) | Q(patient_bolus_mcg__gt=0),
                name="doseprescription_patient_bolus_positive",
                violation_error_message="The patient bolus must be more than 0 mcg.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.daily_dose_mcg} mcg/day from {self.effective_at:%Y-%m-%d}"

    @property
    def worst_case_daily_dose_mcg(self) -> Decimal:
        """The programmed day plus every allowed patient bolus: what the refill date counts [S21]."""
        if self.patient_bolus_mcg and self.patient_boluses_per_day:
            return self.daily_dose_mcg + self.patient_bolus_mcg * self.patient_boluses_per_day
        return self.daily_dose_mcg
