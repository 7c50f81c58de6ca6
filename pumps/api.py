"""REST API of the pump and drug catalogues and of implants (register, ERI, explant).

Dose prescriptions are served by refills/api.py: recording a dose change refreshes the forecast in
force, which is the care schedule's business, and pumps never calls into refills.
"""

from decimal import Decimal

from django.db import transaction
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.decorators import action

from core.api import (
    ClinicalDateField,
    ClinicalDateTimeField,
    ListRetrieveMixin,
    MarkEnteredInErrorMixin,
    ScopedPrimaryKeyRelatedField,
    StrictBooleanField,
    StrictCharField,
    StrictChoiceField,
    StrictDecimalField,
    StrictIntegerField,
    StrictModelSerializer,
    text,
)
from patients.api import patient_field
from patients.api_base import PatientRecordViewSet, scope_by_patients
from patients.models import VERTEBRAL_LEVELS

from .filters import DrugFilter, DrugPumpIntervalFilter, ImplantFilter, PumpModelFilter
from .models import Drug, DrugPumpInterval, Implant, PumpModel
from .selectors import implant_get_replacement_plan
from .services import implant_record_eri


# ---------------------------------------------------------------------------
# Catalogues: every staff member reads them, the clinic admin edits them
# ---------------------------------------------------------------------------
class CatalogueSerializer(StrictModelSerializer):
    """A catalogue row saved as the admin saves it: model validation, then the row's constraints.

    Catalogues are settings, not clinical records: there is no service rule to apply, and rows are
    retired with `is_active`, never deleted.
    """

    @transaction.atomic
    def _save(self, instance, data):
        for name, value in data.items():
            setattr(instance, name, value)
        instance.full_clean()
        instance.save()
        return instance

    def create(self, validated_data):
        return self._save(self.Meta.model(), validated_data)

    def update(self, instance, validated_data):
        return self._save(instance, validated_data)


class PumpModelSerializer(CatalogueSerializer):
    reservoir_ml = StrictDecimalField(max_digits=5, decimal_places=1, min_value=Decimal("0.1"))
    alarm_threshold_ml = StrictDecimalField(max_digits=4, decimal_places=1, min_value=Decimal("0"))
    battery_earliest_end_years = StrictIntegerField(min_value=1, max_value=50, required=False, allow_null=True)
    battery_hard_stop_years = StrictIntegerField(min_value=1, max_value=50, required=False, allow_null=True)
    replacement_plan_months_before = StrictIntegerField(min_value=0, max_value=60, required=False)
    eri_grace_days = StrictIntegerField(min_value=0, max_value=3650, required=False, allow_null=True)

    class Meta:
        model = PumpModel
        fields = [
            "id",
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
            "mri_note",
            "is_active",
        ]
        extra_kwargs = {
            "residual_tolerance_ml": {"min_value": Decimal("0")},
            "pocket_fill_tolerance_ml": {"min_value": Decimal("0")},
            "mri_note": {"max_length": 5000},
        }


class DrugSerializer(CatalogueSerializer):
    concentration_mcg_per_ml = StrictDecimalField(max_digits=7, decimal_places=1, min_value=Decimal("0.1"))
    max_interval_days = StrictIntegerField(min_value=1, max_value=3650, required=False, allow_null=True)

    class Meta:
        model = Drug
        fields = [
            "id",
            "name",
            "concentration_mcg_per_ml",
            "screening_only",
            "compounded",
            "max_interval_days",
            "is_active",
        ]


class DrugPumpIntervalSerializer(CatalogueSerializer):
    max_interval_days = StrictIntegerField(min_value=1, max_value=3650)

    class Meta:
        model = DrugPumpInterval
        fields = ["id", "drug", "pump_model", "max_interval_days"]


class CatalogueViewSet(ListRetrieveMixin, PatientRecordViewSet):
    """List, read, add (POST) and change (PATCH); rows are retired with `is_active`, never deleted."""

    def scope_queryset(self, queryset):
        return queryset

    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return self.output(serializer.instance, status_code=status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        serializer = self.get_serializer(self.get_object(), data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return self.output(serializer.instance)


class PumpModelViewSet(CatalogueViewSet):
    permission_model = PumpModel
    serializer_class = PumpModelSerializer
    filterset_class = PumpModelFilter
    ordering_fields = ["manufacturer", "name", "reservoir_ml"]
    ordering = ["manufacturer", "name", "reservoir_ml", "id"]


class DrugViewSet(CatalogueViewSet):
    permission_model = Drug
    serializer_class = DrugSerializer
    filterset_class = DrugFilter
    ordering_fields = ["name", "concentration_mcg_per_ml"]
    ordering = ["name", "concentration_mcg_per_ml", "id"]


class DrugPumpIntervalViewSet(CatalogueViewSet):
    permission_model = DrugPumpInterval
    serializer_class = DrugPumpIntervalSerializer
    filterset_class = DrugPumpIntervalFilter
    ordering_fields = ["max_interval_days"]
    ordering = ["id"]

    def base_queryset(self):
        return DrugPumpInterval.objects.select_related("drug", "pump_model")


# ---------------------------------------------------------------------------
# Implants
# ---------------------------------------------------------------------------
class ReplacementPlanSerializer(serializers.Serializer):
    hard_stop_on = serializers.DateField()
    plan_by = serializers.DateField()
    stops_on = serializers.DateField()


def forecast_problem_label(code: str) -> str:
    """ "fill_not_recorded" → "Fill not recorded"; blank when the pump has a forecast.

    Spelt from the code because pumps may not import refills (which owns the codes); once
    `Implant.forecast_problem` has choices, this becomes `get_forecast_problem_display`.
    """
    return code.replace("_", " ").capitalize()


@extend_schema_field({"type": "string"})
class ForecastProblemDisplayField(serializers.ReadOnlyField):
    """The human-readable `forecast_problem` of an implant (read from the same row)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("source", "forecast_problem")
        kwargs.setdefault("help_text", "Why there is no forecast, in words; blank when there is one.")
        super().__init__(**kwargs)

    def to_representation(self, value) -> str:
        return forecast_problem_label(value or "")


class ImplantOwnSerializer(StrictModelSerializer):
    """What a patient reads of their pump: which pump, since when, MRI advice and when it is due.

    Not who recorded it, the surgeon, the catheter details nor the record's bookkeeping.
    """

    pump_model_name = StrictCharField(source="pump_model.__str__", read_only=True)
    is_active = StrictBooleanField(read_only=True)

    class Meta:
        model = Implant
        fields = [
            "id",
            "pump_model_name",
            "serial_number",
            "implanted_on",
            "hospital",
            "mri_notes",
            "eri_reported_on",
            "explanted_on",
            "is_active",
            "forecast_alarm_on",
            "forecast_due_by",
        ]
        read_only_fields = fields


class ImplantSerializer(ImplantOwnSerializer):
    """An implant as staff read it; the fields after the patient's own are staff-only."""

    replacement_plan = serializers.SerializerMethodField()
    forecast_problem_display = ForecastProblemDisplayField()

    class Meta(ImplantOwnSerializer.Meta):
        staff_only_fields = [
            "patient",
            "pump_model",
            "manufacturer",
            "surgeon",
            "catheter_model",
            "catheter_tip_level",
            "explant_reason",
            "recorded_by",
            "forecast_empty_on",
            # Why the pump has no forecast ("" when it has one): a pump without one is escalated.
            "forecast_problem",
            "forecast_problem_display",
            "replacement_plan",
            "created_at",
            "updated_at",
        ]
        fields = [*ImplantOwnSerializer.Meta.fields, *staff_only_fields]
        read_only_fields = fields

    @extend_schema_field(ReplacementPlanSerializer(allow_null=True))
    def get_replacement_plan(self, implant: Implant):
        plan = implant_get_replacement_plan(implant=implant)
        return ReplacementPlanSerializer(plan).data if plan else None


class ImplantRegisterSerializer(serializers.Serializer):
    patient = patient_field()
    pump_model = ScopedPrimaryKeyRelatedField(
        model=PumpModel, scope=lambda request: PumpModel.objects.filter(is_active=True)
    )
    serial_number = StrictCharField(max_length=64)
    implanted_on = ClinicalDateField()
    surgeon = StrictCharField(max_length=200)
    hospital = StrictCharField(max_length=200)
    catheter_tip_level = StrictChoiceField(choices=VERTEBRAL_LEVELS)
    catheter_model = text(max_length=100)
    mri_notes = text()
    starting_daily_dose_mcg = StrictDecimalField(
        max_digits=8, decimal_places=2, min_value=Decimal("0.01"), required=False, allow_null=True, default=None
    )
    concentration_mcg_per_ml = StrictDecimalField(
        max_digits=7, decimal_places=1, min_value=Decimal("0.1"), required=False, allow_null=True, default=None
    )
    dose_effective_at = ClinicalDateTimeField(required=False, allow_null=True, default=None)
    # The fill in theatre: the forecast starts at the implant.
    fill_drug = ScopedPrimaryKeyRelatedField(
        model=Drug,
        scope=lambda request: Drug.objects.filter(is_active=True, screening_only=False),
        required=False,
        allow_null=True,
        default=None,
    )
    fill_volume_ml = StrictDecimalField(
        max_digits=5, decimal_places=2, min_value=Decimal("0.01"), required=False, allow_null=True, default=None
    )
    fill_drug_lot = StrictCharField(max_length=64, required=False, allow_blank=True, default="")
    fill_alarm_threshold_ml = StrictDecimalField(
        max_digits=4, decimal_places=1, min_value=Decimal("0"), required=False, allow_null=True, default=None
    )
    flow_ml_per_day = StrictDecimalField(
        max_digits=6, decimal_places=3, min_value=Decimal("0.001"), required=False, allow_null=True, default=None
    )


class ImplantEriSerializer(serializers.Serializer):
    eri_reported_on = ClinicalDateField(help_text="The day the pump reported its elective replacement indicator.")


class ImplantExplantSerializer(serializers.Serializer):
    explanted_on = ClinicalDateField()
    explant_reason = text(required=True)


class ImplantViewSet(ListRetrieveMixin, MarkEnteredInErrorMixin, PatientRecordViewSet):
    """Implants: staff read all, a patient their own; clinicians record an ERI.

    Registering, replacing and explanting change the forecast and the bookings: the care schedule
    adds those actions (refills.api.ImplantCareViewSet serves this route).
    """

    permission_model = Implant
    serializer_class = ImplantSerializer
    patient_serializer_class = ImplantOwnSerializer
    filterset_class = ImplantFilter
    ordering_fields = ["implanted_on", "forecast_due_by", "created_at"]
    ordering = ["-implanted_on", "-id"]
    audit_patient_path = "patient"
    action_permissions = {"eri": ["pumps.change_implant"], "explant": ["pumps.change_implant"]}

    def base_queryset(self):
        return Implant.objects.valid().select_related("patient", "pump_model")

    def scope_queryset(self, queryset):
        return scope_by_patients(queryset, self.request, path="patient")

    @extend_schema(request=ImplantEriSerializer, responses={200: ImplantSerializer})
    @action(detail=True, methods=["post"])
    def eri(self, request, pk=None):
        implant = self.get_object()
        data = self.validated(ImplantEriSerializer)
        return self.output(implant_record_eri(implant=implant, eri_on=data["eri_reported_on"], by=request.user))
