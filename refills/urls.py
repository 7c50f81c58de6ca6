"""Staff URLs of the care schedule; mounted under the "staff" namespace by itbclinic/staff_urls.py."""

from django.urls import path

from . import correction_views, field_safety_views, implant_views, patient_views, programme_views, views

urlpatterns = [
    path("", views.worklist, name="worklist"),
    path("calendar/", views.calendar, name="calendar"),
    path("calendar/book/", views.calendar_book, name="calendar_book"),
    path("alerts/<int:alert_id>/resolve/", views.alert_resolve, name="alert_resolve"),
    path("alerts/<int:alert_id>/acknowledge/", views.alert_acknowledge, name="alert_acknowledge"),
    path("patients/<int:patient_id>/", views.patient_detail, name="patient_detail"),
    path("patients/<int:patient_id>/contact/", patient_views.patient_contact_edit, name="patient_contact_edit"),
    path("patients/<int:patient_id>/status/", patient_views.patient_status_edit, name="patient_status_edit"),
    path("patients/<int:patient_id>/book/", views.appointment_book, name="appointment_book"),
    path("patients/<int:patient_id>/refill/", views.refill_visit_record, name="refill_visit_record"),
    path("patients/<int:patient_id>/refill/forecast/", views.refill_forecast, name="refill_forecast"),
    path("patients/<int:patient_id>/wallet-card/", views.wallet_card, name="wallet_card"),
    path("appointments/<int:appointment_id>/move/", views.appointment_move, name="appointment_move"),
    path("appointments/<int:appointment_id>/cancel/", views.appointment_cancel, name="appointment_cancel"),
    path("appointments/<int:appointment_id>/no-show/", views.appointment_no_show, name="appointment_no_show"),
    path("appointments/<int:appointment_id>/attended/", views.appointment_attended, name="appointment_attended"),
    path("change-requests/<int:request_id>/decline/", views.change_request_decline, name="change_request_decline"),
    path("visits/<int:visit_id>/", views.refill_visit_done, name="refill_visit_done"),
    path("visits/<int:visit_id>/record/", views.refill_visit_print, name="refill_visit_print"),
    path("implants/<int:implant_id>/dose/", views.dose_change, name="dose_change"),
    path("visits/<int:visit_id>/correct/", correction_views.refill_visit_correct, name="refill_visit_correct"),
    path("doses/<int:prescription_id>/correct/", correction_views.dose_correct, name="dose_correct"),
    path("implants/<int:implant_id>/correct/", correction_views.implant_correct, name="implant_correct"),
    path("implants/<int:implant_id>/eri/correct/", correction_views.implant_eri_correct, name="implant_eri_correct"),
    path("patients/<int:patient_id>/implant/new/", implant_views.implant_register, name="implant_register"),
    path("implants/<int:implant_id>/fill/", implant_views.implant_fill, name="implant_fill"),
    path("implants/<int:implant_id>/replace/", implant_views.implant_replace, name="implant_replace"),
    path("implants/<int:implant_id>/explant/", implant_views.implant_explant, name="implant_explant"),
    path("implants/<int:implant_id>/empty/", implant_views.reservoir_empty, name="reservoir_empty"),
    path("quality/", programme_views.quality_dashboard, name="quality_dashboard"),
    path("recall/", programme_views.recall_search, name="recall_search"),
    path("recall/export.csv", programme_views.recall_csv, name="recall_csv"),
    path("recall/flag/", field_safety_views.recall_flag, name="recall_flag"),
    path("field-safety/", field_safety_views.field_safety_list, name="field_safety_list"),
    path("field-safety/<int:notice_id>/", field_safety_views.field_safety_notice, name="field_safety_notice"),
    path("field-safety/<int:notice_id>/export.csv", field_safety_views.field_safety_csv, name="field_safety_csv"),
    path("field-safety/<int:notice_id>/send/", field_safety_views.field_safety_send, name="field_safety_send"),
    path(
        "field-safety/flags/<int:flag_id>/action/", field_safety_views.field_safety_action, name="field_safety_action"
    ),
    path("quality/<slug:table>.csv", programme_views.quality_csv, name="quality_csv"),
]
