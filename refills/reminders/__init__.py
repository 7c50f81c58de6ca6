"""Reminders to patients. The database is the record.

Level-triggered, set-based: `reminders_scan` and `alerts_scan` look at the whole clinic each time,
in a fixed number of queries whatever its size, and make the reminder and alert rows agree with
the schedule. Running them twice, or from two beats, changes nothing (unique keys, conditional
updates). Nothing is scheduled far ahead on the broker (SECURITY.md "Reminders never lost").

A reminder row, one per (appointment, appointment time, offset, channel):
    pending --dispatcher claims--> sending --send task--> sent
                                          \\--retries exhausted / refused--> failed (+ nurse alert)
    sending for longer than REMINDER_STUCK_AFTER_MINUTES --recovery--> pending
    pending --appointment moved/cancelled, consent withdrawn--> cancelled (obsolete; back if undone)
    pending --its time passed before it could help--> cancelled (stale)
A duplicate is better than a loss, and both are counted: every call to the email/SMS provider is
a `DeliveryAttempt` row committed before the call (a worker killed mid-send leaves it `started`),
so more than one attempt that may have gone is a duplicate; `recovered_count` counts near-losses.

Times: a reminder goes at `reminder_hour` clinic-local time, `offset_days` before the local date
of the appointment, whatever the daylight-saving offset of either day.

One module per job, imported by what it does (nothing is re-exported here):
    timing    when a reminder goes (send-time arithmetic)
    planning  which rows should exist: the scan and the per-appointment hook
    dispatch  claim due rows, enqueue the sends, recover stuck rows
    delivery  send one reminder, or fail it and alert the nurses
    reads     the reminder log and its figures
Alerts to nurses and clinicians are their own package, `refills.alerts`.
"""
