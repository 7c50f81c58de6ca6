"""Patients and their screening (trial) injections. Knows neither pumps nor refills."""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper
from phonenumber_field.modelfields import PhoneNumberField
from simple_history.models import HistoricalRecords

from core.records import ClinicalRecord, HardDeleteForbidden
from core.validators import validate_no_control_characters

VERTEBRAL_LEVELS = [
    *[(f"C{i}", f"C{i}") for i in range(1, 8)],
    *[(f"T{i}", f"T{i}") for i in range(1, 13)],
    *[(f"L{i}", f"L{i}") for i in range(1, 6)],
    *[(f"S{i}", f"S{i}") for i in range(1, 6)],
]


def normalise_mrn(value: str) -> str:
    """An MRN as the clinic files it: no surrounding spaces, upper case ("demo-0001 " is DEMO-0001)."""
    return value.strip().upper()


class MRNField(models.CharField):
    """A medical record number, normalised (`normalise_mrn`) on every way in.

    Cleaning (forms, the admin, `full_clean` in the services), saving (also `bulk_create`) and
    every lookup (`filter(mrn=...)`, the unique checks of forms and serializers) see the
    normalised value, so `demo-0001` and `DEMO-0001` are one MRN everywhere; the constraint
    `patient_mrn_unique_case_insensitive` is the database's guarantee.
    """

    def to_python(self, value):
        value = super().to_python(value)
        return normalise_mrn(value) if isinstance(value, str) else value

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return normalise_mrn(value) if isinstance(value, str) else value

    def pre_save(self, model_instance, add):
        value = getattr(model_instance, self.attname)
        if isinstance(value, str):
            value = normalise_mrn(value)
            setattr(model_instance, self.attname, value)
        return value


class Patient(ClinicalRecord):
    class Origin(models.TextChoices):
        SPINAL = "spinal", "Spinal"
        CEREBRAL = "cerebral", "Cerebral"
        OTHER = "other", "Other"

    class Diagnosis(models.TextChoices):
        MS = "ms", "Multiple sclerosis"
        SCI = "sci", "Spinal cord injury"
        CP = "cp", "Cerebral palsy"
        BRAIN_INJURY = "brain_injury", "Brain injury"
        STROKE = "stroke", "Stroke"
        OTHER = "other", "Other"

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        SMS = "sms", "Text message (SMS)"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        TRANSFERRED = "transferred", "Transferred"
        DECEASED = "deceased", "Deceased"

    mrn = MRNField("medical record number", max_length=32, unique=True, validators=[validate_no_control_characters])
    given_name = models.CharField(max_length=100, validators=[validate_no_control_characters])
    family_name = models.CharField(max_length=100, validators=[validate_no_control_characters])
    date_of_birth = models.DateField()
    spasticity_origin = models.CharField(max_length=16, choices=Origin.choices)
    diagnosis = models.CharField(max_length=16, choices=Diagnosis.choices)
    diagnosis_detail = models.CharField(max_length=200, blank=True)
    sci_level = models.CharField("spinal cord injury level", max_length=3, choices=VERTEBRAL_LEVELS, blank=True)
    # Withdrawal-risk flags (docs/domain.md "Why a missed refill is an emergency").
    risk_high_sci = models.BooleanField("SCI at T6 or above", default=False)
    risk_communication_difficulty = models.BooleanField("communication difficulty", default=False)
    risk_previous_withdrawal = models.BooleanField("previous withdrawal", default=False)
    email = models.EmailField(blank=True)
    phone = PhoneNumberField(
        blank=True, help_text="As dialled in the clinic's country (e.g. 0121 234 5678), or + and the country code."
    )
    # A postal address in free lines, so it fits any country's format; a home visit goes here.
    address_line1 = models.CharField(
        "address line 1", max_length=200, blank=True, validators=[validate_no_control_characters]
    )
    address_line2 = models.CharField(
        "address line 2", max_length=200, blank=True, validators=[validate_no_control_characters]
    )
    address_town = models.CharField(
        "town or city", max_length=100, blank=True, validators=[validate_no_control_characters]
    )
    address_postcode = models.CharField(
        "postcode", max_length=20, blank=True, validators=[validate_no_control_characters]
    )
    reminder_consent = models.BooleanField(default=False)
    reminder_channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.EMAIL)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="patient"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    referred_on = models.DateField(null=True, blank=True)
    notes = models.TextField(blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["family_name", "given_name"]
        indexes = [models.Index(fields=["family_name", "given_name"], name="patient_name_idx")]
        permissions = [
            ("change_contact_patient", "Can change a patient's contact details and address"),
            ("change_status_patient", "Can change a patient's status (active, transferred, deceased)"),
        ]
        constraints = [
            models.UniqueConstraint(
                Upper("mrn"),
                name="patient_mrn_unique_case_insensitive",
                violation_error_message="A patient with this medical record number already exists.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.family_name}, {self.given_name} ({self.mrn})"

    @property
    def full_name(self) -> str:
        return f"{self.given_name} {self.family_name}"

    @property
    def address_lines(self) -> list[str]:
        """The postal address, one line per entry, empty lines left out ([] when none is recorded)."""
        lines = (self.address_line1, self.address_line2, self.address_town, self.address_postcode)
        return [line for line in lines if line]

    @property
    def has_withdrawal_risk_flag(self) -> bool:
        return self.risk_high_sci or self.risk_communication_difficulty or self.risk_previous_withdrawal


class ScreeningTrial(ClinicalRecord):
    """A screening trial: bolus steps (or a continuous infusion) and timed assessments."""

    class Kind(models.TextChoices):
        BOLUS = "bolus", "Bolus (lumbar puncture)"
        CONTINUOUS = "continuous", "Continuous infusion (temporary catheter)"

    class Verdict(models.TextChoices):
        PENDING = "pending", "Pending"
        POSITIVE = "positive", "Positive"
        NEGATIVE = "negative", "Negative"
        INCONCLUSIVE = "inconclusive", "Inconclusive"

    class Rule(models.TextChoices):
        # "Positive" is defined differently by study [S39–S41]: the rule is stored with the trial.
        MAS_LOWER_LIMB_MEAN_1 = "mas_lower_limb_mean_1", "Mean fall of 1 point in lower-limb Ashworth"
        MAS_OR_PENN_2 = "mas_or_penn_2", "Fall of 2 points in Ashworth or Penn"
        MAS_ONE_LEVEL_KEY = "mas_one_level_key", "One MAS level in key muscles"
        CLINICIAN = "clinician", "Clinician's judgement"

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="trials")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.BOLUS)
    started_on = models.DateField()
    clinician = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    goals = models.TextField(blank=True)
    verdict = models.CharField(max_length=16, choices=Verdict.choices, default=Verdict.PENDING)
    positivity_rule = models.CharField(max_length=32, choices=Rule.choices, default=Rule.CLINICIAN)
    verdict_notes = models.TextField(blank=True)
    effective_bolus_mcg = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    effect_hours = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    notes = models.TextField(blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-started_on", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(effective_bolus_mcg__isnull=True) | Q(effective_bolus_mcg__gt=0),
                name="screeningtrial_effective_bolus_positive",
                violation_error_message="The effective bolus must be more than 0 mcg.",
            ),
            models.CheckConstraint(
                condition=Q(effect_hours__isnull=True) | Q(effect_hours__gt=0),
                name="screeningtrial_effect_hours_positive",
                violation_error_message="The hours of effect must be more than 0.",
            ),
        ]

    def __str__(self) -> str:
        return f"Trial {self.started_on} for {self.patient_id} ({self.get_verdict_display()})"


class TrialStep(ClinicalRecord):
    """One test dose: a bolus, or a catheter infusion at a rate (continuous trial)."""

    class Route(models.TextChoices):
        LP_BOLUS = "lp_bolus", "Lumbar puncture bolus"
        CATHETER_INFUSION = "catheter_infusion", "Catheter infusion"

    trial = models.ForeignKey(ScreeningTrial, on_delete=models.PROTECT, related_name="steps")
    given_at = models.DateTimeField()
    dose_mcg = models.DecimalField(max_digits=8, decimal_places=2)
    volume_ml = models.DecimalField(max_digits=6, decimal_places=2)
    route = models.CharField(max_length=24, choices=Route.choices, default=Route.LP_BOLUS)
    infusion_rate_mcg_per_day = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    given_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    notes = models.TextField(blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["given_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(dose_mcg__gt=0),
                name="trialstep_dose_positive",
                violation_error_message="The dose must be more than 0 mcg.",
            ),
            models.CheckConstraint(
                condition=Q(volume_ml__gt=0),
                name="trialstep_volume_positive",
                violation_error_message="The volume must be more than 0 mL.",
            ),
            models.CheckConstraint(
                condition=Q(infusion_rate_mcg_per_day__isnull=True) | Q(infusion_rate_mcg_per_day__gt=0),
                name="trialstep_rate_positive",
                violation_error_message="The infusion rate must be more than 0 mcg/day.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.dose_mcg} mcg at {self.given_at:%Y-%m-%d %H:%M}"


class TrialAssessment(ClinicalRecord):
    """Scores at a time point: baseline (0 h) and about 1, 2, 4, 6, 8 h after a step."""

    trial = models.ForeignKey(ScreeningTrial, on_delete=models.PROTECT, related_name="assessments")
    step = models.ForeignKey(TrialStep, null=True, blank=True, on_delete=models.PROTECT, related_name="assessments")
    hours_after = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("0"))
    assessed_at = models.DateTimeField()
    penn_score = models.PositiveSmallIntegerField(
        "Penn spasm frequency", null=True, blank=True, validators=[MaxValueValidator(4)]
    )
    range_of_motion_notes = models.TextField(blank=True)
    adverse_effects = models.TextField(blank=True)
    notes = models.TextField(blank=True)
    assessed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    history = HistoricalRecords()

    class Meta:
        ordering = ["assessed_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(penn_score__lte=4),
                name="trialassessment_penn_range",
                violation_error_message="The Penn spasm score goes from 0 to 4.",
            ),
            models.CheckConstraint(
                condition=Q(hours_after__gte=0),
                name="trialassessment_hours_not_negative",
                violation_error_message="The hours after the dose cannot be negative.",
            ),
        ]

    @property
    def is_baseline(self) -> bool:
        return self.hours_after == 0


class AshworthScore(models.Model):
    """Modified Ashworth Scale for one muscle group in one assessment."""

    class Score(models.TextChoices):
        S0 = "0", "0"
        S1 = "1", "1"
        S1PLUS = "1+", "1+"
        S2 = "2", "2"
        S3 = "3", "3"
        S4 = "4", "4"

    class MuscleGroup(models.TextChoices):
        HIP_FLEXORS_L = "hip_flexors_l", "Hip flexors (left)"
        HIP_FLEXORS_R = "hip_flexors_r", "Hip flexors (right)"
        HIP_ADDUCTORS_L = "hip_adductors_l", "Hip adductors (left)"
        HIP_ADDUCTORS_R = "hip_adductors_r", "Hip adductors (right)"
        KNEE_EXTENSORS_L = "knee_extensors_l", "Knee extensors (left)"
        KNEE_EXTENSORS_R = "knee_extensors_r", "Knee extensors (right)"
        KNEE_FLEXORS_L = "knee_flexors_l", "Knee flexors (left)"
        KNEE_FLEXORS_R = "knee_flexors_r", "Knee flexors (right)"
        ANKLE_PLANTARFLEXORS_L = "ankle_plantarflexors_l", "Ankle plantarflexors (left)"
        ANKLE_PLANTARFLEXORS_R = "ankle_plantarflexors_r", "Ankle plantarflexors (right)"
        ELBOW_FLEXORS_L = "elbow_flexors_l", "Elbow flexors (left)"
        ELBOW_FLEXORS_R = "elbow_flexors_r", "Elbow flexors (right)"
        WRIST_FLEXORS_L = "wrist_flexors_l", "Wrist flexors (left)"
        WRIST_FLEXORS_R = "wrist_flexors_r", "Wrist flexors (right)"

    assessment = models.ForeignKey(TrialAssessment, on_delete=models.PROTECT, related_name="ashworth_scores")
    muscle_group = models.CharField(max_length=32, choices=MuscleGroup.choices)
    score = models.CharField(max_length=2, choices=Score.choices)

    history = HistoricalRecords()

    class Meta:
        ordering = ["muscle_group"]
        constraints = [
            models.UniqueConstraint(
                fields=["assessment", "muscle_group"],
                name="ashworthscore_one_per_muscle",
                violation_error_message="This muscle group already has a score in this assessment.",
            ),
            models.CheckConstraint(
                condition=Q(score__in=["0", "1", "1+", "2", "3", "4"]),
                name="ashworthscore_score_valid",
                violation_error_message="The Ashworth score is one of 0, 1, 1+, 2, 3 or 4.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_muscle_group_display()}: {self.score}"

    def delete(self, *args, **kwargs):
        raise HardDeleteForbidden("Ashworth scores are never deleted: mark the assessment entered in error.")
