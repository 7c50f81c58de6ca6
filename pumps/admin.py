"""Admin of the pump and drug catalogues (the clinic admin edits them), implants and dose history."""

from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from audit.mixins import ClinicalRecordAdmin
from core.admin import ReadOnlyTabularInline

from .models import DosePrescription, Drug, DrugPumpInterval, Implant, PumpModel

PATIENT_SEARCH = ("patient__mrn", "patient__given_name", "patient__family_name")


class DrugPumpIntervalInline(admin.TabularInline):
    model = DrugPumpInterval
    extra = 0


@admin.register(PumpModel)
class PumpModelAdmin(SimpleHistoryAdmin):
    list_display = (
        "manufacturer",
        "name",
        "reservoir_ml",
        "flow",
        "alarm_threshold_ml",
        "battery_earliest_end_years",
        "battery_hard_stop_years",
        "replacement_plan_months_before",
        "eri_grace_days",
        "residual_tolerance_ml",
        "pocket_fill_tolerance_ml",
        "is_active",
    )
    list_display_links = ("manufacturer", "name")
    list_filter = ("manufacturer", "flow", "is_active")
    search_fields = ("manufacturer", "name")
    inlines = [DrugPumpIntervalInline]


@admin.register(Drug)
class DrugAdmin(SimpleHistoryAdmin):
    list_display = (
        "name",
        "concentration_mcg_per_ml",
        "screening_only",
        "compounded",
        "max_interval_days",
        "is_active",
    )
    list_filter = ("screening_only", "compounded", "is_active")
    search_fields = ("name",)
    inlines = [DrugPumpIntervalInline]


@admin.register(DrugPumpInterval)
class DrugPumpIntervalAdmin(SimpleHistoryAdmin):
    list_display = ("drug", "pump_model", "max_interval_days")
    list_filter = ("pump_model", "drug")
    search_fields = ("drug__name", "pump_model__name", "pump_model__manufacturer")
    list_select_related = ("drug", "pump_model")


class ActiveImplantFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "In place"), ("explanted", "Explanted"), ("eri", "ERI reported, in place")]

    def queryset(self, request, queryset):
        match self.value():
            case "active":
                return queryset.filter(explanted_on__isnull=True)
            case "explanted":
                return queryset.filter(explanted_on__isnull=False)
            case "eri":
                return queryset.filter(explanted_on__isnull=True, eri_reported_on__isnull=False)
        return queryset


class DosePrescriptionInline(ReadOnlyTabularInline):
    model = DosePrescription
    fields = (
        "effective_at",
        "daily_dose_mcg",
        "concentration_mcg_per_ml",
        "dosing_mode",
        "prescribed_by",
        "reason",
        "entered_in_error",
    )
    list_select_related = ("prescribed_by",)


@admin.register(Implant)
class ImplantAdmin(ClinicalRecordAdmin):
    list_display = (
        "serial_number",
        "patient",
        "pump_model",
        "implanted_on",
        "forecast_due_by",
        "forecast_alarm_on",
        "eri_reported_on",
        "explanted_on",
        "entered_in_error",
    )
    list_filter = (ActiveImplantFilter, "pump_model", "catheter_tip_level", "entered_in_error")
    search_fields = ("serial_number", *PATIENT_SEARCH)
    date_hierarchy = "implanted_on"
    list_select_related = ("patient", "pump_model")
    # Dates that drive the schedule (implant, ERI, explant) and the forecast go through the services.
    editable_fields = ("serial_number", "surgeon", "hospital", "catheter_model", "catheter_tip_level", "mri_notes")
    inlines = [DosePrescriptionInline]


@admin.register(DosePrescription)
class DosePrescriptionAdmin(ClinicalRecordAdmin):
    list_display = (
        "effective_at",
        "patient",
        "serial_number",
        "daily_dose_mcg",
        "concentration_mcg_per_ml",
        "dosing_mode",
        "prescribed_by",
        "entered_in_error",
    )
    list_filter = ("dosing_mode", "concentration_mcg_per_ml", "entered_in_error")
    search_fields = ("implant__serial_number", *(f"implant__{name}" for name in PATIENT_SEARCH))
    date_hierarchy = "effective_at"
    list_select_related = ("implant__patient", "prescribed_by")
    # A dose change moves the forecast: it is recorded through dose_change_record, never edited here.
    editable_fields = ("reason",)

    @admin.display(description="patient", ordering="implant__patient__family_name")
    def patient(self, obj: DosePrescription) -> str:
        return str(obj.implant.patient)

    @admin.display(description="pump serial", ordering="implant__serial_number")
    def serial_number(self, obj: DosePrescription) -> str:
        return obj.implant.serial_number
