"""The base of every API viewset over patients' records (patients, trials, implants, visits…).

`core.api.ClinicViewSet` is the framework; this puts in what only the apps know: who is staff
(accounts), the access log (audit) and the patient scope (`patient_list_visible_to`). pumps and
refills build their viewsets on it, as patients does.
"""

from audit.api import AuditedPatientAccessMixin
from core.api import ClinicViewSet
from itbclinic.accounts.permissions import StaffAudienceMixin

from .selectors import patient_list_visible_to


def scope_by_patients(queryset, request, *, path: str):
    """Rows whose patient (reached by `path`) the user may see."""
    return queryset.filter(**{f"{path}__in": patient_list_visible_to(user=request.user)})


class PatientRecordViewSet(StaffAudienceMixin, AuditedPatientAccessMixin, ClinicViewSet):
    """Scoped, permission-checked, access-logged, never-deleting base of every API viewset.

    Subclasses set `permission_model`, implement `scope_queryset(qs)` (usually `scope_by_patients`)
    and choose serializers; `patient_serializer_class` is what a caller without a staff role receives.
    """
