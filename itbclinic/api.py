# shim until the import sweep: import from core.api (the app-level names from the modules named below)
"""The names every app's api.py imported from here before core existed (docs/architecture.md).

core.api holds the framework; `ClinicViewSet` here is `patients.api_base.PatientRecordViewSet`
(plus the booking-conflict answer), `AuditedPatientAccessMixin` is in audit.api, `role_required`
in itbclinic.accounts.permissions, `scope_by_patients` in patients.api_base.
"""

from audit.api import AuditedPatientAccessMixin
from core.api import (
    EARLIEST_DATE,
    LATEST_DATE,
    MAX_ID,
    BooleanFilter,
    ClinicalDateField,
    ClinicalDateTimeField,
    ClinicalDateTimeFilter,
    ClinicAutoSchema,
    ClinicJSONParser,
    ClinicModelPermissions,
    ClinicPagination,
    Conflict,
    EnteredInErrorSerializer,
    ErrorSerializer,
    IdFilter,
    ListRetrieveMixin,
    MarkEnteredInErrorMixin,
    MarkEnteredInErrorSerializer,
    ScopedPrimaryKeyRelatedField,
    StrictBooleanField,
    StrictCharField,
    StrictChoiceField,
    StrictDecimalField,
    StrictEmailField,
    StrictIntegerField,
    StrictModelSerializer,
    StrictPrimaryKeyRelatedField,
    api_not_found,
    documented_query_parameters,
    parse_id,
    reject_unknown_query_parameters,
    text,
    validation_error_detail,
)
from core.api import exception_handler as core_exception_handler
from itbclinic.accounts.permissions import role_required
from patients.api_base import PatientRecordViewSet, scope_by_patients


def exception_handler(exc, context):
    """core's handler, and a lost booking race (refills' BookingConflict) answers 409 "booking_conflict".

    Until the sweep makes BookingConflict a core.errors.ConflictError (code "booking_conflict"),
    after which core's handler answers it and this shim goes.
    """
    # Imported here, as before the split: this shim is imported by pumps/api.py, which must not
    # pull in the care schedule at import time. It goes with the shim.
    from refills.services import BookingConflict

    if isinstance(exc, BookingConflict):
        exc = Conflict(detail=str(exc), code="booking_conflict")
    return core_exception_handler(exc, context)


class ClinicViewSet(PatientRecordViewSet):
    def get_exception_handler(self):
        return exception_handler


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
    "ErrorSerializer",
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
    "documented_query_parameters",
    "exception_handler",
    "parse_id",
    "reject_unknown_query_parameters",
    "role_required",
    "scope_by_patients",
    "text",
    "validation_error_detail",
]
