"""
A logging filter that masks secrets carried in URLs before any handler writes them.

Django logs request paths (`django.server` for every request under runserver, `django.request`
for every 4xx/5xx), and some paths carry a secret: the calendar-feed token, the invitation and
password-reset tokens. SECURITY.md: logs never contain passwords, tokens or session ids.
"""

import logging
import re

# path prefix → the secret part that follows it
_SECRET_PATHS = [
    re.compile(r"(/portal/calendar/)[^/\s\"?]+"),
    re.compile(r"(/portal/welcome/[^/\s\"]+/)[^/\s\"?]+"),
    re.compile(r"(/accounts/reset/[^/\s\"]+/)[^/\s\"?]+"),
    re.compile(r"((?:sessionid|csrftoken)=)[^;\s\"]+"),
]
REDACTED = "[redacted]"


def redact(text: str) -> str:
    for pattern in _SECRET_PATHS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is left for the handler to report
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
