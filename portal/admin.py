"""Carers' consent in the admin, for the clinic admin to check; links are revoked from the portal tools."""

from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from .models import CarerLink


@admin.register(CarerLink)
class CarerLinkAdmin(SimpleHistoryAdmin):
    list_display = ("carer", "patient", "consent_recorded_at", "consent_recorded_by", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("=patient__mrn", "patient__family_name", "carer__username", "carer__email")
    list_select_related = ("carer", "patient", "consent_recorded_by")
    readonly_fields = [f.name for f in CarerLink._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
