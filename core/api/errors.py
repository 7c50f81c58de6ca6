"""How the API answers errors.

- Services raise Django's ValidationError({field: message}); it answers 400 with the field named.
- A domain conflict (`core.errors.ConflictError`, e.g. a lost booking race) answers 409 with its code.
- Clinical records are never deleted (`HardDeleteForbidden`): 405.
- A database constraint tripped by a request (a lost race, a rule the service did not foresee): 409.
"""

import logging

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, serializers, status
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import ConflictError
from core.records import HardDeleteForbidden

# The logger keeps its name from before core existed: the logging configuration and the logs use it.
logger = logging.getLogger("itbclinic.api")


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
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(detail=validation_error_detail(exc))
    elif isinstance(exc, ConflictError):
        exc = Conflict(detail=str(exc), code=exc.code)
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


@csrf_exempt  # it changes nothing: an unknown route must answer 404, not a CSRF failure page
def api_not_found(request, *args, **kwargs) -> JsonResponse:
    return JsonResponse({"detail": "Not found."}, status=404)
