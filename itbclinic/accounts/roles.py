"""
The four roles of the clinic, as Django groups with model permissions.

Each app's data migration calls `grant_role_permissions` for its own models, so a role's
permissions are created with the models they guard. `user_role` is the one place that tells
which audience a user belongs to.
"""

from enum import StrEnum


class Role(StrEnum):
    NURSE = "nurse"
    CLINICIAN = "clinician"
    PATIENT = "patient"
    CLINIC_ADMIN = "clinic_admin"


STAFF_ROLES = frozenset({Role.NURSE, Role.CLINICIAN, Role.CLINIC_ADMIN})


def user_roles(user) -> frozenset[Role]:
    if not getattr(user, "is_authenticated", False):
        return frozenset()
    cached = getattr(user, "_role_cache", None)
    if cached is None:
        names = set(user.groups.values_list("name", flat=True))
        cached = frozenset(role for role in Role if role.value in names)
        user._role_cache = cached
    return cached


def has_role(user, *roles: Role) -> bool:
    return bool(user_roles(user) & set(roles))


def is_staff_member(user) -> bool:
    return bool(user_roles(user) & STAFF_ROLES)


def grant_role_permissions(apps, role_permissions: dict[Role, dict[str, list[str]]]) -> None:
    """
    For use inside a data migration: `{role: {"app_label.model": ["view", "add", ...]}}`.

    Permissions are normally created after all migrations (post_migrate); creating them
    here lets a fresh database hold complete roles as soon as the migration ran.
    """
    from django.contrib.auth.management import create_permissions

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    ContentType = apps.get_model("contenttypes", "ContentType")
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    for role, models in role_permissions.items():
        group, _ = Group.objects.get_or_create(name=role.value)
        for dotted, actions in models.items():
            app_label, model = dotted.split(".")
            ct = ContentType.objects.get(app_label=app_label, model=model)
            for action in actions:
                group.permissions.add(Permission.objects.get(content_type=ct, codename=f"{action}_{model}"))
