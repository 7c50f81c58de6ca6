"""Writes of patients and screening trials. Each service validates, then saves in one transaction."""

import datetime as dt
from collections.abc import Callable, Collection, Mapping
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from itbclinic.accounts.models import User

from .models import AshworthScore, Patient, ScreeningTrial, TrialAssessment, TrialStep

PATIENT_EDITABLE_FIELDS = frozenset(
    {
        "mrn",
        "given_name",
        "family_name",
        "date_of_birth",
        "spasticity_origin",
        "diagnosis",
        "diagnosis_detail",
        "sci_level",
        "risk_high_sci",
        "risk_communication_difficulty",
        "risk_previous_withdrawal",
        "email",
        "phone",
        "address_line1",
        "address_line2",
        "address_town",
        "address_postcode",
        "reminder_consent",
        "reminder_channel",
        "status",
        "referred_on",
        "notes",
        "user",
    }
)

# What a nurse, clinician or clinic admin may correct from the staff pages (the contact card).
PATIENT_CONTACT_FIELDS = frozenset(
    {
        "email",
        "phone",
        "address_line1",
        "address_line2",
        "address_town",
        "address_postcode",
        "reminder_consent",
        "reminder_channel",
    }
)


# Entries that cannot be true (docs/domain.md): a birth, referral or trial after today, or before 1900.
# pumps/rules.py holds the same kind of check for pump events, but patients may not import pumps
# (the apps depend one way: patients <- pumps <- refills), so this small one lives here.
EARLIEST_DAY = dt.date(1900, 1, 1)


def _day_errors(
    *, field: str, label: str, day: object, today: dt.date, not_before: tuple[str, object] | None = None
) -> dict[str, str]:
    """`day` after today, before 1900 or before `not_before` (label, date) -> {field: message}.

    Only a real date is judged: a missing or malformed value is the model's own error to report.
    """
    if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
        return {}
    if day > today:
        return {field: f"The {label} {day.isoformat()} is in the future: today is {today.isoformat()}."}
    if day < EARLIEST_DAY:
        return {field: f"The {label} {day.isoformat()} is before 1900: check the year."}
    if not_before is not None:
        limit_label, limit = not_before
        if isinstance(limit, dt.date) and day < limit:
            return {field: f"The {label} {day.isoformat()} is before the {limit_label} ({limit.isoformat()})."}
    return {}


def _patient_date_errors(*, patient: Patient, fields: Collection[str], today: dt.date) -> dict[str, str]:
    """Only the dates being set are judged, so an old odd record can still have its notes edited."""
    errors: dict[str, str] = {}
    if "date_of_birth" in fields:
        errors |= _day_errors(field="date_of_birth", label="date of birth", day=patient.date_of_birth, today=today)
    if "referred_on" in fields or ("date_of_birth" in fields and not errors):
        errors |= _day_errors(
            field="referred_on" if "referred_on" in fields else "date_of_birth",
            label="referral date",
            day=patient.referred_on,
            today=today,
            not_before=("date of birth", patient.date_of_birth),
        )
    return errors


def _full_clean(instance: models.Model, rules: Callable[[], Mapping[str, str]], *, unique: bool = True) -> None:
    """The model's own validation, then the service's rules, reported together field by field.

    The rules run after `full_clean` has turned the values into dates (data may hold text);
    a field the model already refused keeps only the model's message. `unique=False` leaves out
    the uniqueness queries, for a caller that has checked the whole batch at once.
    """
    try:
        instance.full_clean(validate_unique=unique, validate_constraints=unique)
    except ValidationError as exc:
        combined = exc.message_dict
    else:
        combined = {}
    for name, message in rules().items():
        if name not in combined:
            combined[name] = [message]
    if combined:
        raise ValidationError(combined)


def _apply(instance: models.Model, data: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = set(data) - allowed
    if unknown:
        raise ValidationError({name: "This field cannot be set here." for name in sorted(unknown)})
    for name, value in data.items():
        setattr(instance, name, value)


def patient_build(*, data: Mapping[str, Any], today: dt.date | None = None, check_unique: bool = True) -> Patient:
    """The patient `patient_create` saves, validated, not saved.

    `check_unique=False`: the caller has looked up every MRN of its batch in one query (the
    spreadsheet import) and the database's unique constraint still guards the insert.
    """
    today = today or timezone.localdate()
    patient = Patient()
    _apply(patient, data, PATIENT_EDITABLE_FIELDS)
    _full_clean(
        patient, lambda: _patient_date_errors(patient=patient, fields=data.keys(), today=today), unique=check_unique
    )
    return patient


@transaction.atomic
def patient_create(*, data: Mapping[str, Any], today: dt.date | None = None) -> Patient:
    """A new patient. `today` (clinic-local, default the clock's) bounds the birth and referral dates."""
    patient = patient_build(data=data, today=today)
    patient.save()
    return patient


@transaction.atomic
def patient_update(
    *,
    patient: Patient,
    data: Mapping[str, Any],
    today: dt.date | None = None,
    allowed: frozenset[str] = PATIENT_EDITABLE_FIELDS,
    change_reason: str = "",
) -> Patient:
    """Change the fields given; refused as a whole (nothing saved) when one of them cannot be true.

    `allowed` narrows what may be set (the staff contact card passes PATIENT_CONTACT_FIELDS);
    `change_reason` is kept with the row's history (django-simple-history).
    """
    today = today or timezone.localdate()
    patient = Patient.objects.select_for_update().get(pk=patient.pk)
    _apply(patient, data, allowed & PATIENT_EDITABLE_FIELDS)
    _full_clean(patient, lambda: _patient_date_errors(patient=patient, fields=data.keys(), today=today))
    if change_reason:
        patient._change_reason = change_reason  # type: ignore[attr-defined]  # read by simple_history
    patient.save()
    return patient


@transaction.atomic
def patient_status_change(*, patient: Patient, status: str, reason: str) -> Patient:
    """Active, transferred or deceased, with the reason kept in the history. Reminders stop for
    a patient who is not active (refills' planning and delivery read the status)."""
    reason = (reason or "").strip()
    errors = {}
    if status not in Patient.Status.values:
        errors["status"] = "Choose active, transferred or deceased."
    elif status == patient.status:
        errors["status"] = f"The patient is already {patient.get_status_display().lower()}."
    if not reason:
        errors["reason"] = "Say why the status changes (for example who told the clinic)."
    if errors:
        raise ValidationError(errors)
    return patient_update(
        patient=patient, data={"status": status}, allowed=frozenset({"status"}), change_reason=reason[:100]
    )


@transaction.atomic
def trial_start(
    *,
    patient: Patient,
    clinician: User,
    started_on: dt.date,
    kind: str = ScreeningTrial.Kind.BOLUS,
    positivity_rule: str = ScreeningTrial.Rule.CLINICIAN,
    goals: str = "",
    today: dt.date | None = None,
) -> ScreeningTrial:
    """A trial dated today or earlier (clinic-local `today`, default the clock's), not before birth."""
    today = today or timezone.localdate()
    trial = ScreeningTrial(
        patient=patient,
        clinician=clinician,
        started_on=started_on,
        kind=kind,
        positivity_rule=positivity_rule,
        goals=goals,
    )
    _full_clean(
        trial,
        lambda: _day_errors(
            field="started_on",
            label="trial date",
            day=trial.started_on,
            today=today,
            not_before=("patient's date of birth", patient.date_of_birth),
        ),
    )
    trial.save()
    return trial


@transaction.atomic
def trial_step_add(
    *,
    trial: ScreeningTrial,
    given_at: dt.datetime,
    dose_mcg: Decimal,
    volume_ml: Decimal,
    given_by: User,
    route: str = TrialStep.Route.LP_BOLUS,
    infusion_rate_mcg_per_day: Decimal | None = None,
    notes: str = "",
) -> TrialStep:
    if route == TrialStep.Route.CATHETER_INFUSION and not infusion_rate_mcg_per_day:
        raise ValidationError({"infusion_rate_mcg_per_day": "A catheter infusion needs its rate."})
    step = TrialStep(
        trial=trial,
        given_at=given_at,
        dose_mcg=dose_mcg,
        volume_ml=volume_ml,
        route=route,
        infusion_rate_mcg_per_day=infusion_rate_mcg_per_day,
        given_by=given_by,
        notes=notes,
    )
    step.full_clean()
    step.save()
    return step


@transaction.atomic
def trial_assessment_add(
    *,
    trial: ScreeningTrial,
    assessed_at: dt.datetime,
    assessed_by: User,
    hours_after: Decimal,
    ashworth: Mapping[str, str],
    step: TrialStep | None = None,
    penn_score: int | None = None,
    range_of_motion_notes: str = "",
    adverse_effects: str = "",
    notes: str = "",
) -> TrialAssessment:
    valid_groups = set(AshworthScore.MuscleGroup.values)
    valid_scores = set(AshworthScore.Score.values)
    errors = {}
    for group, score in ashworth.items():
        if group not in valid_groups:
            errors["ashworth"] = f"Unknown muscle group {group!r}."
        elif score not in valid_scores:
            errors["ashworth"] = f"Modified Ashworth score must be one of 0, 1, 1+, 2, 3, 4 (got {score!r})."
    if not ashworth and penn_score is None:
        # An assessment with nothing scored cannot show a change from baseline (docs/domain.md
        # "Screening"): the one home of this rule, for the staff form and the API alike.
        errors["ashworth"] = "Score at least one muscle group or the Penn scale."
    if step is not None and step.trial_id != trial.pk:
        errors["step"] = "This step belongs to another trial."
    if errors:
        raise ValidationError(errors)
    assessment = TrialAssessment(
        trial=trial,
        step=step,
        hours_after=hours_after,
        assessed_at=assessed_at,
        assessed_by=assessed_by,
        penn_score=penn_score,
        range_of_motion_notes=range_of_motion_notes,
        adverse_effects=adverse_effects,
        notes=notes,
    )
    assessment.full_clean()
    assessment.save()
    AshworthScore.objects.bulk_create(
        [AshworthScore(assessment=assessment, muscle_group=g, score=s) for g, s in ashworth.items()]
    )
    return assessment


@transaction.atomic
def trial_record_verdict(
    *,
    trial: ScreeningTrial,
    verdict: str,
    positivity_rule: str,
    by: User,
    effective_bolus_mcg: Decimal | None = None,
    effect_hours: Decimal | None = None,
    verdict_notes: str = "",
) -> ScreeningTrial:
    if verdict == ScreeningTrial.Verdict.POSITIVE and not effective_bolus_mcg:
        raise ValidationError({"effective_bolus_mcg": "A positive trial needs the effective bolus dose."})
    trial = ScreeningTrial.objects.select_for_update().get(pk=trial.pk)
    trial.verdict = verdict
    trial.positivity_rule = positivity_rule
    trial.effective_bolus_mcg = effective_bolus_mcg
    trial.effect_hours = effect_hours
    trial.verdict_notes = verdict_notes
    trial.full_clean()
    trial.save()
    return trial
