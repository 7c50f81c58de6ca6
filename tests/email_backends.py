"""A deliberately slow mail server, for the timing test of the password reset (issue 15, item 6).

The one place a test sleeps: inside the fake backend, standing for an SMTP server that takes
its time. If an email were sent inside the request, the response would take at least this long.
"""

import time

from django.core.mail.backends import filebased, locmem

SLOW_SECONDS = 0.6


class SlowLocmemBackend(locmem.EmailBackend):
    def send_messages(self, messages):
        time.sleep(SLOW_SECONDS)
        return super().send_messages(messages)


class SlowFileBackend(filebased.EmailBackend):
    """For a worker process: the emails land in EMAIL_FILE_PATH, where the test reads them."""

    def send_messages(self, messages):
        time.sleep(SLOW_SECONDS)
        return super().send_messages(messages)
