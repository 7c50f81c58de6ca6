"""The invitation link's token: Django's password-reset generator with its own salt.

It hashes the user's password and last login, so it works once: setting the password changes
the hash. Its own salt means a password-reset token is not an invitation token, and back.
"""

from django.contrib.auth.tokens import PasswordResetTokenGenerator


class InvitationTokenGenerator(PasswordResetTokenGenerator):
    key_salt = "portal.tokens.InvitationTokenGenerator"


invitation_token_generator = InvitationTokenGenerator()
