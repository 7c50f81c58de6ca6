import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _empty_cache():
    # Login throttles may count in the cache: every test starts from zero.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def log_in(password):
    """Log in through the real login view (django-axes needs the request); returns the response."""

    def _log_in(client, user, *, password=password, **extra):
        return client.post("/accounts/login/", {"username": user.username, "password": password}, **extra)

    return _log_in
