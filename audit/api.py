"""The one place where the API records who saw which patient's record (SECURITY.md "Audit")."""

from collections.abc import Iterable
from functools import reduce

from .services import audit_record_accesses


class AuditedPatientAccessMixin:
    """Fills `core.api.ClinicViewSet`'s access-log hooks; also usable on a plain DRF generic view.

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
        """One row per distinct patient disclosed, all in one insert: a list page of any size costs one query."""
        audit_record_accesses(
            user=self.request.user, patients=patients, action="view", request=self.request, detail=detail
        )
