"""Admin of patients and screening trials: history kept, never deleted, writes through the services."""

from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from audit.mixins import ClinicalRecordAdmin
from core.admin import ReadOnlyAdminMixin, ReadOnlyTabularInline

from .models import AshworthScore, Patient, ScreeningTrial, TrialAssessment, TrialStep
from .services import PATIENT_EDITABLE_FIELDS, patient_create, patient_update

PATIENT_SEARCH = ("mrn", "given_name", "family_name")


def _search_through(prefix: str) -> tuple[str, ...]:
    return tuple(f"{prefix}__{name}" for name in PATIENT_SEARCH)


@admin.display(description="patient", ordering="trial__patient__family_name")
def trial_patient(obj) -> str:
    return str(obj.trial.patient)


class ScreeningTrialInline(ReadOnlyTabularInline):
    model = ScreeningTrial
    fields = ("started_on", "kind", "verdict", "positivity_rule", "effective_bolus_mcg", "effect_hours", "clinician")
    list_select_related = ("clinician",)


@admin.register(Patient)
class PatientAdmin(ClinicalRecordAdmin):
    list_display = (
        "mrn",
        "family_name",
        "given_name",
        "date_of_birth",
        "diagnosis",
        "status",
        "withdrawal_risk",
        "reminder_consent",
        "reminder_channel",
        "linked_account",
        "entered_in_error",
    )
    list_display_links = ("mrn", "family_name")
    list_filter = (
        "status",
        "spasticity_origin",
        "diagnosis",
        "risk_high_sci",
        "risk_communication_difficulty",
        "risk_previous_withdrawal",
        "reminder_consent",
        "reminder_channel",
        "entered_in_error",
    )
    search_fields = (*PATIENT_SEARCH, "email", "phone", "implants__serial_number")
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    editable_fields = tuple(sorted(PATIENT_EDITABLE_FIELDS))
    inlines = [ScreeningTrialInline]

    def has_add_permission(self, request) -> bool:
        # Patients are the one clinical record the admin may create: patient_create validates it.
        return admin.ModelAdmin.has_add_permission(self, request)

    @admin.display(boolean=True, description="withdrawal risk")
    def withdrawal_risk(self, obj: Patient) -> bool:
        return obj.has_withdrawal_risk_flag

    @admin.display(description="account", ordering="user__username")
    def linked_account(self, obj: Patient) -> str:
        return obj.user.username if obj.user else ""

    def save_model(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in form.cleaned_data if name in PATIENT_EDITABLE_FIELDS}
        if change:
            changed = {name: value for name, value in data.items() if name in form.changed_data}
            if changed:
                patient_update(patient=obj, data=changed)
        else:
            created = patient_create(data=data)
            obj.pk = created.pk
            obj._state.adding = False


class TrialStepInline(ReadOnlyTabularInline):
    model = TrialStep
    fields = ("given_at", "dose_mcg", "volume_ml", "route", "infusion_rate_mcg_per_day", "given_by", "entered_in_error")
    list_select_related = ("given_by",)


class TrialAssessmentInline(ReadOnlyTabularInline):
    model = TrialAssessment
    fields = ("hours_after", "assessed_at", "penn_score", "adverse_effects", "assessed_by", "entered_in_error")
    list_select_related = ("assessed_by",)


@admin.register(ScreeningTrial)
class ScreeningTrialAdmin(ClinicalRecordAdmin):
    list_display = (
        "patient",
        "started_on",
        "kind",
        "verdict",
        "positivity_rule",
        "effective_bolus_mcg",
        "effect_hours",
        "clinician",
        "entered_in_error",
    )
    list_filter = ("verdict", "kind", "positivity_rule", "entered_in_error")
    search_fields = _search_through("patient")
    date_hierarchy = "started_on"
    list_select_related = ("patient", "clinician")
    # The verdict, the rule and the effective bolus go through trial_record_verdict.
    editable_fields = ("kind", "started_on", "goals", "notes", "verdict_notes")
    inlines = [TrialStepInline, TrialAssessmentInline]


@admin.register(TrialStep)
class TrialStepAdmin(ClinicalRecordAdmin):
    list_display = (
        "given_at",
        trial_patient,
        "dose_mcg",
        "volume_ml",
        "route",
        "infusion_rate_mcg_per_day",
        "given_by",
        "entered_in_error",
    )
    list_filter = ("route", "entered_in_error")
    search_fields = _search_through("trial__patient")
    date_hierarchy = "given_at"
    list_select_related = ("trial__patient", "given_by")
    editable_fields = ("notes",)


class AshworthScoreInline(ReadOnlyTabularInline):
    model = AshworthScore
    fields = ("muscle_group", "score")
    show_change_link = False


@admin.register(TrialAssessment)
class TrialAssessmentAdmin(ClinicalRecordAdmin):
    list_display = (
        "assessed_at",
        trial_patient,
        "hours_after",
        "penn_score",
        "ashworth",
        "assessed_by",
        "entered_in_error",
    )
    list_filter = ("penn_score", "entered_in_error")
    search_fields = _search_through("trial__patient")
    date_hierarchy = "assessed_at"
    list_select_related = ("trial__patient", "assessed_by")
    editable_fields = ("range_of_motion_notes", "adverse_effects", "notes")
    inlines = [AshworthScoreInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("ashworth_scores")

    @admin.display(description="Modified Ashworth")
    def ashworth(self, obj: TrialAssessment) -> str:
        return ", ".join(f"{s.get_muscle_group_display()} {s.score}" for s in obj.ashworth_scores.all())


@admin.register(AshworthScore)
class AshworthScoreAdmin(ReadOnlyAdminMixin, SimpleHistoryAdmin):
    list_display = ("patient", "assessed_at", "hours_after", "muscle_group", "score")
    list_filter = ("muscle_group", "score")
    search_fields = _search_through("assessment__trial__patient")
    list_select_related = ("assessment__trial__patient",)

    @admin.display(description="patient", ordering="assessment__trial__patient__family_name")
    def patient(self, obj: AshworthScore) -> str:
        return str(obj.assessment.trial.patient)

    @admin.display(description="assessed at", ordering="assessment__assessed_at")
    def assessed_at(self, obj: AshworthScore):
        return obj.assessment.assessed_at

    @admin.display(description="hours after", ordering="assessment__hours_after")
    def hours_after(self, obj: AshworthScore):
        return obj.assessment.hours_after
