"""Who may call a route: the Django model permissions of the user's groups.

Collection routes check them before the query (403); object routes check them after the scoped
lookup, so "not yours" (404) always wins over "not allowed" (403). A role without the view
permission on a record type sees none of it. Checks by role name (`role_required`) are an
accounts rule and live in itbclinic/accounts/permissions.py, built on `handles` below.
"""

from rest_framework.permissions import BasePermission

from core.permissions import holds_permissions


def handles(view, method: str) -> bool:
    """The view answers `method` (else a 405 follows, and no permission check should pre-empt it)."""
    return method.lower() in view.http_method_names and method.lower() != "options" and hasattr(view, method.lower())


class ClinicModelPermissions(BasePermission):
    """Django model permissions of the user's role groups (see the module docstring); the
    superuser flag grants none of them (core/permissions.py).

    A view may name the permissions of an action per method in `action_permissions`
    (`{"cancel": ["refills.change_appointment"]}` or `{"steps": {"GET": [...], "POST": [...]}}`);
    otherwise the method maps to view/add/change of the view's model.
    """

    perms_map = {
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "POST": ["%(app_label)s.add_%(model_name)s"],
        "PUT": ["%(app_label)s.change_%(model_name)s"],
        "PATCH": ["%(app_label)s.change_%(model_name)s"],
        "DELETE": ["%(app_label)s.delete_%(model_name)s"],
    }

    def required_permissions(self, request, view) -> list[str]:
        explicit = getattr(view, "action_permissions", {}).get(getattr(view, "action", None))
        if isinstance(explicit, dict):
            explicit = explicit.get(request.method)
        if explicit is not None:
            return list(explicit)
        meta = view.permission_model._meta
        return [
            perm % {"app_label": meta.app_label, "model_name": meta.model_name}
            for perm in self.perms_map.get(request.method, ["%(app_label)s.nonexistent_%(model_name)s"])
        ]

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if not handles(view, request.method) or getattr(view, "detail", False):
            # 405 follows, or the check runs on the object once the scoped lookup found it.
            return True
        return holds_permissions(request.user, self.required_permissions(request, view))

    def has_object_permission(self, request, view, obj) -> bool:
        if not handles(view, request.method):
            return True
        return holds_permissions(request.user, self.required_permissions(request, view))
