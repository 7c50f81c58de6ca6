"""The base viewset of the API: scoped, permission-checked, never deleting.

- A viewset bases its queryset on the user's scope (`scope_queryset`): a record outside it is
  absent, 404 on every method, never 403, so the answer never reveals that it exists.
- Clinical records are never deleted: DELETE answers 405, `POST …/mark-entered-in-error/` replaces it.
- Two decisions belong to the apps above and are hooks here: who counts as a patient audience
  (a role: itbclinic/accounts/permissions.py `StaffAudienceMixin`) and the access log
  (audit/api.py `AuditedPatientAccessMixin`). `patients.api_base.PatientRecordViewSet` puts the
  three together; the hooks raise rather than silently skip the log or choose an audience.
"""

from collections.abc import Iterable

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.decorators import action
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.viewsets import GenericViewSet

from core.permissions import holds_permissions
from core.records import clinical_record_mark_entered_in_error

from .errors import exception_handler
from .fields import LONG_TEXT, parse_id
from .pagination import ClinicPagination
from .parsers import ClinicJSONParser
from .permissions import ClinicModelPermissions
from .schema import ClinicAutoSchema, reject_unknown_query_parameters


class MarkEnteredInErrorSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=LONG_TEXT, help_text="Why this record was entered in error.")


class EnteredInErrorSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    entered_in_error = serializers.BooleanField()
    entered_in_error_reason = serializers.CharField()
    entered_in_error_at = serializers.DateTimeField()


class ClinicViewSet(GenericViewSet):
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

    # -- hooks filled by the apps above (see the module docstring) ---------
    def is_patient_audience(self) -> bool:
        raise NotImplementedError("Who is a patient audience is a role rule: mix in StaffAudienceMixin.")

    def patient_of(self, obj):
        raise NotImplementedError("Mix in audit.api.AuditedPatientAccessMixin.")

    def audit_patient_access(self, *, patients: Iterable, detail: str) -> None:
        raise NotImplementedError("Mix in audit.api.AuditedPatientAccessMixin: every disclosure is logged.")

    # -- scope ------------------------------------------------------------
    def base_queryset(self):
        return self.permission_model.objects.all()

    def scope_queryset(self, queryset):
        raise NotImplementedError

    def get_queryset(self):
        user = self.request.user
        meta = self.permission_model._meta
        queryset = self.base_queryset()
        if not holds_permissions(user, [f"{meta.app_label}.view_{meta.model_name}"]):
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
    """`POST …/{id}/mark-entered-in-error/` with a reason: the API's DELETE for clinical records.

    An app whose records feed a derived value overrides `perform_mark_entered_in_error` with its
    own service (the care schedule recomputes the forecast).
    """

    def perform_mark_entered_in_error(self, *, record, reason: str) -> None:
        clinical_record_mark_entered_in_error(record=record, by=self.request.user, reason=reason)

    @extend_schema(request=MarkEnteredInErrorSerializer, responses={200: EnteredInErrorSerializer})
    @action(detail=True, methods=["post"], url_path="mark-entered-in-error")
    def mark_entered_in_error(self, request, *args, **kwargs):
        record = self.get_object()
        data = self.validated(MarkEnteredInErrorSerializer)
        self.perform_mark_entered_in_error(record=record, reason=data["reason"])
        record.refresh_from_db()
        return Response(EnteredInErrorSerializer(record).data)
