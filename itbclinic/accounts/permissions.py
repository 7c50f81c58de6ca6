"""Checks by role, for the API and the staff pages: a role is an accounts concept, so they live here.

`core` knows permissions but not roles; these fill its hooks (`role_required` on the model
permission check, `StaffAudienceMixin.is_patient_audience`, `staff_required` on core.web's
audience decorator).
"""

from rest_framework.permissions import BasePermission

from core.api.permissions import handles
from core.web import audience_required

from .roles import has_role, is_staff_member


def role_required(*roles) -> type[BasePermission]:
    """A permission class: the user holds one of `roles` (for views that are not about one model)."""

    class HasRole(BasePermission):
        def has_permission(self, request, view) -> bool:
            if not (request.user and request.user.is_authenticated):
                return False
            return not handles(view, request.method) or has_role(request.user, *roles)

    HasRole.__name__ = "HasRole_" + "_or_".join(str(role) for role in roles)
    return HasRole


class StaffAudienceMixin:
    """For a `core.api.ClinicViewSet`: a caller without a staff role receives the patient serializer."""

    def is_patient_audience(self) -> bool:
        # The same rule as patient_list_visible_to: staff scope (and fields) win for a user with both.
        return not is_staff_member(self.request.user)


# Patients hold some "view" permissions for their own records (the portal): the staff role check
# keeps them out of every staff page whatever the object, so nothing is revealed.
staff_required = audience_required(is_staff_member, message="This page is for the clinic's nurses and clinicians.")
staff_required.__doc__ = "Logged in (else the login page), a staff role and every named model permission (else 403)."
