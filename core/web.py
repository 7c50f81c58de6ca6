"""Helpers of the server-rendered pages (the staff app): who may open a page, what a form reads."""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from .permissions import holds_permissions


def audience_required(is_member: Callable[..., bool], *, message: str) -> Callable[..., Callable]:
    """A decorator factory: `required(*perms)` lets in a logged-in user of the audience who holds every perm.

    Not logged in: the login page. Outside the audience (`is_member(user)` false) or missing a
    permission (granted by a role: the superuser flag counts for nothing, core/permissions.py): 403
    with `message`. The audience is a role, which core does not know: accounts
    builds `staff_required` from this.
    """

    def required(*perms: str) -> Callable:
        def decorator(view):
            @login_required
            @wraps(view)
            def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
                if not is_member(request.user) or not holds_permissions(request.user, perms):
                    raise PermissionDenied(message)
                return view(request, *args, **kwargs)

            return wrapped

        return decorator

    return required


def form_data(request: HttpRequest):
    """The POSTed data (even when empty: an empty POST must show "required" errors), else None."""
    return request.POST if request.method == "POST" else None
