"""The access log in the admin: clinic admins search it by patient and by user; nobody edits it."""

from django.contrib import admin

from .models import AccessLog


@admin.register(AccessLog)
class AccessLogAdmin(admin.ModelAdmin):
    list_display = ("at", "username", "patient", "action", "resource", "detail", "remote_addr", "via_token")
    list_filter = ("action", "via_token", "at")
    date_hierarchy = "at"
    search_fields = (
        "=patient__mrn",
        "patient__family_name",
        "patient__given_name",
        "username",
        "user__email",
        "=remote_addr",
    )
    list_select_related = ("patient", "user")
    readonly_fields = [f.name for f in AccessLog._meta.fields]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_actions(self, request):
        # The bulk "delete selected" action must not even be offered.
        return {}
