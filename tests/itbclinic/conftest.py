import pytest


@pytest.fixture
def log_in(password):
    """Log in through the real login view (django-axes needs the request); returns the response."""

    def _log_in(client, user, *, password=password, **extra):
        return client.post("/accounts/login/", {"username": user.username, "password": password}, **extra)

    return _log_in
