"""iCalendar files for a patient's appointments (a single event or the private feed)."""

import datetime as dt
from collections.abc import Iterable
from zoneinfo import ZoneInfo

from django.conf import settings
from icalendar import Calendar, Event

from refills.models import Appointment, ClinicSettings

from .content import HOME_VISIT, appointment_where, what_to_bring, what_to_have_ready


def _event(
    *, appointment: Appointment, clinic: ClinicSettings, now: dt.datetime, zone: ZoneInfo, home_address: bool
) -> Event:
    start = appointment.starts_at.astimezone(zone)
    event = Event()
    # No name and no clinical detail: a calendar feed can be read by anyone who has its address.
    event.add("uid", f"appointment-{appointment.pk}@itbclinic")
    event.add("summary", f"{clinic.name}: {appointment.get_kind_display().lower()} appointment")
    event.add("dtstart", start)
    event.add("dtend", start + dt.timedelta(minutes=appointment.duration_minutes))
    event.add("dtstamp", now)
    event.add(
        "location",
        appointment_where(appointment=appointment, clinic_address=clinic.address, include_home_address=home_address),
    )
    change = f"To change this appointment, use the patient portal or phone {clinic.phone}."
    if appointment.is_home_visit:
        ready = "; ".join(what_to_have_ready(appointment=appointment))
        event.add("description", f"{HOME_VISIT} Have ready: {ready}.\n{change}")
    else:
        bring = "; ".join(what_to_bring(appointment=appointment))
        event.add("description", f"Bring: {bring}.\n{change}")
    event.add("status", "CONFIRMED")
    return event


def appointments_calendar(
    *,
    appointments: Iterable[Appointment],
    clinic: ClinicSettings,
    now: dt.datetime,
    name: str,
    home_address: bool = True,
) -> bytes:
    """`home_address`: a home visit's LOCATION is the patient's address. The no-login calendar
    feed passes False (its address is the only key: it says "Your home", never where that is)."""
    zone = ZoneInfo(settings.TIME_ZONE)
    cal = Calendar()
    cal.add("prodid", "-//ITB Clinic//Patient portal//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", name)
    cal.add("x-wr-timezone", settings.TIME_ZONE)
    for appointment in appointments:
        cal.add_component(_event(appointment=appointment, clinic=clinic, now=now, zone=zone, home_address=home_address))
    cal.add_missing_timezones()
    return cal.to_ical()
