"""Model permissions as granted, the superuser flag aside: the check of every clinical page and API route.

Django's `User.has_perm` answers True for an active superuser whatever the permission. Here a
superuser is a technical account: the Django admin is its place (Django's own semantics there),
while staff pages and the API act only on what its groups (the roles) or its own permission rows
grant. A clinician-only action is refused to a superuser who is not also a clinician, so no role
gains anything through the flag.
"""

from collections.abc import Iterable

from django.contrib.auth.models import Permission
from django.db.models import Q


def granted_permissions(user) -> frozenset[str]:
    """ "app_label.codename" of every permission of the user's groups and of the user, whatever its flags."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return frozenset()
    if not user.is_superuser:
        return frozenset(user.get_all_permissions())  # Django's own cache of the same rows
    cached = getattr(user, "_granted_perm_cache", None)
    if cached is None:
        rows = (
            Permission.objects.filter(Q(group__user=user) | Q(user=user))
            .values_list("content_type__app_label", "codename")
            .distinct()
        )
        cached = frozenset(f"{app_label}.{codename}" for app_label, codename in rows)
        user._granted_perm_cache = cached
    return cached


def holds_permissions(user, perms: Iterable[str]) -> bool:
    """The user was granted every one of `perms` (by a role or directly); the superuser flag grants none."""
    if not getattr(user, "is_superuser", False):
        return user.has_perms(perms)  # the same answer, and the same queries, as Django's
    return set(perms) <= granted_permissions(user)


class GrantedPerms:
    """A user stand-in for the templates' `perms` (django.contrib.auth.context_processors.PermWrapper):
    a page offers a button only when `holds_permissions` would let the action through."""

    def __init__(self, user):
        self._user = user

    def has_perm(self, perm: str, obj=None) -> bool:
        return holds_permissions(self._user, [perm])

    def has_module_perms(self, app_label: str) -> bool:
        return any(perm.startswith(f"{app_label}.") for perm in granted_permissions(self._user))
