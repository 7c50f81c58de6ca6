"""A booked appointment that was missed: the one no-show write.

The nurses' button, the API and the alert scan (which marks refills long past with no visit) all
call it. It lives apart from `services.py` so that the scan need not import the booking services:
those call the reminder hook, and reminder delivery raises alerts, so the arrow would turn back.
"""

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import transaction

from .models import Appointment


@transaction.atomic
def appointment_mark_no_show(*, appointment: Appointment, now: dt.datetime) -> Appointment:
    appointment = Appointment.objects.select_for_update().get(pk=appointment.pk)
    if appointment.status != Appointment.Status.BOOKED:
        raise ValidationError({"status": "Only a booked appointment can be a no-show."})
    if appointment.starts_at > now:
        raise ValidationError({"status": "This appointment has not happened yet."})
    appointment.status = Appointment.Status.NO_SHOW
    appointment.save(update_fields=["status", "updated_at"])
    return appointment
