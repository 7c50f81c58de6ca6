"""
Ways for views to write the access log without repeating themselves.

- Call `audit_record_access(...)` where a view holds the patient (the staff and portal views do;
  the API's viewsets use `audit.api.AuditedPatientAccessMixin`).
- `AuditedModelAdminMixin` for ModelAdmins of patient-linked models (change/history views), and
  `ClinicalRecordAdmin`, core's clinical-record admin with it: the base every app's admin uses.
"""

from django.apps import apps
from django.db import models
from django.http import HttpRequest

from core.admin import ClinicalRecordAdminBase

from .models import PATIENT_MODEL, AccessLog
from .services import audit_record_access

# Attribute paths that lead from a clinical object to its patient, tried in order.
_PATIENT_PATHS = ("patient", "implant", "trial", "appointment", "assessment", "step")


def _patient_model() -> type[models.Model]:
    return apps.get_model(PATIENT_MODEL)


def patient_of(obj, *, _depth: int = 0) -> models.Model | None:
    """The patient a record belongs to (Patient, Implant, RefillVisit, Appointment, Trial...)."""
    if isinstance(obj, _patient_model()):
        return obj
    if obj is None or _depth > 3:
        return None
    for attr in _PATIENT_PATHS:
        if hasattr(type(obj), attr):
            found = patient_of(getattr(obj, attr, None), _depth=_depth + 1)
            if found is not None:
                return found
    return None


def _action_for(request: HttpRequest, default: str | None) -> str:
    if default:
        return default
    return AccessLog.Action.VIEW if request.method in ("GET", "HEAD") else AccessLog.Action.CHANGE


class AuditedModelAdminMixin:
    """For the admin of a patient-linked model: opening a row is an access to that patient."""

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        self._audit(request, object_id, response)
        return response

    def history_view(self, request, object_id, extra_context=None):
        response = super().history_view(request, object_id, extra_context)
        self._audit(request, object_id, response)
        return response

    def _audit(self, request, object_id, response) -> None:
        if not (200 <= response.status_code < 300):
            return
        obj = self.get_object(request, object_id)
        patient = patient_of(obj)
        if patient is not None:
            audit_record_access(
                user=request.user,
                patient=patient,
                action=_action_for(request, None),
                request=request,
                detail=f"admin {type(obj).__name__.lower()} {obj.pk}",
            )


class ClinicalRecordAdmin(AuditedModelAdminMixin, ClinicalRecordAdminBase):
    """Base admin of ClinicalRecord subclasses: history visible, never deleted, marked in error.

    Opening a record (or its history) is an access to its patient: it is written to the access log.
    """
