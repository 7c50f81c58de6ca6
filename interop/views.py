"""The clinic admin's onboarding pages: upload a sheet, read its dry run, confirm the import."""

import datetime as dt

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from core.idempotency import idempotent_form
from core.web import form_data
from itbclinic.accounts.models import User
from itbclinic.accounts.permissions import staff_required

from .columns import COLUMNS
from .forms import ClinicImportUploadForm
from .models import ClinicImport
from .onboarding import clinic_import_check, clinic_import_confirm
from .sheet import SheetError
from .template import template_csv, template_xlsx

PERMISSION = "interop.add_clinicimport"


def _admin(request: HttpRequest) -> User:
    """The logged-in clinic admin (staff_required lets no anonymous request through)."""
    if not isinstance(request.user, User):
        raise PermissionDenied
    return request.user


@require_http_methods(["GET", "POST"])
@staff_required(PERMISSION)
@idempotent_form
def clinic_import_upload(request: HttpRequest) -> HttpResponse:
    form = ClinicImportUploadForm(form_data(request), request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            checked = clinic_import_check(content=upload.read(), filename=upload.name, by=_admin(request))
        except SheetError as exc:
            form.add_error("file", str(exc))
        else:
            return redirect("staff:clinic_import_detail", checked.pk)
    recent = ClinicImport.objects.select_related("uploaded_by", "imported_by").defer("content")[:10]
    return render(request, "interop/upload.html", {"form": form, "columns": COLUMNS, "recent": recent})


@require_http_methods(["GET"])
@staff_required(PERMISSION)
def clinic_import_template(request: HttpRequest, kind: str) -> HttpResponse:
    if kind == "csv":
        response = HttpResponse(template_csv(), content_type="text/csv; charset=utf-8")
    elif kind == "xlsx":
        response = HttpResponse(
            template_xlsx(), content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        )
    else:
        raise Http404("No such template.")
    response["Content-Disposition"] = f'attachment; filename="itb-clinic-import-template.{kind}"'
    return response


def _display_check(check: dict | None) -> dict | None:
    """A stored date comparison with dates to format and the difference in words' parts."""
    if check is None:
        return None
    days = check["difference_days"]
    return {
        **check,
        "computed": dt.date.fromisoformat(check["computed"]) if check["computed"] else None,
        "sheet": dt.date.fromisoformat(check["sheet"]) if check["sheet"] else None,
        "days": abs(days) if days is not None else None,
        "later": days is not None and days > 0,
    }


def _display_row(row: dict) -> dict:
    return {
        **row,
        "due_by": _display_check(row["due_by"]),
        "alarm_on": _display_check(row["alarm_on"]),
        "empty_on": dt.date.fromisoformat(row["empty_on"]) if row["empty_on"] else None,
    }


@require_http_methods(["GET", "POST"])
@staff_required(PERMISSION)
@idempotent_form
def clinic_import_detail(request: HttpRequest, import_id: int) -> HttpResponse:
    checked = get_object_or_404(ClinicImport.objects.defer("content"), pk=import_id)
    if request.method == "POST":
        was_imported = checked.imported_at is not None
        try:
            checked = clinic_import_confirm(checked=checked, by=_admin(request))
        except SheetError as exc:
            messages.error(request, f"Nothing was imported: {exc}")
            return redirect("staff:clinic_import_detail", checked.pk)
        if was_imported:
            messages.info(request, "This file was already imported; nothing more was written.")
        elif checked.imported_at is not None:
            counts = checked.report["counts"]
            messages.success(
                request,
                f"Imported: {counts['created']} created, {counts['updated']} updated, "
                f"{counts['unchanged']} unchanged. The pumps are on the worklist.",
            )
        elif checked.report.get("rows"):
            messages.error(request, "Nothing was imported: some rows are now in error (see below).")
        else:
            messages.error(request, "Nothing was imported: the file has no rows.")
        return redirect("staff:clinic_import_detail", checked.pk)
    report = checked.report
    rows = [_display_row(row) for row in report.get("rows", [])]
    return render(
        request,
        "interop/detail.html",
        {
            "checked": checked,
            "report": report,
            "error_rows": [row for row in rows if row["errors"]],
            "rows": rows,
            "can_import": checked.imported_at is None and not any(row["errors"] for row in rows) and bool(rows),
        },
    )
