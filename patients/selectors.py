"""Reads of patients and screening trials."""

from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.models import AnonymousUser
from django.db.models import Q, QuerySet

from itbclinic.accounts.models import User
from itbclinic.accounts.roles import Role, is_staff_member, user_roles

from .calculations import mas_numeric, mean_change_from_baseline, starting_daily_dose
from .models import Patient, ScreeningTrial, TrialAssessment


def patient_list_visible_to(*, user: User | AnonymousUser) -> QuerySet[Patient]:
    """Every patient for staff; a patient user sees only their own record (never 403: just absent)."""
    if is_staff_member(user):
        return Patient.objects.valid()
    if Role.PATIENT in user_roles(user):
        return Patient.objects.valid().filter(user=user)
    return Patient.objects.none()


def patient_list(*, search: str = "", status: str | None = None) -> QuerySet[Patient]:
    qs = Patient.objects.valid()
    if status:
        qs = qs.filter(status=status)
    if search:
        term = search.strip()
        qs = qs.filter(
            Q(mrn__icontains=term)
            | Q(given_name__icontains=term)
            | Q(family_name__icontains=term)
            | Q(implants__serial_number__icontains=term)
        ).distinct()
    return qs


@dataclass(frozen=True, slots=True)
class AssessmentChange:
    assessment: TrialAssessment
    mas: dict[str, str]
    mas_mean_change: Decimal | None
    penn_change: int | None


@dataclass(frozen=True, slots=True)
class TrialSummary:
    trial: ScreeningTrial
    baseline: TrialAssessment | None
    changes: list[AssessmentChange]
    best_mas_change: Decimal | None
    suggested_starting_dose_mcg: Decimal | None


def trial_get_summary(*, trial_id: int) -> TrialSummary:
    """The trial with each assessment's change from baseline and the suggested starting dose [S13]."""
    trial = (
        ScreeningTrial.objects.select_related("patient", "clinician")
        .prefetch_related("steps", "assessments__ashworth_scores")
        .get(pk=trial_id)
    )
    assessments = [a for a in trial.assessments.all() if not a.entered_in_error]
    baseline = next((a for a in assessments if a.is_baseline), None)
    baseline_mas = {s.muscle_group: s.score for s in baseline.ashworth_scores.all()} if baseline else {}
    changes = []
    for assessment in assessments:
        mas = {s.muscle_group: s.score for s in assessment.ashworth_scores.all()}
        changes.append(
            AssessmentChange(
                assessment=assessment,
                mas=mas,
                mas_mean_change=(
                    mean_change_from_baseline(baseline=baseline_mas, after=mas)
                    if baseline and assessment is not baseline
                    else None
                ),
                penn_change=(
                    assessment.penn_score - baseline.penn_score
                    if baseline
                    and assessment is not baseline
                    and assessment.penn_score is not None
                    and baseline.penn_score is not None
                    else None
                ),
            )
        )
    mas_changes = [c.mas_mean_change for c in changes if c.mas_mean_change is not None]
    dose = None
    if trial.effective_bolus_mcg and trial.effect_hours:
        dose = starting_daily_dose(effective_bolus_mcg=trial.effective_bolus_mcg, effect_hours=trial.effect_hours)
    return TrialSummary(
        trial=trial,
        baseline=baseline,
        changes=changes,
        best_mas_change=min(mas_changes) if mas_changes else None,
        suggested_starting_dose_mcg=dose,
    )


__all__ = [
    "AssessmentChange",
    "TrialSummary",
    "mas_numeric",
    "patient_list",
    "patient_list_visible_to",
    "trial_get_summary",
]
