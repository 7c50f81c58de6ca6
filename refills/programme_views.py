"""The programme pages (issue 14): the quality dashboard, the recall search and their CSV downloads.

Views validate the period, call the selectors of `refills.quality` and render; the numbers behind
every chart are shown as a table and can be downloaded. Lists that name patients are shown to the
nurses and clinicians only (the clinic admin reads the clinic-wide figures) and every one shown
or exported is written to the access log, in one bulk insert.
"""

import datetime as dt
from collections.abc import Sequence

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from audit.models import AccessLog
from audit.services import audit_record_accesses
from core.csv_export import csv_response
from core.permissions import holds_permissions
from itbclinic.accounts.permissions import staff_required
from itbclinic.accounts.roles import Role, has_role
from patients.models import Patient
from patients.selectors import patient_list_visible_to

from . import quality, recall
from .clinic_time import clinic_tz
from .programme_forms import FieldSafetyFlagForm, QualityPeriodForm, RecallSearchForm, default_period
from .quality_charts import Bar, bar_chart_svg
from .recall import RecallCriteria

# The timeliness chart's short labels and colours, in the order of `quality.TIMELINESS`.
TIMELINESS_BARS = {
    "before_due": ("By due-by", "bar-ok"),
    "due_to_alarm": ("Due-by to alarm", "bar-warn"),
    "alarm_to_empty": ("Alarm to empty", "bar-danger"),
    "after_empty": ("After empty", "bar-danger"),
    "no_forecast": ("First refill", "bar-muted"),
}
# Per-patient tables: only the roles that read patients' records see or download them.
PATIENT_TABLES = frozenset({"review", "battery"})
CSV_TABLES = ("monthly", "timeliness", "no_shows", "reminders", "unbooked", "discrepancy", "review", "battery")


def form_errors_400(form) -> HttpResponse:
    """A download's bad input: 400 naming each field and its error (the page shows the form instead)."""
    return HttpResponse(
        "; ".join(f"{name}: {' '.join(str(e) for e in errors)}" for name, errors in form.errors.items()),
        status=400,
        content_type="text/plain; charset=utf-8",
    )


def _sees_patients(request: HttpRequest) -> bool:
    return has_role(request.user, Role.NURSE, Role.CLINICIAN)


def _period(request: HttpRequest, today: dt.date) -> tuple[QualityPeriodForm, tuple[dt.date, dt.date] | None]:
    start, end = default_period(today)
    if "start" not in request.GET and "end" not in request.GET:
        form = QualityPeriodForm(initial={"start": start, "end": end})
        return form, (start, end)
    form = QualityPeriodForm(request.GET)
    if not form.is_valid():
        return form, None
    return form, (form.cleaned_data["start"], form.cleaned_data["end"])


def _charts(board: quality.QualityDashboard) -> dict[str, str]:
    return {
        "monthly": bar_chart_svg(
            chart_id="chart-monthly",
            title="Refills done per month",
            bars=[quality_bar(f"{m.month:%b %y}", m.refills) for m in board.months],
        ),
        "timeliness": bar_chart_svg(
            chart_id="chart-timeliness",
            title="Refills against the forecast in force",
            bars=[
                Bar(label=TIMELINESS_BARS[s.key][0], value=s.count, tone=TIMELINESS_BARS[s.key][1])
                for s in board.timeliness
            ],
        ),
        "discrepancy": bar_chart_svg(
            chart_id="chart-discrepancy",
            title="Residual discrepancy (aspirated − expected), refills",
            bars=[quality_bar(label, n) for label, n in board.discrepancy_bins],
        ),
        "battery": bar_chart_svg(
            chart_id="chart-battery",
            title="Pumps reaching their battery window or replacement date, per month",
            bars=[quality_bar(f"{m.month:%b %y}", m.refills) for m in board.battery_months],
        ),
    }


def quality_bar(label: str, value: int) -> Bar:
    return Bar(label=label, value=value)


@staff_required("refills.view_reminder", "refills.view_alert")
@require_GET
def quality_dashboard(request: HttpRequest) -> HttpResponse:
    today = timezone.localdate()
    form, period = _period(request, today)
    context: dict[str, object] = {"form": form, "sees_patients": _sees_patients(request), "csv_tables": CSV_TABLES}
    if period is not None:
        visible = patient_list_visible_to(user=request.user)
        board = quality.quality_dashboard_get(start=period[0], end=period[1], today=today, visible=visible)
        context.update(board=board, charts=_charts(board), query=request.GET.urlencode())
        if _sees_patients(request):
            shown = [Patient(pk=row.patient_id) for row in board.review]
            shown += [Patient(pk=row.patient_id) for row in board.battery]
            audit_record_accesses(
                user=request.user,
                patients=shown,
                action=AccessLog.Action.VIEW,
                request=request,
                detail="quality dashboard",
            )
    # A bad period shows the form with its errors (and no figures).
    return render(request, "refills/programme/quality_dashboard.html", context)


def _table(board_period: tuple[dt.date, dt.date], table: str, request: HttpRequest, today: dt.date):
    start, end = board_period
    header: Sequence[str]
    rows: list[Sequence[object]]
    if table == "monthly":
        header = ("month", "refills")
        rows = [(f"{m.month:%Y-%m}", m.refills) for m in quality.quality_refills_per_month(start=start, end=end)]
    elif table == "timeliness":
        header = ("when", "refills", "percent_of_compared")
        rows = [
            (s.label, s.count, "" if s.percent is None else s.percent)
            for s in quality.quality_timeliness(start=start, end=end)
        ]
    elif table == "no_shows":
        completed, no_shows = quality.quality_no_shows(start=start, end=end)
        pct = quality.percent_of(no_shows, completed + no_shows)
        header = ("completed", "no_shows", "no_show_percent")
        rows = [(completed, no_shows, "" if pct is None else pct)]
    elif table == "reminders":
        header = ("channel", "sent", "failed")
        rows = [(r.channel, r.sent, r.failed) for r in quality.quality_reminders_per_channel(start=start, end=end)]
    elif table == "unbooked":
        u = quality.quality_unbooked_to_booking(start=start, end=end)
        header = ("unbooked_alerts", "followed_by_a_booking", "median_days_to_booking")
        rows = [(u.alerts, u.booked, "" if u.median_days is None else u.median_days)]
    elif table == "discrepancy":
        header = ("discrepancy_ml", "refills")
        rows = list(quality.quality_discrepancy_bins(start=start, end=end))
    elif table == "review":
        visible = patient_list_visible_to(user=request.user)
        review, _ = quality.quality_review_list(start=start, end=end, visible=visible, limit=None)
        header = (
            "mrn",
            "patient",
            "refills",
            "flagged_discrepancies",
            "mean_flagged_discrepancy_ml",
            "last_flagged_on",
        )
        rows = [(r.mrn, r.name, r.refills, r.flagged, r.mean_discrepancy_ml, r.last_flagged_on) for r in review]
        return header, rows, [r.patient_id for r in review]
    else:  # battery
        battery, _ = quality.quality_battery_list(today=today, limit=None)
        header = ("mrn", "patient", "pump", "serial", "battery_window_opens_on", "replace_by")
        rows = [(b.mrn, b.name, b.pump, b.serial, b.window_opens_on, b.replace_by) for b in battery]
        return header, rows, [b.patient_id for b in battery]
    return header, rows, []


@staff_required("refills.view_reminder", "refills.view_alert")
@require_GET
def quality_csv(request: HttpRequest, table: str) -> HttpResponse:
    if table not in CSV_TABLES:
        raise Http404("No such table.")
    if table in PATIENT_TABLES and not _sees_patients(request):
        raise PermissionDenied("Lists of patients are for the nurses and clinicians.")
    today = timezone.localdate()
    form, period = _period(request, today)
    if period is None:
        return form_errors_400(form)
    header, rows, patient_ids = _table(period, table, request, today)
    if patient_ids:
        audit_record_accesses(
            user=request.user,
            patients=[Patient(pk=pk) for pk in patient_ids],
            action=AccessLog.Action.EXPORT,
            request=request,
            detail=f"quality {table} CSV",
        )
    return csv_response(filename=f"quality-{table}-{period[0]:%Y%m%d}-{period[1]:%Y%m%d}.csv", header=header, rows=rows)


# ---------------------------------------------------------------------------
# Recall and field-safety search
# ---------------------------------------------------------------------------


def recall_criteria_of(form: RecallSearchForm) -> RecallCriteria:
    data = form.cleaned_data
    return RecallCriteria(
        pump_model=data.get("pump_model"),
        serial_from=data.get("serial_from", ""),
        serial_to=data.get("serial_to", ""),
        catheter_model=data.get("catheter_model", ""),
        implanted_from=data.get("implanted_from"),
        implanted_to=data.get("implanted_to"),
        drug=data.get("drug"),
        drug_lot=data.get("drug_lot", ""),
        kit_lot=data.get("kit_lot", ""),
        status=data.get("status", ""),
    )


def recall_search_context(request: HttpRequest, form: RecallSearchForm, flag_form=None) -> dict[str, object]:
    """The recall page's context (its results access-logged); the flag form for those who may flag."""
    context: dict[str, object] = {"form": form}
    if form.is_bound and form.is_valid():
        found = recall.recall_search(
            criteria=recall_criteria_of(form), visible=patient_list_visible_to(user=request.user), now=timezone.now()
        )
        results = list(found[: recall.PAGE_CAP])
        total = len(results) if len(results) < recall.PAGE_CAP else found.count()
        context.update(results=results, total=total, query=request.GET.urlencode(), cap=recall.PAGE_CAP)
        if holds_permissions(request.user, ["refills.add_fieldsafetynotice"]):
            context["flag_form"] = flag_form or FieldSafetyFlagForm()
        audit_record_accesses(
            user=request.user,
            patients=[implant.patient for implant in results],
            action=AccessLog.Action.VIEW,
            request=request,
            detail="recall search",
        )
    return context


@staff_required("refills.view_appointment", "pumps.view_implant")
@require_GET
def recall_search(request: HttpRequest) -> HttpResponse:
    form = RecallSearchForm(request.GET or None)
    return render(request, "refills/programme/recall_search.html", recall_search_context(request, form))


@staff_required("refills.view_appointment", "pumps.view_implant")
@require_GET
def recall_csv(request: HttpRequest) -> HttpResponse:
    form = RecallSearchForm(request.GET)
    if not form.is_valid():
        return form_errors_400(form)
    found = list(
        recall.recall_search(
            criteria=recall_criteria_of(form), visible=patient_list_visible_to(user=request.user), now=timezone.now()
        )
    )
    audit_record_accesses(
        user=request.user,
        patients=[implant.patient for implant in found],
        action=AccessLog.Action.EXPORT,
        request=request,
        detail="recall search CSV",
    )
    tz = clinic_tz()
    header = (
        "mrn", "patient", "pump_model", "serial", "catheter_model", "implanted_on", "explanted_on",
        "next_appointment", "next_appointment_kind",
    )  # fmt: skip
    rows = [
        (
            implant.patient.mrn,
            implant.patient.full_name,
            str(implant.pump_model),
            implant.serial_number,
            implant.catheter_model,
            implant.implanted_on,
            implant.explanted_on or "",
            f"{implant.next_appointment_at.astimezone(tz):%Y-%m-%d %H:%M}" if implant.next_appointment_at else "",
            implant.next_appointment_kind or "",
        )
        for implant in found
    ]
    return csv_response(filename=f"recall-{timezone.localdate():%Y%m%d}.csv", header=header, rows=rows)
