"""Writes of patients and screening trials. Each service validates, then saves in one transaction."""

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

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
        "reminder_consent",
        "reminder_channel",
        "status",
        "referred_on",
        "notes",
        "user",
    }
)


def _apply(instance, data: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = set(data) - allowed
    if unknown:
        raise ValidationError({name: "This field cannot be set here." for name in sorted(unknown)})
    for name, value in data.items():
        setattr(instance, name, value)


@transaction.atomic
def patient_create(*, data: Mapping[str, Any]) -> Patient:
    patient = Patient()
    _apply(patient, data, PATIENT_EDITABLE_FIELDS)
    patient.full_clean()
    patient.save()
    return patient


@transaction.atomic
def patient_update(*, patient: Patient, data: Mapping[str, Any]) -> Patient:
    patient = Patient.objects.select_for_update().get(pk=patient.pk)
    _apply(patient, data, PATIENT_EDITABLE_FIELDS)
    patient.full_clean()
    patient.save()
    return patient


@transaction.atomic
def clinical_record_mark_entered_in_error(*, record, by, reason: str) -> None:
    if not reason or not reason.strip():
        raise ValidationError({"reason": "Say why this record was entered in error."})
    record.mark_entered_in_error(by=by, reason=reason.strip())


@transaction.atomic
def trial_start(
    *,
    patient: Patient,
    clinician,
    started_on: dt.date,
    kind: str = ScreeningTrial.Kind.BOLUS,
    positivity_rule: str = ScreeningTrial.Rule.CLINICIAN,
    goals: str = "",
) -> ScreeningTrial:
    trial = ScreeningTrial(
        patient=patient,
        clinician=clinician,
        started_on=started_on,
        kind=kind,
        positivity_rule=positivity_rule,
        goals=goals,
    )
    trial.full_clean()
    trial.save()
    return trial


@transaction.atomic
def trial_step_add(
    *,
    trial: ScreeningTrial,
    given_at: dt.datetime,
    dose_mcg: Decimal,
    volume_ml: Decimal,
    given_by,
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
    assessed_by,
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
    by,
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
