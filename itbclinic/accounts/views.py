"""Django's auth views with the clinic's additions: a password change ends the user's other
sessions, a password reset ends all of them; the reset email is sent by the worker, and an
inactive account's reset link opens nothing."""

from django.contrib.auth import views as auth_views
from django.http import HttpResponseRedirect

from .services import user_sessions_end
from .tasks import enqueue_password_reset


class PasswordResetView(auth_views.PasswordResetView):
    def form_valid(self, form):
        # The same work whatever the address: no lookup here, no email sent inside the request.
        enqueue_password_reset(email=form.cleaned_data["email"])
        return HttpResponseRedirect(self.get_success_url())


class PasswordChangeView(auth_views.PasswordChangeView):
    def form_valid(self, form):
        # super() saves the password and cycles this session's key (update_session_auth_hash),
        # so the key read afterwards is the one to keep.
        response = super().form_valid(form)
        user_sessions_end(user=form.user, keep_session_key=self.request.session.session_key)
        return response


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    def get_user(self, uidb64):
        user = super().get_user(uidb64)
        # A deactivated account's link is spent, like a used one.
        return user if user is not None and user.is_active else None

    def form_valid(self, form):
        response = super().form_valid(form)
        user_sessions_end(user=form.user)
        return response
