"""Helpers of the staff forms: date inputs the browser understands, a service's errors onto the form.

The clinical rules live in the services; a service's ValidationError comes back onto the form
through `add_service_errors`, so the nurse sees the message next to the field it names.
"""

from collections.abc import Mapping

from django import forms
from django.core.exceptions import ValidationError


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs=None):
        super().__init__(attrs=attrs, format="%Y-%m-%d")


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, attrs=None):
        super().__init__(attrs=attrs, format="%Y-%m-%dT%H:%M")


def add_service_errors(
    form: forms.BaseForm, exc: ValidationError, *, field_map: Mapping[str, str | None] | None = None
):
    """Put a service's ValidationError onto the form: known fields by name, the rest on top."""
    field_map = field_map or {}
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc.messages)
        return
    for name, messages in exc.message_dict.items():
        target = field_map.get(name, name)
        if target not in form.fields:
            target = None
        for message in messages:
            if target is not None and target in form.errors and message in form.errors[target]:
                continue
            form.add_error(target, message)
