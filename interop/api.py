"""FHIR R4 read API: `GET /api/fhir/Patient/<id>/$everything`, staff only, access-logged."""

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from audit.models import AccessLog
from audit.services import audit_record_access
from core.api.errors import exception_handler
from itbclinic.accounts.permissions import role_required
from itbclinic.accounts.roles import Role
from patients.selectors import patient_list_visible_to

from .fhir import patient_everything


class FhirJSONRenderer(JSONRenderer):
    media_type = "application/fhir+json"
    format = "fhir"


class PatientEverythingView(APIView):
    """The patient's whole pump record as a FHIR R4 `searchset` Bundle (docs/fhir.md)."""

    permission_classes = [role_required(Role.NURSE, Role.CLINICIAN, Role.CLINIC_ADMIN)]
    renderer_classes = [FhirJSONRenderer, JSONRenderer]

    def get_exception_handler(self):
        return exception_handler

    # Not in the OpenAPI schema: a FHIR server describes itself in FHIR terms (docs/fhir.md), and
    # the generator would drop the "$" of the operation's path. The URL matrix covers the route.
    @extend_schema(exclude=True)
    def get(self, request: Request, pk: int) -> HttpResponse:
        patient = get_object_or_404(patient_list_visible_to(user=request.user), pk=pk)
        bundle = patient_everything(patient_id=patient.pk, base_url=request.build_absolute_uri("/api/fhir/"))
        audit_record_access(
            user=request.user,
            patient=patient,
            action=AccessLog.Action.EXPORT,
            request=request,
            detail="FHIR $everything",
        )
        return HttpResponse(bundle.model_dump_json(exclude_none=True), content_type="application/fhir+json")
