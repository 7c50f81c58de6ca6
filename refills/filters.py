"""Query filters of the care-schedule API (they narrow the scoped queryset: see core/api/filters.py)."""

import django_filters

from core.api import BooleanFilter, ClinicalDateTimeFilter, IdFilter
from pumps.models import DosePrescription

from .models import Appointment, RefillVisit


class AppointmentFilter(django_filters.FilterSet):
    starts_after = ClinicalDateTimeFilter(
        field_name="starts_at", lookup_expr="gte", help_text="On or after (ISO 8601)."
    )
    starts_before = ClinicalDateTimeFilter(field_name="starts_at", lookup_expr="lt", help_text="Before (ISO 8601).")
    status = django_filters.ChoiceFilter(choices=Appointment.Status.choices)
    kind = django_filters.ChoiceFilter(choices=Appointment.Kind.choices)
    patient = IdFilter(field_name="patient_id")
    implant = IdFilter(field_name="implant_id")

    class Meta:
        model = Appointment
        fields = ["starts_after", "starts_before", "status", "kind", "patient", "implant"]


class RefillVisitFilter(django_filters.FilterSet):
    implant = IdFilter(field_name="implant_id")
    patient = IdFilter(field_name="implant__patient_id")
    performed_after = ClinicalDateTimeFilter(field_name="performed_at", lookup_expr="gte")
    performed_before = ClinicalDateTimeFilter(field_name="performed_at", lookup_expr="lt")
    discrepancy_flagged = BooleanFilter()

    class Meta:
        model = RefillVisit
        fields = ["implant", "patient", "performed_after", "performed_before", "discrepancy_flagged"]


class DosePrescriptionFilter(django_filters.FilterSet):
    implant = IdFilter(field_name="implant_id")
    patient = IdFilter(field_name="implant__patient_id")

    class Meta:
        model = DosePrescription
        fields = ["implant", "patient"]
