"""
The REST API's shared wiring: who may do what, whose records a user sees, how errors answer.

- Every viewset bases its queryset on the user's scope (`patients.selectors.patient_list_visible_to`,
  and `patient__in` / `implant__patient__in` for related records). A record outside the scope is
  absent: 404 on every method, never 403, so the answer never reveals that it exists.
- Function-level rules are the role groups' Django model permissions (data migrations of each app).
  Collection routes check them before the query (403); object routes check them after the scoped
  lookup, so "not yours" (404) always wins over "not allowed" (403). A role without the view
  permission on a record type sees none of it.
- Clinical records are never deleted: DELETE answers 405, `POST …/mark-entered-in-error/` replaces it.
- Services raise Django's ValidationError({field: message}); it answers 400 with the field named.
  A lost booking race (BookingConflict) answers 409.
"""

import datetime as dt
import logging
from collections.abc import Iterable
from functools import reduce

import django_filters
from django import forms
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db import models as django_models
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.decorators import action
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.viewsets import GenericViewSet

from itbclinic.accounts.roles import has_role, is_staff_member
from itbclinic.pagination import StandardPagination
from itbclinic.records import HardDeleteForbidden

logger = logging.getLogger("itbclinic.api")

# Primary keys are 64-bit: anything else cannot name a row, and would overflow the driver.
MAX_ID = 2**63 - 1
# Clinical dates fall in this span; it also keeps date arithmetic (forecasts, battery plans) in range.
EARLIEST_DATE = "1900-01-01"
LATEST_DATE = "2199-12-31"
LONG_TEXT = 5000


# ---------------------------------------------------------------------------
# Fields
# ---------------------------------------------------------------------------
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


# The API speaks JSON only, and its fields take exactly the JSON types the schema names: a number
# where a string is documented (or the reverse) is a 400, never silently converted. Decimals are
# strings ("0.25"): exact, never binary floating point.
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


# ---------------------------------------------------------------------------
# Filters: they narrow the caller's scoped queryset, never widen it. Ids are plain integers (not
# model choices), so an id outside the scope filters to nothing exactly like an id that does not
# exist: a filter cannot tell whether a record exists.
# ---------------------------------------------------------------------------
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


class ClinicJSONParser(JSONParser):
    """JSON, where nesting deep enough to exhaust the parser's recursion is a 400, not a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from None


# ---------------------------------------------------------------------------
# Pagination: a page size that is not a whole number is a 400, not silently the default
# ---------------------------------------------------------------------------
class ClinicPagination(StandardPagination):
    page_size_query_description = f"Results per page, 1 to {StandardPagination.max_page_size} (larger is capped)."

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not (raw.isascii() and raw.isdigit() and int(raw) >= 1):
            raise exceptions.ValidationError({self.page_size_query_param: ["A whole number, 1 or more."]})
        return min(int(raw), self.max_page_size)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
        return parameters


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------
def validation_error_detail(exc: DjangoValidationError) -> dict[str, list[str]]:
    if hasattr(exc, "error_dict"):
        return {
            ("non_field_errors" if name == NON_FIELD_ERRORS else name): messages
            for name, messages in exc.message_dict.items()
        }
    return {"non_field_errors": exc.messages}


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "This change conflicts with the current state of the record."
    default_code = "conflict"


def exception_handler(exc, context):
    """DRF's handler, plus the domain's exceptions (see the module docstring)."""
    # Imported here, not at the top: patients/api.py and pumps/api.py import this module and must
    # not pull in the care schedule (STYLE.md "The house").
    from refills.services import BookingConflict

    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(detail=validation_error_detail(exc))
    elif isinstance(exc, BookingConflict):
        exc = Conflict(detail=str(exc), code="booking_conflict")
    elif isinstance(exc, HardDeleteForbidden):
        exc = exceptions.MethodNotAllowed(
            context["request"].method, detail="Clinical records are never deleted: mark them entered in error."
        )
    elif isinstance(exc, IntegrityError):
        # The database constraints are the backstop behind the services' checks: a request that
        # trips one lost a race or met a rule the service did not foresee. Not a server fault.
        logger.warning("integrity error on %s: %s", context["request"].path, exc)
        exc = Conflict()
    response = drf_exception_handler(exc, context)
    if isinstance(exc, Conflict) and response is not None:
        response.data = {"detail": str(exc.detail), "code": exc.detail.code}
    return response


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField(required=False)


# ---------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------
# Permissions
# ---------------------------------------------------------------------------
def _handles(view, method: str) -> bool:
    return method.lower() in view.http_method_names and method.lower() != "options" and hasattr(view, method.lower())


class ClinicModelPermissions(BasePermission):
    """Django model permissions of the user's role groups (see the module docstring).

    A view may name the permissions of an action per method in `action_permissions`
    (`{"cancel": ["refills.change_appointment"]}` or `{"steps": {"GET": [...], "POST": [...]}}`);
    otherwise the method maps to view/add/change of the view's model.
    """

    perms_map = {
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "POST": ["%(app_label)s.add_%(model_name)s"],
        "PUT": ["%(app_label)s.change_%(model_name)s"],
        "PATCH": ["%(app_label)s.change_%(model_name)s"],
        "DELETE": ["%(app_label)s.delete_%(model_name)s"],
    }

    def required_permissions(self, request, view) -> list[str]:
        explicit = getattr(view, "action_permissions", {}).get(getattr(view, "action", None))
        if isinstance(explicit, dict):
            explicit = explicit.get(request.method)
        if explicit is not None:
            return list(explicit)
        meta = view.permission_model._meta
        return [
            perm % {"app_label": meta.app_label, "model_name": meta.model_name}
            for perm in self.perms_map.get(request.method, ["%(app_label)s.nonexistent_%(model_name)s"])
        ]

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if not _handles(view, request.method) or getattr(view, "detail", False):
            # 405 follows, or the check runs on the object once the scoped lookup found it.
            return True
        return request.user.has_perms(self.required_permissions(request, view))

    def has_object_permission(self, request, view, obj) -> bool:
        if not _handles(view, request.method):
            return True
        return request.user.has_perms(self.required_permissions(request, view))


def role_required(*roles) -> type[BasePermission]:
    """A permission class: the user holds one of `roles` (for views that are not about one model)."""

    class HasRole(BasePermission):
        def has_permission(self, request, view) -> bool:
            if not (request.user and request.user.is_authenticated):
                return False
            return not _handles(view, request.method) or has_role(request.user, *roles)

    HasRole.__name__ = "HasRole_" + "_or_".join(str(role) for role in roles)
    return HasRole


# ---------------------------------------------------------------------------
# Access log
# ---------------------------------------------------------------------------
class AuditedPatientAccessMixin:
    """The one place where the API records who saw which patient's record (SECURITY.md "Audit").

    `audit_patient_path` says how to get from a row to its patient ("patient", "implant__patient",
    "trial__patient"); retrieve and list call `audit_patient_access` for what they disclosed.
    """

    audit_patient_path: str | None = None

    def patient_of(self, obj):
        if self.audit_patient_path is None:
            return None
        if self.audit_patient_path == "self":
            return obj
        return reduce(lambda o, attr: getattr(o, attr, None), self.audit_patient_path.split("__"), obj)

    def audit_patient_access(self, *, patients: Iterable, detail: str) -> None:
        from audit.services import audit_record_access

        seen = set()
        for patient in patients:
            if patient is None or patient.pk in seen:
                continue
            seen.add(patient.pk)
            audit_record_access(
                user=self.request.user, patient=patient, action="view", request=self.request, detail=detail
            )


# ---------------------------------------------------------------------------
# Base viewset
# ---------------------------------------------------------------------------
class MarkEnteredInErrorSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=LONG_TEXT, help_text="Why this record was entered in error.")


class EnteredInErrorSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    entered_in_error = serializers.BooleanField()
    entered_in_error_reason = serializers.CharField()
    entered_in_error_at = serializers.DateTimeField()


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


class ClinicViewSet(AuditedPatientAccessMixin, GenericViewSet):
    """Scoped, permission-checked, never-deleting base of every API viewset.

    Subclasses set `permission_model`, implement `scope_queryset(qs)` (the rows of the patients the
    user may see) and choose serializers; `patient_serializer_class` is what a patient receives.
    """

    permission_classes = [ClinicModelPermissions]
    parser_classes = [ClinicJSONParser]
    renderer_classes = [JSONRenderer]
    pagination_class = ClinicPagination
    permission_model = None
    schema = ClinicAutoSchema()
    metadata_class = None  # OPTIONS answers 405: the schema is at /api/schema/
    patient_serializer_class = None
    action_permissions: dict = {}

    def get_exception_handler(self):
        return exception_handler

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        reject_unknown_query_parameters(self, request)

    # -- scope ------------------------------------------------------------
    def base_queryset(self):
        return self.permission_model.objects.all()

    def scope_queryset(self, queryset):
        raise NotImplementedError

    def get_queryset(self):
        user = self.request.user
        meta = self.permission_model._meta
        queryset = self.base_queryset()
        if not user.has_perm(f"{meta.app_label}.view_{meta.model_name}"):
            return queryset.none()
        return self.scope_queryset(queryset)

    def get_object(self):
        lookup = self.lookup_url_kwarg or self.lookup_field
        if parse_id(self.kwargs.get(lookup)) is None:
            raise exceptions.NotFound()
        return super().get_object()

    def http_method_not_allowed(self, request, *args, **kwargs):
        # Look the object up first: for a record outside the caller's scope the answer stays 404.
        if (self.lookup_url_kwarg or self.lookup_field) in kwargs:
            self.get_object()
        raise exceptions.MethodNotAllowed(request.method)

    # -- serializers ------------------------------------------------------
    def is_patient_audience(self) -> bool:
        # The same rule as patient_list_visible_to: staff scope (and fields) win for a user with both.
        return not is_staff_member(self.request.user)

    def get_output_serializer_class(self):
        if self.patient_serializer_class is not None and self.is_patient_audience():
            return self.patient_serializer_class
        return self.serializer_class

    def output(self, instance, *, status_code=status.HTTP_200_OK, many=False) -> Response:
        serializer = self.get_output_serializer_class()(instance, many=many, context=self.get_serializer_context())
        return Response(serializer.data, status=status_code)

    def validated(self, serializer_class, *, data=None, partial=False, **context) -> dict:
        serializer = serializer_class(
            data=self.request.data if data is None else data,
            partial=partial,
            context={**self.get_serializer_context(), **context},
        )
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


class ListRetrieveMixin:
    """GET list and GET one, both recorded in the access log."""

    def list(self, request, *args, **kwargs):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        rows = page if page is not None else list(queryset)
        self.audit_patient_access(patients=(self.patient_of(row) for row in rows), detail=f"list {self.basename}")
        data = self.get_output_serializer_class()(rows, many=True, context=self.get_serializer_context()).data
        return self.get_paginated_response(data) if page is not None else Response(data)

    def retrieve(self, request, *args, **kwargs):
        instance = self.get_object()
        self.audit_patient_access(patients=[self.patient_of(instance)], detail=f"{self.basename} {instance.pk}")
        return self.output(instance)


class MarkEnteredInErrorMixin:
    """`POST …/{id}/mark-entered-in-error/` with a reason: the API's DELETE for clinical records."""

    def perform_mark_entered_in_error(self, *, record, reason: str) -> None:
        from patients.services import clinical_record_mark_entered_in_error

        clinical_record_mark_entered_in_error(record=record, by=self.request.user, reason=reason)

    @extend_schema(request=MarkEnteredInErrorSerializer, responses={200: EnteredInErrorSerializer})
    @action(detail=True, methods=["post"], url_path="mark-entered-in-error")
    def mark_entered_in_error(self, request, *args, **kwargs):
        record = self.get_object()
        data = self.validated(MarkEnteredInErrorSerializer)
        self.perform_mark_entered_in_error(record=record, reason=data["reason"])
        record.refresh_from_db()
        return Response(EnteredInErrorSerializer(record).data)


@csrf_exempt  # it changes nothing: an unknown route must answer 404, not a CSRF failure page
def api_not_found(request, *args, **kwargs) -> JsonResponse:
    return JsonResponse({"detail": "Not found."}, status=404)


def scope_by_patients(queryset, request, *, path: str):
    """Rows whose patient (reached by `path`) the user may see."""
    from patients.selectors import patient_list_visible_to

    return queryset.filter(**{f"{path}__in": patient_list_visible_to(user=request.user)})


__all__ = [
    "EARLIEST_DATE",
    "LATEST_DATE",
    "MAX_ID",
    "AuditedPatientAccessMixin",
    "BooleanFilter",
    "ClinicAutoSchema",
    "ClinicJSONParser",
    "ClinicModelPermissions",
    "ClinicPagination",
    "ClinicViewSet",
    "ClinicalDateField",
    "ClinicalDateTimeField",
    "ClinicalDateTimeFilter",
    "Conflict",
    "EnteredInErrorSerializer",
    "IdFilter",
    "ListRetrieveMixin",
    "MarkEnteredInErrorMixin",
    "MarkEnteredInErrorSerializer",
    "ScopedPrimaryKeyRelatedField",
    "StrictBooleanField",
    "StrictCharField",
    "StrictChoiceField",
    "StrictDecimalField",
    "StrictEmailField",
    "StrictIntegerField",
    "StrictModelSerializer",
    "StrictPrimaryKeyRelatedField",
    "api_not_found",
    "exception_handler",
    "parse_id",
    "reject_unknown_query_parameters",
    "role_required",
    "scope_by_patients",
    "text",
]
