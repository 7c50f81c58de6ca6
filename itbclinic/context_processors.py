"""Template context of every page that is not about roles (those are in accounts/context_processors.py)."""

from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import SimpleLazyObject

from refills import watchdog

from .accounts.roles import is_staff_member

# The portal is another audience: a patient cannot act on a stopped scan, and must not be alarmed.
NO_BANNER_NAMESPACES = frozenset({"portal"})


def safety_net(request: HttpRequest) -> dict:
    """`safety_scan_overdue`: the scan's OverdueTask when staff must be told it has stopped, else None.

    Lazy, so only a page that shows the banner (base.html) runs its one indexed query. Not cached:
    a lookup by a unique name costs less than a cache round trip, it keeps a page's query count
    the same whatever ran before it, and the banner goes the moment the scan is back.
    """
    match = getattr(request, "resolver_match", None)
    if not is_staff_member(getattr(request, "user", None)) or (match and match.namespace in NO_BANNER_NAMESPACES):
        return {}
    return {
        "safety_scan_overdue": SimpleLazyObject(
            lambda: watchdog.scan_get_overdue(now=timezone.now(), watching_since=watchdog.PROCESS_STARTED_AT)
        )
    }
