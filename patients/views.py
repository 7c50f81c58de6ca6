"""Staff pages for patients and screening trials (the clinicians' trial record).

Each view checks the role and the model permission granted by the data migrations, validates a
form, calls one service or selector and renders.
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from audit.models import AccessLog
from audit.services import audit_record_access
from core.formatting import format_dose, plain_decimal
from core.forms import add_service_errors
from core.idempotency import idempotent_form
from core.web import form_data
from itbclinic.accounts.permissions import staff_required

from . import selectors, services
from .forms import (
    PatientForm,
    TrialAssessmentForm,
    TrialStartForm,
    TrialStepForm,
    TrialVerdictForm,
)
from .models import AshworthScore, Patient, ScreeningTrial


def staff_patient_get(request: HttpRequest, patient_id: int) -> Patient:
    return get_object_or_404(selectors.patient_list_visible_to(user=request.user), pk=patient_id)


@staff_required("patients.view_patient")
@require_http_methods(["GET"])
def patient_list(request: HttpRequest) -> HttpResponse:
    search = request.GET.get("q", "").strip()[:100]
    page = Paginator(selectors.patient_list(search=search), 50).get_page(request.GET.get("page"))
    return render(request, "patients/patient_list.html", {"page": page, "search": search})


@staff_required("patients.add_patient")
@require_http_methods(["GET", "POST"])
@idempotent_form
def patient_create(request: HttpRequest) -> HttpResponse:
    form = PatientForm(form_data(request))
    if request.method == "POST" and form.is_valid():
        try:
            patient = services.patient_create(data=form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"{patient.full_name} added.")
            return redirect("staff:patient_detail", patient_id=patient.pk)
    return render(request, "patients/patient_form.html", {"form": form}, status=400 if form.errors else 200)


@staff_required("patients.add_screeningtrial")
@require_http_methods(["GET", "POST"])
@idempotent_form
def trial_start(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = staff_patient_get(request, patient_id)
    form = TrialStartForm(form_data(request), initial={"started_on": timezone.localdate()})
    if request.method == "POST" and form.is_valid():
        try:
            trial = services.trial_start(patient=patient, clinician=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, "Trial started: record the baseline assessment, then the bolus.")
            return redirect("staff:trial_detail", trial_id=trial.pk)
    context = {"patient": patient, "form": form}
    return render(request, "patients/trial_start.html", context, status=400 if form.errors else 200)


def _trial_get(request: HttpRequest, trial_id: int) -> ScreeningTrial:
    visible = selectors.patient_list_visible_to(user=request.user)
    return get_object_or_404(
        ScreeningTrial.objects.valid().select_related("patient").filter(patient__in=visible), pk=trial_id
    )


def _render_trial(request: HttpRequest, trial: ScreeningTrial, *, status: int = 200, **forms) -> HttpResponse:
    summary = selectors.trial_get_summary(trial_id=trial.pk)
    now = timezone.localtime().replace(second=0, microsecond=0)
    steps = [s for s in summary.trial.steps.all() if not s.entered_in_error]
    last_step = steps[-1] if steps else None
    forms.setdefault("step_form", TrialStepForm(initial={"given_at": now}))
    forms.setdefault(
        "assessment_form",
        TrialAssessmentForm(
            trial=trial,
            initial={"assessed_at": now, "step": last_step, "hours_after": "0" if summary.baseline is None else "1"},
        ),
    )
    forms.setdefault(
        "verdict_form",
        TrialVerdictForm(
            initial={
                "verdict": trial.verdict,
                "positivity_rule": trial.positivity_rule,
                "effective_bolus_mcg": plain_decimal(
                    trial.effective_bolus_mcg or (last_step.dose_mcg if last_step else None)
                ),
                "effect_hours": plain_decimal(trial.effect_hours),
                "verdict_notes": trial.verdict_notes,
            }
        ),
    )
    scored_groups = [
        (value, label.replace(" (left)", " L").replace(" (right)", " R"))
        for value, label in AshworthScore.MuscleGroup.choices
        if any(value in change.mas for change in summary.changes)
    ]
    rows = [
        {"change": change, "scores": [change.mas.get(value, "") for value, _ in scored_groups]}
        for change in summary.changes
    ]
    context = {
        "trial": summary.trial,
        "patient": summary.trial.patient,
        "summary": summary,
        "steps": steps,
        "scored_groups": scored_groups,
        "rows": rows,
        "next_step": _trial_next_step(summary=summary, steps=steps),
        **forms,
    }
    return render(request, "patients/trial_detail.html", context, status=status)


def _trial_next_step(*, summary, steps) -> str:
    if summary.trial.verdict != ScreeningTrial.Verdict.PENDING:
        return "done"
    if summary.baseline is None:
        return "baseline"
    if not steps:
        return "bolus"
    if len(summary.changes) < 2:
        return "assess"
    return "verdict"


@staff_required("patients.view_screeningtrial")
@require_http_methods(["GET"])
def trial_detail(request: HttpRequest, trial_id: int) -> HttpResponse:
    trial = _trial_get(request, trial_id)
    # Access log of every view of a patient's record (SECURITY.md "Audit").
    audit_record_access(
        user=request.user, patient=trial.patient, action=AccessLog.Action.VIEW, request=request, detail="trial"
    )
    return _render_trial(request, trial)


@staff_required("patients.add_trialstep")
@require_POST
@idempotent_form
def trial_step_add(request: HttpRequest, trial_id: int) -> HttpResponse:
    trial = _trial_get(request, trial_id)
    form = TrialStepForm(request.POST)
    if form.is_valid():
        try:
            services.trial_step_add(trial=trial, given_by=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Dose of {format_dose(form.cleaned_data['dose_mcg'], per=None)} recorded.")
            return redirect("staff:trial_detail", trial_id=trial.pk)
    return _render_trial(request, trial, status=400, step_form=form)


@staff_required("patients.add_trialassessment")
@require_POST
@idempotent_form
def trial_assessment_add(request: HttpRequest, trial_id: int) -> HttpResponse:
    trial = _trial_get(request, trial_id)
    form = TrialAssessmentForm(request.POST, trial=trial)
    if form.is_valid():
        data = form.cleaned_data
        try:
            services.trial_assessment_add(
                trial=trial,
                assessed_at=data["assessed_at"],
                assessed_by=request.user,
                hours_after=data["hours_after"],
                ashworth=form.ashworth(),
                step=data["step"],
                penn_score=data["penn_score"],
                adverse_effects=data["adverse_effects"],
                notes=data["notes"],
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Assessment at {plain_decimal(data['hours_after'])} h recorded.")
            return redirect("staff:trial_detail", trial_id=trial.pk)
    return _render_trial(request, trial, status=400, assessment_form=form)


@staff_required("patients.change_screeningtrial")
@require_POST
@idempotent_form
def trial_verdict(request: HttpRequest, trial_id: int) -> HttpResponse:
    trial = _trial_get(request, trial_id)
    form = TrialVerdictForm(request.POST)
    if form.is_valid():
        try:
            services.trial_record_verdict(trial=trial, by=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, "Verdict recorded.")
            return redirect("staff:trial_detail", trial_id=trial.pk)
    return _render_trial(request, trial, status=400, verdict_form=form)
