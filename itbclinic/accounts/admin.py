from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from .models import User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "email", "first_name", "last_name", "role_names", "is_active", "last_login")
    list_filter = ("groups", "is_active", "is_staff")
    search_fields = ("username", "email", "first_name", "last_name")
    fieldsets = (*BaseUserAdmin.fieldsets, ("Contact", {"fields": ("phone",)}))
    # Roles are a handful of groups: ticked in a list, each box with its label. Django's two-pane
    # filter widget puts aria-label on a plain <span> (axe: aria-prohibited-attr).
    filter_horizontal = ()
    # When someone last logged in and joined is the system's record, not something to type (and
    # the split date-time inputs had no label of their own).
    always_read_only = ("last_login", "date_joined")

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "groups":
            kwargs["widget"] = forms.CheckboxSelectMultiple
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        # Roles are assigned as groups; only a superuser (the technical account) hands out the
        # superuser flag or single permissions, or a clinic admin could grant herself everything.
        readonly = (*super().get_readonly_fields(request, obj), *self.always_read_only)
        if request.user.is_superuser:
            return readonly
        return (*readonly, "is_superuser", "user_permissions")

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups")

    @admin.display(description="roles")
    def role_names(self, obj: User) -> str:
        return ", ".join(g.name.replace("_", " ").capitalize() for g in obj.groups.all())
