"""REST API of the care schedule: dose prescriptions, refill visits, appointments, the refill
forecast for given inputs (the staff form calls it live), the list of implants due for a refill
and the open alerts.

Views validate the shape of the input and call one service or selector; the rules live there.
"""

import datetime as dt
from decimal import Decimal

import django_filters
from django.utils import timezone
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.decorators import action
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from audit.api import AuditedPatientAccessMixin
from core.api import (
    ClinicalDateField,
    ClinicalDateTimeField,
    ClinicAutoSchema,
    ClinicJSONParser,
    ClinicModelPermissions,
    ClinicPagination,
    IdFilter,
    ListRetrieveMixin,
    MarkEnteredInErrorMixin,
    ScopedPrimaryKeyRelatedField,
    StrictBooleanField,
    StrictCharField,
    StrictChoiceField,
    StrictDecimalField,
    StrictIntegerField,
    StrictModelSerializer,
    exception_handler,
    reject_unknown_query_parameters,
    text,
)
from itbclinic.accounts.models import User
from itbclinic.accounts.permissions import role_required
from itbclinic.accounts.roles import Role
from patients.api import patient_field
from patients.api_base import PatientRecordViewSet, scope_by_patients
from pumps.api import (
    DrugPumpIntervalViewSet,
    DrugViewSet,
    ForecastProblemDisplayField,
    ImplantExplantSerializer,
    ImplantRegisterSerializer,
    ImplantSerializer,
    ImplantViewSet,
    PumpModelViewSet,
)
from pumps.models import DosePrescription, Drug, Implant

from .alerts.reads import alert_list_open
from .calculations import residual_discrepancy
from .filters import AppointmentFilter, DosePrescriptionFilter, RefillVisitFilter
from .models import SAFETY_CHECK_ITEMS, Alert, Appointment, ClinicSettings, RefillVisit, ReservoirEmptying
from .no_shows import appointment_mark_no_show
from .selectors import (
    implant_get_expected_residual,
    max_interval_days_get,
    patient_list_due_for_refill,
    refill_forecast_compute,
)
from .services import (
    appointment_book,
    appointment_cancel,
    appointment_move,
    care_record_mark_entered_in_error,
    dose_change_record,
    forecasts_recompute_after_catalogue_change,
    implant_explant_record,
    implant_register_with_fill,
    implant_replace,
    refill_visit_record,
    reservoir_empty_record,
)


def visible_implants(request):
    return scope_by_patients(Implant.objects.valid(), request, path="patient")


def implant_field(**kwargs) -> ScopedPrimaryKeyRelatedField:
    return ScopedPrimaryKeyRelatedField(model=Implant, scope=visible_implants, **kwargs)


def drug_field(**kwargs) -> ScopedPrimaryKeyRelatedField:
    return ScopedPrimaryKeyRelatedField(model=Drug, scope=lambda request: Drug.objects.filter(is_active=True), **kwargs)


def mcg(**kwargs) -> serializers.DecimalField:
    """A dose in mcg: above zero, to 0.01 mcg."""
    return StrictDecimalField(max_digits=8, decimal_places=2, min_value=Decimal("0.01"), **kwargs)


# The safety checklist as the API reads and writes it: each item and its reason.
SAFETY_CHECK_FIELDS = [field for name in SAFETY_CHECK_ITEMS for field in (name, f"{name}_reason")]


def ml(*, max_digits: int = 5, decimal_places: int = 2, minimum: str = "0", **kwargs) -> serializers.DecimalField:
    return StrictDecimalField(
        max_digits=max_digits, decimal_places=decimal_places, min_value=Decimal(minimum), **kwargs
    )


class ScheduleEntrySerializer(serializers.Serializer):
    """One step of a flex schedule (`start`, `mcg_per_hour`) or one periodic bolus (`at`, `mcg`)."""

    start = serializers.TimeField(required=False, format="%H:%M", input_formats=["%H:%M"])
    mcg_per_hour = StrictDecimalField(max_digits=8, decimal_places=3, min_value=Decimal("0"), required=False)
    at = serializers.TimeField(required=False, format="%H:%M", input_formats=["%H:%M"])
    mcg = StrictDecimalField(max_digits=8, decimal_places=2, min_value=Decimal("0"), required=False)

    def validate(self, attrs):
        if not (("start" in attrs and "mcg_per_hour" in attrs) or ("at" in attrs and "mcg" in attrs)):
            raise serializers.ValidationError("Give either start and mcg_per_hour, or at and mcg.")
        # Stored as JSON: times as HH:MM, amounts as decimal strings (exact, never floats).
        return {k: (v.strftime("%H:%M") if hasattr(v, "strftime") else str(v)) for k, v in attrs.items()}


def schedule_field() -> serializers.ListField:
    return serializers.ListField(child=ScheduleEntrySerializer(), required=False, default=list, max_length=48)


# ---------------------------------------------------------------------------
# Dose prescriptions (the dose history of each implant)
# ---------------------------------------------------------------------------
class DosePrescriptionOwnSerializer(StrictModelSerializer):
    """What a patient reads: the dose in force over time, not who prescribed it or why."""

    class Meta:
        model = DosePrescription
        fields = ["id", "implant", "effective_at", "daily_dose_mcg", "concentration_mcg_per_ml", "dosing_mode"]
        read_only_fields = fields


class DosePrescriptionSerializer(DosePrescriptionOwnSerializer):
    """A prescription as staff read it; the fields after the patient's own are staff-only."""

    class Meta(DosePrescriptionOwnSerializer.Meta):
        staff_only_fields = ["schedule", "prescribed_by", "reason", "created_at"]
        fields = [*DosePrescriptionOwnSerializer.Meta.fields, *staff_only_fields]
        read_only_fields = fields


class DoseChangeSerializer(serializers.Serializer):
    implant = implant_field()
    daily_dose_mcg = mcg(
        required=False, allow_null=True, default=None, help_text="Flex dosing: leave out, the steps are summed."
    )
    effective_at = ClinicalDateTimeField(help_text="Its exact time: past, or up to a year ahead.")
    dosing_mode = StrictChoiceField(
        choices=DosePrescription.Mode.choices, default=DosePrescription.Mode.SIMPLE_CONTINUOUS
    )
    schedule = schedule_field()
    patient_bolus_mcg = mcg(required=False, allow_null=True, default=None)
    patient_boluses_per_day = StrictIntegerField(
        min_value=1, max_value=48, required=False, allow_null=True, default=None
    )
    titration_confirmed = StrictBooleanField(
        required=False, default=False, help_text="The prescriber confirms a dose outside the usual range or limits."
    )
    reason = text()


class CareRecordMarkEnteredInErrorMixin(MarkEnteredInErrorMixin):
    def perform_mark_entered_in_error(self, *, record, reason: str) -> None:
        care_record_mark_entered_in_error(record=record, by=self.request.user, reason=reason)


class DosePrescriptionViewSet(ListRetrieveMixin, CareRecordMarkEnteredInErrorMixin, PatientRecordViewSet):
    """Dose history: a clinician records a dose change between refills (the concentration is the
    one in the reservoir); refill visits add their own entries."""

    permission_model = DosePrescription
    serializer_class = DosePrescriptionSerializer
    patient_serializer_class = DosePrescriptionOwnSerializer
    filterset_class = DosePrescriptionFilter
    ordering_fields = ["effective_at"]
    ordering = ["-effective_at", "-id"]
    audit_patient_path = "implant__patient"

    def base_queryset(self):
        return DosePrescription.objects.valid().select_related("implant__patient")

    def scope_queryset(self, queryset):
        return scope_by_patients(queryset, self.request, path="implant__patient")

    @extend_schema(request=DoseChangeSerializer, responses={201: DosePrescriptionSerializer})
    def create(self, request):
        prescription = dose_change_record(prescribed_by=request.user, **self.validated(DoseChangeSerializer))
        return self.output(prescription, status_code=status.HTTP_201_CREATED)


# ---------------------------------------------------------------------------
# Refill visits
# ---------------------------------------------------------------------------
class RefillVisitOwnSerializer(StrictModelSerializer):
    """What a patient reads of a refill: when, what was put in, and the next dates that follow."""

    class Meta:
        model = RefillVisit
        fields = [
            "id",
            "implant",
            "performed_at",
            "volume_added_ml",
            "concentration_mcg_per_ml",
            "daily_dose_after_mcg",
            "alarm_on",
            "due_by",
        ]
        read_only_fields = fields


class RefillVisitSerializer(RefillVisitOwnSerializer):
    """A refill visit as staff read it; the fields after the patient's own are staff-only."""

    class Meta(RefillVisitOwnSerializer.Meta):
        staff_only_fields = [
            "performed_by",
            "prescriber",
            "pump_serial",
            "reservoir_ml",
            "expected_residual_ml",
            "actual_residual_ml",
            "discrepancy_ml",
            "discrepancy_flagged",
            "drug",
            "drug_lot",
            "drug_lot_expires_on",
            "kit_lot",
            "daily_dose_before_mcg",
            "dosing_mode",
            "schedule",
            "bridge_bolus_mcg",
            "patient_bolus_mcg",
            "patient_boluses_per_day",
            "alarm_threshold_ml",
            "empty_on",
            "battery_status",
            "battery_event_on",
            "post_fill_check",
            "post_fill_discrepancy_ml",
            "post_fill_check_reason",
            *SAFETY_CHECK_FIELDS,
            "after_empty_date",
            "notes",
            "created_at",
        ]
        fields = [*RefillVisitOwnSerializer.Meta.fields, *staff_only_fields]
        read_only_fields = fields


SAFETY_CHECK_ANSWERS = [RefillVisit.SafetyCheck.DONE, RefillVisit.SafetyCheck.NOT_DONE]


def check_answer(name: str) -> StrictChoiceField:
    """A checklist item: required, done or not done (a skipped one needs `<item>_reason`)."""
    return StrictChoiceField(choices=SAFETY_CHECK_ANSWERS, help_text=f"{SAFETY_CHECK_ITEMS[name]}: done or not done.")


def check_reason(name: str) -> serializers.CharField:
    return text(max_length=2000, help_text=f"Required when {SAFETY_CHECK_ITEMS[name].lower()} was not done.")


class RefillVisitRecordSerializer(serializers.Serializer):
    implant = implant_field()
    performed_at = ClinicalDateTimeField()
    actual_residual_ml = ml(help_text="Volume aspirated before the fill.")
    volume_added_ml = ml(minimum="0.01")
    drug = drug_field()
    drug_lot = StrictCharField(max_length=64)
    drug_lot_expires_on = ClinicalDateField(help_text="The lot's expiry date: refused when before the refill's date.")
    kit_lot = StrictCharField(max_length=64, help_text="The refill kit's lot number.")
    check_pump_site = check_answer("check_pump_site")
    check_pump_site_reason = check_reason("check_pump_site")
    check_needle_placement = check_answer("check_needle_placement")
    check_needle_placement_reason = check_reason("check_needle_placement")
    check_aspiration = check_answer("check_aspiration")
    check_aspiration_reason = check_reason("check_aspiration")
    check_alarm_settings = check_answer("check_alarm_settings")
    check_alarm_settings_reason = check_reason("check_alarm_settings")
    check_symptom_screen = check_answer("check_symptom_screen")
    check_symptom_screen_reason = check_reason("check_symptom_screen")
    daily_dose_after_mcg = mcg(
        required=False,
        allow_null=True,
        default=None,
        help_text="Constant-flow pumps: leave out (flow × concentration).",
    )
    dosing_mode = StrictChoiceField(
        choices=DosePrescription.Mode.choices, default=DosePrescription.Mode.SIMPLE_CONTINUOUS
    )
    schedule = schedule_field()
    prescriber = ScopedPrimaryKeyRelatedField(
        model=User,
        scope=lambda request: User.objects.filter(is_active=True, groups__name=Role.CLINICIAN.value),
        required=False,
        allow_null=True,
        default=None,
        help_text="The clinician who prescribed the dose, if not the nurse's standing order.",
    )
    alarm_threshold_ml = ml(max_digits=4, decimal_places=1, required=False, allow_null=True, default=None)
    battery_status = StrictChoiceField(choices=RefillVisit.BatteryStatus.choices, default=RefillVisit.BatteryStatus.OK)
    battery_event_on = ClinicalDateField(
        required=False, allow_null=True, default=None, help_text="The date the pump logged the ERI or end of service."
    )
    bridge_bolus_mcg = mcg(required=False, allow_null=True, default=None)
    patient_bolus_mcg = mcg(required=False, allow_null=True, default=None)
    patient_boluses_per_day = StrictIntegerField(
        min_value=1, max_value=48, required=False, allow_null=True, default=None
    )
    post_fill_check = StrictChoiceField(
        choices=RefillVisit.PostFillCheck.choices, default=RefillVisit.PostFillCheck.NOT_DONE
    )
    post_fill_discrepancy_ml = StrictDecimalField(
        max_digits=5, decimal_places=2, required=False, allow_null=True, default=None
    )
    post_fill_check_reason = text(max_length=2000, help_text="Needed when the post-fill check was not done.")
    titration_confirmed = StrictBooleanField(required=False, default=False)
    notes = text()
    appointment = ScopedPrimaryKeyRelatedField(
        model=Appointment,
        scope=lambda request: scope_by_patients(Appointment.objects.valid(), request, path="patient"),
        required=False,
        allow_null=True,
        default=None,
    )


class RefillVisitViewSet(ListRetrieveMixin, CareRecordMarkEnteredInErrorMixin, PatientRecordViewSet):
    """Refill visits: a nurse records one (`refill_visit_record`); staff read all, a patient their own."""

    permission_model = RefillVisit
    serializer_class = RefillVisitSerializer
    patient_serializer_class = RefillVisitOwnSerializer
    filterset_class = RefillVisitFilter
    ordering_fields = ["performed_at", "due_by"]
    ordering = ["-performed_at", "-id"]
    audit_patient_path = "implant__patient"

    def base_queryset(self):
        return RefillVisit.objects.valid().select_related("implant__patient")

    def scope_queryset(self, queryset):
        return scope_by_patients(queryset, self.request, path="implant__patient")

    @extend_schema(request=RefillVisitRecordSerializer, responses={201: RefillVisitSerializer})
    def create(self, request):
        visit = refill_visit_record(performed_by=request.user, **self.validated(RefillVisitRecordSerializer))
        return self.output(visit, status_code=status.HTTP_201_CREATED)


# ---------------------------------------------------------------------------
# Appointments
# ---------------------------------------------------------------------------
class AppointmentOwnSerializer(StrictModelSerializer):
    """What a patient reads of an appointment: what, when, where, and whether it stands."""

    class Meta:
        model = Appointment
        fields = ["id", "kind", "starts_at", "duration_minutes", "place", "status"]
        read_only_fields = fields


class AppointmentSerializer(AppointmentOwnSerializer):
    """An appointment as staff read it; the fields after the patient's own are staff-only."""

    class Meta(AppointmentOwnSerializer.Meta):
        staff_only_fields = [
            "patient",
            "implant",
            "cancel_reason",
            "outside_window_reason",
            "visit",
            "booked_by",
            "notes",
            "created_at",
            "updated_at",
        ]
        fields = [*AppointmentOwnSerializer.Meta.fields, *staff_only_fields]
        read_only_fields = fields


OUTSIDE_WINDOW_HELP = "Only a clinician may book a refill outside the safe window, and only with a reason."


class AppointmentBookSerializer(serializers.Serializer):
    patient = patient_field()
    kind = StrictChoiceField(choices=Appointment.Kind.choices)
    starts_at = ClinicalDateTimeField()
    implant = implant_field(required=False, allow_null=True, default=None, help_text="Default: the active pump.")
    place = text(max_length=200)
    duration_minutes = StrictIntegerField(min_value=5, max_value=600, default=30)
    outside_window_reason = text(help_text=OUTSIDE_WINDOW_HELP)
    notes = text()


class AppointmentMoveSerializer(serializers.Serializer):
    starts_at = ClinicalDateTimeField()
    outside_window_reason = text(help_text=OUTSIDE_WINDOW_HELP)
    place = text(max_length=200)


class AppointmentCancelSerializer(serializers.Serializer):
    cancel_reason = text(required=True)


class AppointmentViewSet(ListRetrieveMixin, CareRecordMarkEnteredInErrorMixin, PatientRecordViewSet):
    """Appointments: nurses and clinicians book, move, cancel and mark no-shows; a patient reads their own."""

    permission_model = Appointment
    serializer_class = AppointmentSerializer
    patient_serializer_class = AppointmentOwnSerializer
    filterset_class = AppointmentFilter
    ordering_fields = ["starts_at", "created_at"]
    ordering = ["starts_at", "id"]
    audit_patient_path = "patient"
    action_permissions = {
        "move": ["refills.change_appointment"],
        "cancel": ["refills.change_appointment"],
        "no_show": ["refills.change_appointment"],
    }

    def base_queryset(self):
        return Appointment.objects.valid().select_related("patient")

    def scope_queryset(self, queryset):
        return scope_by_patients(queryset, self.request, path="patient")

    @extend_schema(
        request=AppointmentBookSerializer,
        responses={201: AppointmentSerializer},
        description="Book through `appointment_book`: 409 when the pump already has a booked refill.",
    )
    def create(self, request):
        appointment = appointment_book(booked_by=request.user, **self.validated(AppointmentBookSerializer))
        return self.output(appointment, status_code=status.HTTP_201_CREATED)

    @extend_schema(request=AppointmentMoveSerializer, responses={200: AppointmentSerializer})
    @action(detail=True, methods=["post"])
    def move(self, request, pk=None):
        appointment = self.get_object()
        data = self.validated(AppointmentMoveSerializer)
        return self.output(appointment_move(appointment=appointment, moved_by=request.user, **data))

    @extend_schema(request=AppointmentCancelSerializer, responses={200: AppointmentSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        appointment = self.get_object()
        data = self.validated(AppointmentCancelSerializer)
        return self.output(
            appointment_cancel(appointment=appointment, reason=data["cancel_reason"], cancelled_by=request.user)
        )

    @extend_schema(request=None, responses={200: AppointmentSerializer})
    @action(detail=True, methods=["post"], url_path="no-show")
    def no_show(self, request, pk=None):
        appointment = self.get_object()
        return self.output(appointment_mark_no_show(appointment=appointment, now=timezone.now()))


# ---------------------------------------------------------------------------
# The refill forecast for given inputs, and who is due
# ---------------------------------------------------------------------------
class RefillForecastInputSerializer(serializers.Serializer):
    refilled_on = ClinicalDateField()
    volume_ml = ml(max_digits=6, minimum="0.01", help_text="Volume in the reservoir after the fill.")
    concentration_mcg_per_ml = StrictDecimalField(max_digits=7, decimal_places=1, min_value=Decimal("0.1"))
    daily_dose_mcg = mcg()
    alarm_threshold_ml = ml(max_digits=4, decimal_places=1)
    safety_margin_days = StrictIntegerField(
        min_value=0, max_value=90, required=False, help_text="Default: the clinic's setting."
    )
    max_interval_days = StrictIntegerField(
        min_value=1,
        max_value=3650,
        required=False,
        allow_null=True,
        help_text="Stability cap. Default: the drug's cap in this pump, when `drug` is given.",
    )
    drug = drug_field(required=False, allow_null=True, default=None)
    implant = implant_field(
        required=False, allow_null=True, default=None, help_text="Gives the expected residual on `refilled_on`."
    )
    actual_residual_ml = ml(
        required=False, allow_null=True, default=None, help_text="With `implant`: the discrepancy against the forecast."
    )


class RefillForecastSerializer(serializers.Serializer):
    daily_volume_ml = StrictDecimalField(max_digits=20, decimal_places=6)
    days_to_alarm = StrictIntegerField()
    days_to_empty = StrictIntegerField()
    alarm_on = serializers.DateField()
    empty_on = serializers.DateField()
    due_by = serializers.DateField()
    safety_margin_days = StrictIntegerField()
    max_interval_days = StrictIntegerField(allow_null=True)
    expected_residual_ml = StrictDecimalField(max_digits=8, decimal_places=2, allow_null=True)
    discrepancy_ml = StrictDecimalField(max_digits=8, decimal_places=2, allow_null=True)
    discrepancy_flagged = StrictBooleanField(allow_null=True)


class StaffAPIView(AuditedPatientAccessMixin, generics.GenericAPIView):
    permission_classes = [role_required(Role.NURSE, Role.CLINICIAN)]
    parser_classes = [ClinicJSONParser]
    renderer_classes = [JSONRenderer]
    pagination_class = ClinicPagination
    schema = ClinicAutoSchema()
    metadata_class = None

    def get_exception_handler(self):
        return exception_handler

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        reject_unknown_query_parameters(self, request)


class RefillForecastView(StaffAPIView):
    """The forecast a refill with these inputs leads to (with `implant`: from that pump's history too)."""

    serializer_class = RefillForecastInputSerializer
    filter_backends = []

    @extend_schema(request=RefillForecastInputSerializer, responses={200: RefillForecastSerializer})
    def post(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        implant, drug = data["implant"], data["drug"]
        margin = data.get("safety_margin_days")
        if margin is None:
            margin = ClinicSettings.load().safety_margin_days
        cap = data.get("max_interval_days")
        if cap is None and drug is not None:
            cap = max_interval_days_get(drug=drug, implant=implant) if implant else drug.max_interval_days
        performed_at = dt.datetime.combine(data["refilled_on"], dt.time.min, tzinfo=timezone.get_current_timezone())
        forecast = refill_forecast_compute(
            implant=implant,
            performed_at=performed_at,
            volume_ml=data["volume_ml"],
            concentration_mcg_per_ml=data["concentration_mcg_per_ml"],
            alarm_threshold_ml=data["alarm_threshold_ml"],
            daily_dose_mcg=data["daily_dose_mcg"],
            max_interval_days=cap,
            safety_margin_days=margin,
        )
        if not forecast.ok:
            raise serializers.ValidationError(
                {"daily_dose_mcg": ["This dose would last beyond the calendar: check the dose and concentration."]}
            )
        expected = discrepancy = None
        if implant is not None:
            self.audit_patient_access(patients=[implant.patient], detail=f"refill forecast implant {implant.pk}")
            expected = implant_get_expected_residual(implant=implant, on=data["refilled_on"], before=performed_at)
            if expected is not None and data["actual_residual_ml"] is not None:
                discrepancy = residual_discrepancy(
                    expected_ml=expected,
                    actual_ml=data["actual_residual_ml"],
                    tolerance_ml=implant.pump_model.residual_tolerance_ml,
                )
        result = {
            "daily_volume_ml": forecast.daily_volume_ml,
            "days_to_alarm": forecast.days_to_alarm,
            "days_to_empty": forecast.days_to_empty,
            "alarm_on": forecast.alarm_on,
            "empty_on": forecast.empty_on,
            "due_by": forecast.due_by,
            "safety_margin_days": margin,
            "max_interval_days": cap,
            "expected_residual_ml": expected,
            "discrepancy_ml": discrepancy.difference_ml if discrepancy else None,
            "discrepancy_flagged": discrepancy.flagged if discrepancy else None,
        }
        return Response(RefillForecastSerializer(result).data)


class DueForRefillSerializer(StrictModelSerializer):
    implant = StrictIntegerField(source="pk")
    patient = StrictIntegerField(source="patient.pk")
    patient_name = StrictCharField(source="patient.full_name")
    mrn = StrictCharField(source="patient.mrn")
    has_withdrawal_risk_flag = StrictBooleanField(source="patient.has_withdrawal_risk_flag")
    pump_model_name = StrictCharField(source="pump_model.__str__")
    days_to_due = serializers.SerializerMethodField()
    has_booked_refill = StrictBooleanField()
    booked_refill_at = serializers.DateTimeField(allow_null=True)
    forecast_problem_display = ForecastProblemDisplayField()

    class Meta:
        model = Implant
        fields = [
            "implant",
            "patient",
            "patient_name",
            "mrn",
            "has_withdrawal_risk_flag",
            "pump_model_name",
            "serial_number",
            "forecast_due_by",
            "forecast_alarm_on",
            "forecast_empty_on",
            "forecast_problem",
            "forecast_problem_display",
            "days_to_due",
            "has_booked_refill",
            "booked_refill_at",
        ]
        read_only_fields = fields

    def get_days_to_due(self, implant: Implant) -> int:
        return (implant.forecast_due_by - self.context["today"]).days


class DueForRefillView(StaffAPIView, generics.ListAPIView):
    """Active implants by forecast due-by date, soonest first (`patient_list_due_for_refill`)."""

    serializer_class = DueForRefillSerializer
    filter_backends = []
    extra_query_parameters = ("within_days",)

    def today(self):
        return timezone.localdate()

    def get_queryset(self):
        within = self.request.query_params.get("within_days")
        if within in (None, ""):
            queryset = patient_list_due_for_refill(today=self.today())
        elif within.isascii() and within.isdigit() and int(within) <= 3650:
            queryset = patient_list_due_for_refill(today=self.today(), within_days=int(within))
        else:
            raise serializers.ValidationError({"within_days": ["A whole number of days, 0 to 3650."]})
        return scope_by_patients(queryset, self.request, path="patient")

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "today": self.today()}

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "within_days",
                {"type": "integer", "minimum": 0, "maximum": 3650},
                description="Only those due within this many days (overdue included).",
            )
        ]
    )
    def get(self, request, *args, **kwargs):
        return self.list(request, *args, **kwargs)

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        self.audit_patient_access(patients=(implant.patient for implant in page or []), detail="due for refill")
        return page


# ---------------------------------------------------------------------------
# Open alerts
# ---------------------------------------------------------------------------
class AlertFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=Alert.Kind.choices)
    severity = django_filters.ChoiceFilter(choices=Alert.Severity.choices)
    audience = django_filters.ChoiceFilter(choices=Alert.Audience.choices)
    patient = IdFilter(field_name="patient_id")

    class Meta:
        model = Alert
        fields = ["kind", "severity", "audience", "patient"]


class AlertSerializer(StrictModelSerializer):
    kind_display = StrictCharField(source="get_kind_display")
    mrn = StrictCharField(source="patient.mrn")

    class Meta:
        model = Alert
        fields = [
            "id",
            "kind",
            "kind_display",
            "severity",
            "audience",
            "patient",
            "mrn",
            "implant",
            "key_date",
            "message",
            "risk_flags",
            "raised_at",
            "acknowledged_at",
            "escalation_count",
        ]
        read_only_fields = fields


class AlertViewSet(PatientRecordViewSet):
    """Open alerts (`alert_list_open`): urgent first, then the most recent. Staff only; read-only here.

    Resolving one is the worklist's action (refills/views.py `alert_resolve`).
    """

    permission_classes = [ClinicModelPermissions]
    permission_model = Alert
    serializer_class = AlertSerializer
    filterset_class = AlertFilter
    # Filters only: the order is the selector's (urgent first), not the caller's.
    filter_backends = [DjangoFilterBackend]
    audit_patient_path = "patient"

    def base_queryset(self):
        return alert_list_open()

    def scope_queryset(self, queryset):
        return scope_by_patients(queryset, self.request, path="patient")

    def list(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        self.audit_patient_access(patients=(alert.patient for alert in page), detail="list alert")
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


# ---------------------------------------------------------------------------
# Implants: the care schedule's actions on a pump (its forecast and bookings change with them)
# ---------------------------------------------------------------------------
class ImplantReplaceSerializer(ImplantRegisterSerializer):
    patient = None  # the old pump's patient
    explanted_on = ClinicalDateField(help_text="The old pump came out on this day.")
    explant_reason = text(required=True)
    implanted_on = ClinicalDateField(required=False, help_text="Default: the explant day.")


class ReservoirEmptySerializer(serializers.Serializer):
    emptied_at = ClinicalDateTimeField()
    reason = StrictChoiceField(choices=ReservoirEmptying.Reason.choices, default=ReservoirEmptying.Reason.MRI)
    volume_removed_ml = ml(required=False, allow_null=True, default=None)
    notes = text()


class ImplantCareViewSet(ImplantViewSet):
    """/api/implants/: the pumps' reads and ERI, plus registering with the theatre fill, replacing,
    explanting (bookings and reminders end with the pump) and emptying the reservoir."""

    action_permissions = {
        **ImplantViewSet.action_permissions,
        "replace": ["pumps.add_implant", "pumps.change_implant"],
        "empty": ["refills.add_reservoiremptying"],
    }

    @extend_schema(request=ImplantRegisterSerializer, responses={201: ImplantSerializer})
    def create(self, request):
        implant = implant_register_with_fill(recorded_by=request.user, **self.validated(ImplantRegisterSerializer))
        return self.output(implant, status_code=status.HTTP_201_CREATED)

    @extend_schema(request=ImplantExplantSerializer, responses={200: ImplantSerializer})
    @action(detail=True, methods=["post"])
    def explant(self, request, pk=None):
        implant = self.get_object()
        data = self.validated(ImplantExplantSerializer)
        implant = implant_explant_record(
            implant=implant, explanted_on=data["explanted_on"], reason=data["explant_reason"], by=request.user
        )
        return self.output(implant)

    @extend_schema(request=ImplantReplaceSerializer, responses={201: ImplantSerializer})
    @action(detail=True, methods=["post"])
    def replace(self, request, pk=None):
        old = self.get_object()
        data = dict(self.validated(ImplantReplaceSerializer))
        explanted_on, reason = data.pop("explanted_on"), data.pop("explant_reason")
        implant = implant_replace(
            implant=old, explanted_on=explanted_on, reason=reason, recorded_by=request.user, **data
        )
        return self.output(implant, status_code=status.HTTP_201_CREATED)

    @extend_schema(request=ReservoirEmptySerializer, responses={200: ImplantSerializer})
    @action(detail=True, methods=["post"])
    def empty(self, request, pk=None):
        implant = self.get_object()
        reservoir_empty_record(implant=implant, recorded_by=request.user, **self.validated(ReservoirEmptySerializer))
        implant.refresh_from_db()
        return self.output(implant)


# ---------------------------------------------------------------------------
# Catalogue rows that feed the forecast: saving one recomputes the affected pumps
# ---------------------------------------------------------------------------
class RecomputesForecastsMixin:
    def create(self, request):
        response = super().create(request)
        forecasts_recompute_after_catalogue_change(record=self.get_queryset().get(pk=response.data["id"]))
        return response

    def partial_update(self, request, pk=None):
        response = super().partial_update(request, pk=pk)
        forecasts_recompute_after_catalogue_change(record=self.get_object())
        return response


class PumpModelCareViewSet(RecomputesForecastsMixin, PumpModelViewSet):
    pass


class DrugCareViewSet(RecomputesForecastsMixin, DrugViewSet):
    pass


class DrugPumpIntervalCareViewSet(RecomputesForecastsMixin, DrugPumpIntervalViewSet):
    pass
