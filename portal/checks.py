"""Deploy checks of the login limits (portal/throttling.py): `manage.py check --deploy`."""

from django.conf import settings
from django.core.checks import Tags, Warning, register

# Caches that keep their counts inside one process (or nowhere): each gunicorn worker would
# count login attempts on its own, multiplying every limit by the number of workers.
PER_PROCESS_CACHES = frozenset(
    {
        "django.core.cache.backends.locmem.LocMemCache",
        "django.core.cache.backends.dummy.DummyCache",
    }
)


@register(Tags.security, Tags.caches, deploy=True)
def check_limits_count_in_a_shared_cache(app_configs, **kwargs):
    backend = settings.CACHES.get("default", {}).get("BACKEND", "")
    if backend not in PER_PROCESS_CACHES:
        return []
    return [
        Warning(
            f"The default cache ({backend}) is not shared between processes: every web worker counts "
            "login, password-reset and API limits on its own.",
            hint="Set CACHE_URL to a shared cache, e.g. redis://redis:6379/1 (see docker-compose.yml).",
            id="portal.W001",
        )
    ]
