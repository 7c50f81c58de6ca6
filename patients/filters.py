"""Query filters of the patients API (they narrow the scoped queryset: see core/api/filters.py)."""

import django_filters

from core.api import IdFilter

from .models import Patient, ScreeningTrial
from .selectors import patient_list


class PatientFilter(django_filters.FilterSet):
    search = django_filters.CharFilter(
        method="filter_search", max_length=100, help_text="MRN, name or pump serial number."
    )
    status = django_filters.ChoiceFilter(choices=Patient.Status.choices)
    diagnosis = django_filters.ChoiceFilter(choices=Patient.Diagnosis.choices)

    class Meta:
        model = Patient
        fields = ["search", "status", "diagnosis"]

    def filter_search(self, queryset, name, value):
        if not value.strip():
            return queryset
        return queryset.filter(pk__in=patient_list(search=value).values("pk"))


class TrialFilter(django_filters.FilterSet):
    patient = IdFilter(field_name="patient_id")
    verdict = django_filters.ChoiceFilter(choices=ScreeningTrial.Verdict.choices)
    kind = django_filters.ChoiceFilter(choices=ScreeningTrial.Kind.choices)

    class Meta:
        model = ScreeningTrial
        fields = ["patient", "verdict", "kind"]
