"""`{% form_token %}`: the one-time token of a creating form (core/idempotency.py)."""

from django import template
from django.utils.html import format_html

from core.idempotency import FIELD_NAME, form_token_new_or_posted

register = template.Library()


@register.simple_tag(takes_context=True)
def form_token(context) -> str:
    return format_html(
        '<input type="hidden" name="{}" value="{}">', FIELD_NAME, form_token_new_or_posted(context.get("request"))
    )
