from django.contrib.auth.context_processors import PermWrapper
from django.contrib.auth.models import AnonymousUser

from core.permissions import GrantedPerms

from .roles import Role, user_roles


def roles(request) -> dict:
    current = user_roles(getattr(request, "user", None))
    return {
        "user_roles": current,
        "is_nurse": Role.NURSE in current,
        "is_clinician": Role.CLINICIAN in current,
        "is_patient_user": Role.PATIENT in current,
        "is_clinic_admin": Role.CLINIC_ADMIN in current,
        # Replaces django.contrib.auth's `perms`: a page offers what the role may do, never more
        # because of the superuser flag (core/permissions.py). Lazy, as Django's.
        "perms": PermWrapper(GrantedPerms(getattr(request, "user", None) or AnonymousUser())),
    }
