# shim until the import sweep: import from core.admin (ClinicalRecordAdmin from audit.mixins)
from audit.mixins import ClinicalRecordAdmin
from core.admin import (
    ENTERED_IN_ERROR_FIELDS,
    EnteredInErrorReasonForm,
    ReadOnlyAdminMixin,
    ReadOnlyTabularInline,
    mark_entered_in_error,
)

__all__ = [
    "ENTERED_IN_ERROR_FIELDS",
    "ClinicalRecordAdmin",
    "EnteredInErrorReasonForm",
    "ReadOnlyAdminMixin",
    "ReadOnlyTabularInline",
    "mark_entered_in_error",
]
