"""
The admin side of "clinical records are never hard-deleted" (core/records.py).

`ClinicalRecordAdminBase` is the base of every ClinicalRecord's ModelAdmin: no delete (neither the
page nor the bulk action), no revert from the history (a revert would silently undo an
"entered in error" mark, bypassing the service), the entered-in-error fields read-only, and
the "Mark entered in error" action, which asks for a reason on an intermediate page and calls
`record_mark_entered_in_error` (by default `core.records.clinical_record_mark_entered_in_error`)
for each selected record. The apps use `audit.mixins.ClinicalRecordAdmin`, which adds the access
log: opening a clinical record is an access to its patient.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.template.response import TemplateResponse
from simple_history.admin import SimpleHistoryAdmin

from core.records import clinical_record_mark_entered_in_error

ENTERED_IN_ERROR_FIELDS = (
    "entered_in_error",
    "entered_in_error_reason",
    "entered_in_error_at",
    "entered_in_error_by",
    "created_at",
    "updated_at",
)


class EnteredInErrorReasonForm(forms.Form):
    reason = forms.CharField(
        label="Why were these records entered in error?",
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=2000,
    )

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise ValidationError("Say why these records were entered in error.")
        return reason


@admin.action(description="Mark entered in error", permissions=["change"])
def mark_entered_in_error(modeladmin, request, queryset):
    """First call: show the reason form. Second call (with "apply"): mark each record."""
    form = EnteredInErrorReasonForm(request.POST if "apply" in request.POST else None)
    if form.is_bound and form.is_valid():
        reason = form.cleaned_data["reason"]
        marked = 0
        for record in queryset.filter(entered_in_error=False):
            modeladmin.record_mark_entered_in_error(record=record, by=request.user, reason=reason)
            marked += 1
        skipped = queryset.count() - marked
        modeladmin.message_user(
            request,
            f"{marked} {modeladmin.model._meta.verbose_name_plural} marked entered in error"
            + (f"; {skipped} already were." if skipped else "."),
            messages.SUCCESS,
        )
        return None
    opts = modeladmin.model._meta
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Mark entered in error",
        "opts": opts,
        "queryset": queryset,
        "form": form,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "action_name": "mark_entered_in_error",
        "media": modeladmin.media,
    }
    request.current_app = modeladmin.admin_site.name
    return TemplateResponse(request, "admin/mark_entered_in_error.html", context)


class ClinicalRecordAdminBase(SimpleHistoryAdmin):
    """Base admin of ClinicalRecord subclasses: history visible, never deleted, marked in error.

    Without the access log: apps use `audit.mixins.ClinicalRecordAdmin`.
    """

    actions = [mark_entered_in_error]
    # Subclasses list the fields the admin may correct; everything else is read-only because a
    # service derives or guards it (forecast, discrepancy, status transitions).
    editable_fields: tuple[str, ...] = ()

    def record_mark_entered_in_error(self, *, record, by, reason: str) -> None:
        """The service that marks one record; an app whose records feed a derived value (the
        care schedule's forecast) overrides it with its own service."""
        clinical_record_mark_entered_in_error(record=record, by=by, reason=reason)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        # Clinical records are created through the staff app and the API, which run the services.
        return False

    def revert_disabled(self, request, obj=None) -> bool:
        return True

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method == "POST":
            raise PermissionDenied("Clinical records are never reverted: correct or mark them entered in error.")
        return super().history_form_view(request, object_id, version_id, extra_context)

    def get_readonly_fields(self, request, obj=None):
        names = [f.name for f in self.model._meta.concrete_fields if f.name not in self.editable_fields]
        return [n for n in names if n != self.model._meta.pk.name]

    def get_fields(self, request, obj=None):
        names = [f.name for f in self.model._meta.concrete_fields if f.name != self.model._meta.pk.name]
        tail = [n for n in ENTERED_IN_ERROR_FIELDS if n in names]
        return [n for n in names if n not in tail] + tail


class ReadOnlyAdminMixin:
    """A list to read and filter (reminders, alerts, scores): rows are written by services only."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyTabularInline(ReadOnlyAdminMixin, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True
    # Related rows shown in the inline: fetched with the rows, not one query each.
    list_select_related: tuple[str, ...] = ()

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        return qs.select_related(*self.list_select_related) if self.list_select_related else qs
