"""Template filters for how values read on every page (core/formatting.py does the work).

{% load clinic_format %}
{{ patient.phone|phone }}          → "07700 900123" (the clinic's country), "+33 6 12 34 56 78" abroad
<a href="{{ clinic.phone|phone_href }}">
{{ implant.pump_model|pump }}      → "Medtronic SynchroMed II 20 mL"
"""

from django import template
from django.conf import settings

from core.formatting import format_drug, format_phone, format_pump
from core.formatting import phone_href as _phone_href

register = template.Library()


@register.filter
def phone(value) -> str:
    return format_phone(value, region=settings.CLINIC_REGION)


@register.filter
def phone_href(value) -> str:
    return _phone_href(value, region=settings.CLINIC_REGION)


@register.filter
def pump(model) -> str:
    return format_pump(model) if model is not None else ""


@register.filter
def drug(value) -> str:
    return format_drug(value) if value is not None else ""
