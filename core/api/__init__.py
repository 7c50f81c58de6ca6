"""The REST API framework every app's `api.py` builds on, one module per concern.

`fields` (strict JSON types, ids, dates, text, scoped foreign keys), `filters`, `parsers`,
`pagination`, `errors` (the exception handler, 409 Conflict, the JSON 404), `schema` (error
answers, documented and refused query parameters), `permissions` (model permissions), `viewsets`
(the scoped base viewset and its mixins). The names are re-exported here for `from core.api import …`.
"""

from .errors import Conflict, ErrorSerializer, api_not_found, exception_handler, validation_error_detail
from .fields import (
    EARLIEST_DATE,
    LATEST_DATE,
    LONG_TEXT,
    MAX_ID,
    ClinicalDateField,
    ClinicalDateTimeField,
    ScopedPrimaryKeyRelatedField,
    StrictBooleanField,
    StrictCharField,
    StrictChoiceField,
    StrictDecimalField,
    StrictEmailField,
    StrictIntegerField,
    StrictModelSerializer,
    StrictPrimaryKeyRelatedField,
    parse_id,
    text,
)
from .filters import BooleanFilter, ClinicalDateTimeFilter, IdFilter
from .pagination import ClinicPagination, StandardPagination
from .parsers import ClinicJSONParser
from .permissions import ClinicModelPermissions, handles
from .schema import ClinicAutoSchema, documented_query_parameters, reject_unknown_query_parameters
from .viewsets import (
    ClinicViewSet,
    EnteredInErrorSerializer,
    ListRetrieveMixin,
    MarkEnteredInErrorMixin,
    MarkEnteredInErrorSerializer,
)

__all__ = [
    "EARLIEST_DATE",
    "LATEST_DATE",
    "LONG_TEXT",
    "MAX_ID",
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
    "StandardPagination",
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
    "handles",
    "parse_id",
    "reject_unknown_query_parameters",
    "text",
    "validation_error_detail",
]
