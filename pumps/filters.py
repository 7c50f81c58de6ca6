"""Query filters of the pumps API (they narrow the scoped queryset: see core/api/filters.py)."""

import django_filters

from core.api import BooleanFilter, IdFilter

from .models import Drug, Implant, PumpModel


class PumpModelFilter(django_filters.FilterSet):
    manufacturer = django_filters.CharFilter(max_length=100)
    flow = django_filters.ChoiceFilter(choices=PumpModel.Flow.choices)
    is_active = BooleanFilter()

    class Meta:
        model = PumpModel
        fields = ["manufacturer", "flow", "is_active"]


class DrugFilter(django_filters.FilterSet):
    screening_only = BooleanFilter()
    compounded = BooleanFilter()
    is_active = BooleanFilter()

    class Meta:
        model = Drug
        fields = ["screening_only", "compounded", "is_active"]


class ImplantFilter(django_filters.FilterSet):
    patient = IdFilter(field_name="patient_id")
    pump_model = IdFilter(field_name="pump_model_id")
    active = BooleanFilter(field_name="explanted_on", lookup_expr="isnull", label="Not explanted")
    serial_number = django_filters.CharFilter(max_length=64)

    class Meta:
        model = Implant
        fields = ["patient", "pump_model", "active", "serial_number"]


class DrugPumpIntervalFilter(django_filters.FilterSet):
    drug = IdFilter(field_name="drug_id")
    pump_model = IdFilter(field_name="pump_model_id")
