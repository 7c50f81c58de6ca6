"""Serializer fields of the API: strict JSON types, bounded ids, dates and text, scoped foreign keys.

The API speaks JSON only, and its fields take exactly the JSON types the schema names: a number
where a string is documented (or the reverse) is a 400, never silently converted. Decimals are
strings ("0.25"): exact, never binary floating point.
"""

from django.db import models as django_models
from rest_framework import serializers

# Primary keys are 64-bit: anything else cannot name a row, and would overflow the driver.
MAX_ID = 2**63 - 1
# Clinical dates fall in this span; it also keeps date arithmetic (forecasts, battery plans) in range.
EARLIEST_DATE = "1900-01-01"
LATEST_DATE = "2199-12-31"
LONG_TEXT = 5000


def parse_id(value) -> int | None:
    """A positive 64-bit id from a URL or JSON value, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        number = int(value)
    else:
        return None
    return number if 1 <= number <= MAX_ID else None


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictEmailField(serializers.EmailField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictChoiceField(serializers.ChoiceField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid_choice", input=data)
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictDecimalField(serializers.DecimalField):
    default_error_messages = {"invalid": 'A number written as a string is required, e.g. "0.25".'}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("incorrect_type", data_type=type(data).__name__)
        if parse_id(data) is None:
            self.fail("does_not_exist", pk_value=data)
        return super().to_internal_value(data)


class StrictModelSerializer(serializers.ModelSerializer):
    """A ModelSerializer whose generated fields are the strict ones above."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        django_models.CharField: StrictCharField,
        django_models.TextField: StrictCharField,
        django_models.EmailField: StrictEmailField,
        django_models.BooleanField: StrictBooleanField,
        django_models.IntegerField: StrictIntegerField,
        django_models.SmallIntegerField: StrictIntegerField,
        django_models.PositiveIntegerField: StrictIntegerField,
        django_models.PositiveSmallIntegerField: StrictIntegerField,
        django_models.BigIntegerField: StrictIntegerField,
        django_models.DecimalField: StrictDecimalField,
    }
    serializer_choice_field = StrictChoiceField
    serializer_related_field = StrictPrimaryKeyRelatedField


class ScopedPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """A foreign key given by id, looked up only among the rows the caller may see.

    `scope(request)` returns that queryset, so an id outside it gets the same answer as an id that
    does not exist ("Invalid pk"): no existence oracle, no write against another patient's record.
    """

    def __init__(self, *, model, scope, **kwargs):
        self.scope = scope
        # The queryset only tells the schema generator the model; lookups use `scope`.
        super().__init__(queryset=model._default_manager.none(), **kwargs)

    def get_queryset(self):
        return self.scope(self.context["request"])

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("incorrect_type", data_type=type(data).__name__)
        if parse_id(data) is None:
            self.fail("does_not_exist", pk_value=data)
        return super().to_internal_value(data)


class ClinicalDateField(serializers.DateField):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators.append(_date_in_span)


class ClinicalDateTimeField(serializers.DateTimeField):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators.append(_datetime_in_span)


def _date_in_span(value) -> None:
    if not (EARLIEST_DATE <= value.isoformat() <= LATEST_DATE):
        raise serializers.ValidationError(f"Give a date between {EARLIEST_DATE} and {LATEST_DATE}.")


def _datetime_in_span(value) -> None:
    _date_in_span(value.date())


def text(*, max_length: int = LONG_TEXT, **kwargs) -> serializers.CharField:
    """Free text: optional and blank unless said otherwise, bounded (DRF refuses null characters)."""
    kwargs.setdefault("required", False)
    kwargs.setdefault("allow_blank", not kwargs["required"])
    if not kwargs["required"]:
        kwargs.setdefault("default", "")
    return StrictCharField(max_length=max_length, **kwargs)
