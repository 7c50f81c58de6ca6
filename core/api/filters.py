"""Filters: they narrow the caller's scoped queryset, never widen it.

Ids are plain integers (not model choices), so an id outside the scope filters to nothing exactly
like an id that does not exist: a filter cannot tell whether a record exists.
"""

import datetime as dt

import django_filters
from django import forms
from drf_spectacular.utils import extend_schema_field

from .fields import EARLIEST_DATE, LATEST_DATE, MAX_ID


class IdFormField(forms.IntegerField):
    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(**kwargs)


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_ID})
class IdFilter(django_filters.NumberFilter):
    field_class = IdFormField


def _is_true(value: str) -> bool:
    return value == "true"


# Documented as the two strings it takes: a query string has no booleans, and "True", "1" or "yes"
# are refused rather than guessed.
@extend_schema_field({"type": "string", "enum": ["true", "false"]})
class BooleanFilter(django_filters.TypedChoiceFilter):
    """`true` or `false`, anything else a 400 (django-filter's own BooleanFilter ignores bad values)."""

    def __init__(self, **kwargs):
        super().__init__(choices=[("true", "true"), ("false", "false")], coerce=_is_true, **kwargs)


class ClinicalDateTimeFormField(django_filters.fields.IsoDateTimeField):
    def clean(self, value):
        value = super().clean(value)
        if value is None:
            return None
        if not (EARLIEST_DATE <= value.date().isoformat() <= LATEST_DATE):
            raise forms.ValidationError(f"Give a time between {EARLIEST_DATE} and {LATEST_DATE}.")
        # In UTC: Python accepts any offset under 24 h, PostgreSQL refuses those beyond ±15:59.
        return value.astimezone(dt.UTC)


class ClinicalDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = ClinicalDateTimeFormField
