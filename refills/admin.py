"""Admin of the care schedule: clinic settings, closed days, visits, appointments, reminders, alerts."""

from django import forms
from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from audit.mixins import ClinicalRecordAdmin
from core.admin import ReadOnlyAdminMixin, ReadOnlyTabularInline
from pumps.admin import DosePrescriptionAdmin, DrugAdmin, DrugPumpIntervalAdmin, PumpModelAdmin
from pumps.models import DosePrescription, Drug, DrugPumpInterval, PumpModel

from .models import (
    Alert,
    Appointment,
    AppointmentChangeRequest,
    AppointmentNotice,
    ClinicSettings,
    ClosedDay,
    DeliveryAttempt,
    FieldSafetyFlag,
    FieldSafetyNotice,
    RefillVisit,
    Reminder,
    ReservoirEmptying,
    TaskRun,
)
from .services import care_record_mark_entered_in_error, forecasts_recompute_after_catalogue_change


class RecomputesForecastsAdminMixin:
    """A catalogue row that feeds the forecast (alarm volume, flow, stability cap) recomputes the
    affected pumps when saved; the pumps app's admin is extended here because pumps never calls
    into the care schedule (STYLE.md "The house")."""

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        forecasts_recompute_after_catalogue_change(record=obj)

    def save_related(self, request, form, formsets, change):
        # Caps edited inline (DrugPumpInterval under a drug or a pump model) feed it too.
        super().save_related(request, form, formsets, change)
        forecasts_recompute_after_catalogue_change(record=form.instance)


class CareRecordAdminMixin:
    """A refill, dose or emptying marked in error changes the forecast: the care schedule's
    service recomputes it in the same transaction."""

    def record_mark_entered_in_error(self, *, record, by, reason: str) -> None:
        care_record_mark_entered_in_error(record=record, by=by, reason=reason)


for _model, _admin in ((PumpModel, PumpModelAdmin), (Drug, DrugAdmin), (DrugPumpInterval, DrugPumpIntervalAdmin)):
    admin.site.unregister(_model)
    admin.site.register(_model, type(_admin.__name__, (RecomputesForecastsAdminMixin, _admin), {}))
admin.site.unregister(DosePrescription)
admin.site.register(DosePrescription, type("DosePrescriptionAdmin", (CareRecordAdminMixin, DosePrescriptionAdmin), {}))


PATIENT_SEARCH = ("patient__mrn", "patient__given_name", "patient__family_name")


WEEKDAYS = [
    (0, "Monday"),
    (1, "Tuesday"),
    (2, "Wednesday"),
    (3, "Thursday"),
    (4, "Friday"),
    (5, "Saturday"),
    (6, "Sunday"),
]
DOSE_ORIGINS = {"spinal": "Spinal", "cerebral": "Cerebral", "other": "Other", "child": "Child"}


class WholeNumbersField(forms.Field):
    """Whole numbers typed as "14, 2" (stored as the list [14, 2], largest first, each once)."""

    def __init__(self, *, low: int, high: int, **kwargs):
        self.low, self.high = low, high
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        return value

    def to_python(self, value) -> list[int]:
        text = str(value or "").strip()
        parts = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
        if not all(p.isdigit() for p in parts):
            raise forms.ValidationError("Give whole numbers of days separated by commas, e.g. 14, 2.")
        numbers = sorted({int(p) for p in parts}, reverse=True)
        if any(n < self.low or n > self.high for n in numbers):
            raise forms.ValidationError(f"Each number must be between {self.low} and {self.high}.")
        return numbers


class DoseRangesField(forms.Field):
    """The usual daily doses, one line per origin: "Spinal: 300 to 800" (stored by origin as [low, high])."""

    widget = forms.Textarea(attrs={"rows": 4, "cols": 30})

    def prepare_value(self, value):
        if isinstance(value, dict):
            return "\n".join(
                f"{label}: {value[key][0]} to {value[key][1]}" for key, label in DOSE_ORIGINS.items() if key in value
            )
        return value

    def to_python(self, value) -> dict[str, list[int]]:
        ranges: dict[str, list[int]] = {}
        by_label = {label.lower(): key for key, label in DOSE_ORIGINS.items()}
        for line in str(value or "").splitlines():
            if not line.strip():
                continue
            origin, _, numbers = line.partition(":")
            low, sep, high = numbers.replace("–", " to ").replace("-", " to ").partition(" to ")
            key = by_label.get(origin.strip().lower())
            if key is None or not sep or not low.strip().isdigit() or not high.strip().isdigit():
                raise forms.ValidationError(
                    f"Write each line as “Spinal: 300 to 800” ({', '.join(DOSE_ORIGINS.values())}); "
                    f"this one reads “{line.strip()}”."
                )
            if int(low) >= int(high):
                raise forms.ValidationError(f"{DOSE_ORIGINS[key]}: the lower dose must be below the higher.")
            ranges[key] = [int(low), int(high)]
        missing = [label for key, label in DOSE_ORIGINS.items() if key not in ranges]
        if missing:
            raise forms.ValidationError(f"Give a range for each origin: {', '.join(missing)} missing.")
        return ranges


class ClinicSettingsForm(forms.ModelForm):
    """The list settings as a clinic admin reads them: weekdays ticked, "14, 2", "Spinal: 300 to 800"."""

    # No Meta: the admin builds the form from ClinicSettingsAdmin's fieldsets.
    reminder_offsets_days = WholeNumbersField(
        low=0,
        high=365,
        label="Reminder days",
        help_text="Days before an appointment that patients are reminded, separated by commas, e.g. 14, 2.",
    )
    # Monday is 0, Sunday 6 (Python's weekday()).
    closed_weekdays = forms.TypedMultipleChoiceField(
        choices=WEEKDAYS,
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Closed weekdays",
        help_text="Days of the week the clinic never books refills.",
    )
    usual_dose_ranges = DoseRangesField(
        label="Usual daily doses (mcg/day)",
        help_text="One line per origin of the spasticity, and for children; a dose outside asks to confirm.",
    )

    def clean_closed_weekdays(self) -> list[int]:
        return sorted(set(self.cleaned_data["closed_weekdays"]))


@admin.register(ClinicSettings)
class ClinicSettingsAdmin(SimpleHistoryAdmin):
    """One row (ClinicSettings.load()): no second one, never deleted."""

    form = ClinicSettingsForm
    list_display = (
        "name",
        "phone",
        "safety_margin_days",
        "refill_window_days",
        "refills_per_day",
        "reminder_days",
        "closed_days",
    )
    fieldsets = (
        ("Clinic", {"fields": ("name", "phone", "emergency_phone", "address", "nursing_email", "default_place")}),
        (
            "Scheduling",
            {
                "fields": (
                    "safety_margin_days",
                    "refill_window_days",
                    "refills_per_day",
                    "home_visits_per_day",
                    "closed_weekdays",
                    "holiday_country",
                    "holiday_subdivision",
                )
            },
        ),
        ("Reminders", {"fields": ("reminder_offsets_days", "reminder_hour")}),
        (
            "Alerts",
            {
                "fields": (
                    "unbooked_alert_days",
                    "urgent_alert_days",
                    "no_show_after_hours",
                    "replacement_alert_days",
                    "clinicians_email",
                )
            },
        ),
    )

    @admin.display(description="reminder days")
    def reminder_days(self, obj: ClinicSettings) -> str:
        return ", ".join(str(d) for d in obj.reminder_offsets_days)

    @admin.display(description="closed weekdays")
    def closed_days(self, obj: ClinicSettings) -> str:
        names = dict(WEEKDAYS)
        return ", ".join(names[d] for d in sorted(obj.closed_weekdays) if d in names) or "none"

    def get_fieldsets(self, request, obj=None):
        # A setting added later still shows up, under "Other", until it is given its place.
        placed = {name for _title, options in self.fieldsets for name in options["fields"]}
        rest = [
            f.name
            for f in ClinicSettings._meta.concrete_fields
            if f.editable and f.name not in placed and not f.primary_key
        ]
        return [*self.fieldsets, ("Other", {"fields": rest})] if rest else list(self.fieldsets)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        # The safety margin moves every pump's due-by date at once.
        forecasts_recompute_after_catalogue_change(record=obj)

    def has_add_permission(self, request) -> bool:
        return super().has_add_permission(request) and not ClinicSettings.objects.exists()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ClosedDay)
class ClosedDayAdmin(admin.ModelAdmin):
    list_display = ("date", "weekday", "reason")
    search_fields = ("reason",)
    date_hierarchy = "date"

    @admin.display(description="day", ordering="date")
    def weekday(self, obj: ClosedDay) -> str:
        return f"{obj.date:%A}"


@admin.register(RefillVisit)
class RefillVisitAdmin(CareRecordAdminMixin, ClinicalRecordAdmin):
    list_display = (
        "performed_at",
        "patient",
        "pump_serial",
        "concentration_mcg_per_ml",
        "volume_added_ml",
        "daily_dose_before_mcg",
        "daily_dose_after_mcg",
        "expected_residual_ml",
        "actual_residual_ml",
        "discrepancy_ml",
        "discrepancy_flagged",
        "due_by",
        "battery_status",
        "performed_by",
        "entered_in_error",
    )
    list_filter = ("discrepancy_flagged", "battery_status", "dosing_mode", "drug", "entered_in_error")
    search_fields = ("pump_serial", "drug_lot", *(f"implant__{name}" for name in PATIENT_SEARCH))
    date_hierarchy = "performed_at"
    list_select_related = ("implant__patient", "performed_by")
    # Volumes, doses and dates make the forecast: a wrong visit is marked in error and re-recorded.
    editable_fields = ("notes",)

    @admin.display(description="patient", ordering="implant__patient__family_name")
    def patient(self, obj: RefillVisit) -> str:
        return str(obj.implant.patient)


@admin.register(Appointment)
class AppointmentAdmin(ClinicalRecordAdmin):
    list_display = (
        "starts_at",
        "patient",
        "kind",
        "status",
        "place",
        "implant_serial",
        "booked_by",
        "visit",
        "entered_in_error",
    )
    list_filter = ("status", "kind", "entered_in_error")
    search_fields = (*PATIENT_SEARCH, "implant__serial_number", "place")
    date_hierarchy = "starts_at"
    list_select_related = ("patient", "implant", "booked_by", "visit")
    # Time and status change through appointment_move / _cancel / _mark_no_show (safe window, 409).
    editable_fields = ("place", "notes")

    @admin.display(description="pump serial", ordering="implant__serial_number")
    def implant_serial(self, obj: Appointment) -> str:
        return obj.implant.serial_number if obj.implant else ""


@admin.register(AppointmentChangeRequest)
class AppointmentChangeRequestAdmin(ReadOnlyAdminMixin, SimpleHistoryAdmin):
    list_display = ("requested_at", "patient", "appointment_at", "preferred_dates", "status", "handled_by")
    list_filter = ("status",)
    search_fields = tuple(f"appointment__{name}" for name in PATIENT_SEARCH)
    date_hierarchy = "requested_at"
    list_select_related = ("appointment__patient", "handled_by")

    @admin.display(description="patient", ordering="appointment__patient__family_name")
    def patient(self, obj: AppointmentChangeRequest) -> str:
        return str(obj.appointment.patient)

    @admin.display(description="appointment", ordering="appointment__starts_at")
    def appointment_at(self, obj: AppointmentChangeRequest):
        return obj.appointment.starts_at


class DeliveryAttemptInline(ReadOnlyTabularInline):
    """Each hand-over to the provider, written before the call: a crash shows as `started`."""

    model = DeliveryAttempt
    fields = ("started_at", "finished_at", "channel", "outcome", "provider_id", "error")
    readonly_fields = fields


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every hand-over of a reminder to the email/SMS provider (the duplicates figure counts these)."""

    list_display = ("started_at", "reminder", "channel", "outcome", "finished_at", "provider_id", "error")
    list_filter = ("outcome", "channel")
    date_hierarchy = "started_at"
    list_select_related = ("reminder",)
    raw_id_fields = ("reminder",)


@admin.register(AppointmentNotice)
class AppointmentNoticeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """What each patient was told of a moved or cancelled appointment, as sent (written by the services)."""

    list_display = ("created_at", "kind", "channel", "status", "attempts", "sent_at", "appointment")
    list_filter = ("kind", "status", "channel")
    date_hierarchy = "created_at"
    list_select_related = ("appointment",)
    raw_id_fields = ("appointment", "patient")


@admin.register(Reminder)
class ReminderAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    inlines = [DeliveryAttemptInline]
    list_display = (
        "send_at",
        "patient",
        "appointment_at",
        "offset_days",
        "channel",
        "status",
        "reason_code",
        "attempts",
        "send_count",
        "recovered_count",
        "sent_at",
        "last_error",
    )
    list_filter = ("status", "channel", "reason_code", "offset_days")
    search_fields = PATIENT_SEARCH
    date_hierarchy = "send_at"
    list_select_related = ("patient", "appointment")

    @admin.display(description="appointment", ordering="appointment_starts_at")
    def appointment_at(self, obj: Reminder):
        return obj.appointment_starts_at


class AlertOpenFilter(admin.SimpleListFilter):
    title = "open or resolved"
    parameter_name = "open"

    def lookups(self, request, model_admin):
        return [("yes", "Open"), ("no", "Resolved")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "no":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "raised_at",
        "severity",
        "kind",
        "audience",
        "patient",
        "key_date",
        "is_open",
        "emailed_at",
        "resolved_at",
        "resolved_by",
        "resolution",
    )
    list_filter = (AlertOpenFilter, "severity", "kind", "audience")
    search_fields = (*PATIENT_SEARCH, "message")
    date_hierarchy = "raised_at"
    list_select_related = ("patient", "resolved_by")

    @admin.display(boolean=True, description="open")
    def is_open(self, obj: Alert) -> bool:
        return obj.is_open


@admin.register(FieldSafetyNotice)
class FieldSafetyNoticeAdmin(ClinicalRecordAdmin):
    """A field-safety notice, read-only: issued from the recall search, followed on its staff page."""

    list_display = ("issued_at", "reference", "title", "issued_by", "entered_in_error")
    list_filter = ("entered_in_error",)
    search_fields = ("reference", "title")
    date_hierarchy = "issued_at"
    list_select_related = ("issued_by",)


@admin.register(FieldSafetyFlag)
class FieldSafetyFlagAdmin(ClinicalRecordAdmin):
    """One flagged pump of a notice, read-only: contacted and closed through the staff pages."""

    list_display = ("notice", "patient", "implant", "contact", "contacted_at", "status", "action_recorded_at")
    list_filter = ("status", "contact", "notice")
    search_fields = (*PATIENT_SEARCH, "implant__serial_number", "notice__reference")
    list_select_related = ("notice", "patient", "implant__pump_model")
    raw_id_fields = ("notice", "patient", "implant")


@admin.register(ReservoirEmptying)
class ReservoirEmptyingAdmin(CareRecordAdminMixin, ClinicalRecordAdmin):
    list_display = ("emptied_at", "implant", "reason", "volume_removed_ml", "recorded_by", "entered_in_error")
    list_filter = ("reason", "entered_in_error")
    search_fields = tuple(f"implant__{name}" for name in PATIENT_SEARCH)
    list_select_related = ("implant__patient", "implant__pump_model", "recorded_by")
    # The time feeds the forecast: a wrong emptying is marked in error and re-recorded.
    editable_fields = ("notes",)


@admin.register(TaskRun)
class TaskRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """When each scheduled task last ran: the watchdog's evidence (read-only)."""

    list_display = ("name", "last_started_at", "last_completed_at", "last_error")
