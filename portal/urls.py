from django.urls import path

from . import views

app_name = "portal"

urlpatterns = [
    path("", views.home, name="home"),
    path("p/<int:patient_id>/", views.patient_home, name="patient_home"),
    path("p/<int:patient_id>/appointments/<int:appointment_id>.ics", views.appointment_ics, name="appointment_ics"),
    path(
        "p/<int:patient_id>/appointments/<int:appointment_id>/change/",
        views.change_request,
        name="change_request",
    ),
    path(
        "p/<int:patient_id>/requests/<int:request_id>/withdraw/",
        views.change_request_withdraw,
        name="change_request_withdraw",
    ),
    path("p/<int:patient_id>/passport/", views.passport, name="passport"),
    path("p/<int:patient_id>/reminders/", views.reminder_preferences, name="reminder_preferences"),
    path("p/<int:patient_id>/calendar/", views.calendar_settings, name="calendar_settings"),
    path("calendar/<str:token>.ics", views.calendar_feed, name="calendar_feed"),
    path("invite/<int:patient_id>/", views.invite, name="invite"),
    path(
        "invite/<int:patient_id>/invitations/<int:invitation_id>/revoke/",
        views.invitation_revoke,
        name="invitation_revoke",
    ),
    path("invite/<int:patient_id>/carers/<int:link_id>/revoke/", views.carer_link_revoke, name="carer_link_revoke"),
    path("invite/<int:patient_id>/account-email/", views.account_email_change, name="account_email_change"),
    path("welcome/<str:token>/", views.invitation_accept, name="invitation_accept"),
]
