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
    path("p/<int:patient_id>/reminders/", views.reminder_preferences, name="reminder_preferences"),
    path("p/<int:patient_id>/calendar/", views.calendar_settings, name="calendar_settings"),
    path("calendar/<str:token>.ics", views.calendar_feed, name="calendar_feed"),
    path("invite/<int:patient_id>/", views.invite, name="invite"),
    path("welcome/<uidb64>/<token>/", views.InvitationAcceptView.as_view(), name="invitation_accept"),
]
