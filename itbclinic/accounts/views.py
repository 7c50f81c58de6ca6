"""Django's auth views with the clinic's addition: a password change ends the user's other
sessions, a password reset ends all of them."""

from django.contrib.auth import views as auth_views

from .services import user_sessions_end


class PasswordChangeView(auth_views.PasswordChangeView):
    def form_valid(self, form):
        # super() saves the password and cycles this session's key (update_session_auth_hash),
        # so the key read afterwards is the one to keep.
        response = super().form_valid(form)
        user_sessions_end(user=form.user, keep_session_key=self.request.session.session_key)
        return response


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    def form_valid(self, form):
        response = super().form_valid(form)
        user_sessions_end(user=form.user)
        return response
