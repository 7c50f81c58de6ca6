"""The OpenAPI schema: the error answers every route can give, and the query parameters it documents.

A query parameter the schema does not document is refused (400), so a misspelt filter never
quietly returns every row.
"""

import django_filters
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions

from .errors import ErrorSerializer


class ClinicAutoSchema(AutoSchema):
    """Documents the error answers every route can give, and the fields only staff receive."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        errors = {
            "400": OpenApiResponse(OpenApiTypes.OBJECT, description="Invalid input: `{field: [messages]}`."),
            "403": OpenApiResponse(ErrorSerializer, description="Not logged in, or the role may not do this."),
            "404": OpenApiResponse(ErrorSerializer, description="No such record among those the caller may see."),
            "429": OpenApiResponse(ErrorSerializer, description="Too many requests."),
        }
        if self.method in ("POST", "PUT", "PATCH"):
            errors["409"] = OpenApiResponse(ErrorSerializer, description="Conflicts with another record.")
        for code, response in errors.items():
            if code not in responses:
                responses[code] = self._get_response_for_code(response, code, direction=direction)
        return responses

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        staff_only = getattr(getattr(serializer, "Meta", None), "staff_only_fields", ())
        if staff_only and "required" in schema:
            schema["required"] = [name for name in schema["required"] if name not in staff_only]
            if not schema["required"]:
                del schema["required"]
        return schema


def documented_query_parameters(view) -> set[str]:
    """The query parameters the schema documents for this view and action (lists only)."""
    if getattr(view, "detail", False) or getattr(view, "action", "list") not in ("list", None):
        return set(getattr(view, "extra_query_parameters", ()))
    names = set(getattr(view, "extra_query_parameters", ()))
    filterset_class = getattr(view, "filterset_class", None)
    if filterset_class is not None:
        names |= set(filterset_class.base_filters)
    if getattr(view, "ordering_fields", None):
        names.add("ordering")
    paginator = getattr(view, "paginator", None)
    if paginator is not None:
        names |= {paginator.page_query_param, paginator.page_size_query_param}
    return names


def reject_unknown_query_parameters(view, request) -> None:
    """A misspelt filter (`?patinet=12`) must not quietly return every row: 400 naming it."""
    if request.method not in ("GET", "HEAD"):
        return
    errors = {
        name[:100]: ["Unknown query parameter."]
        for name in sorted(set(request.query_params) - documented_query_parameters(view))[:20]
    }
    # An empty value of a typed filter (`?status=`) is not "any status": say so rather than guess.
    filterset_class = getattr(view, "filterset_class", None)
    paginator = getattr(view, "paginator", None)
    numbers = {paginator.page_query_param, paginator.page_size_query_param} if paginator is not None else set()
    for name, value in request.query_params.items():
        typed = filterset_class is not None and not isinstance(
            filterset_class.base_filters.get(name), django_filters.CharFilter | type(None)
        )
        if value == "" and (typed or name in numbers or name in getattr(view, "extra_query_parameters", ())):
            errors[name] = ["Give a value, or leave the parameter out."]
    if errors:
        raise exceptions.ValidationError(errors)
