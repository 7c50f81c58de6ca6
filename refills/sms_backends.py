"""SMS backends (see refills/messaging.py): console, in-memory, and a Twilio-shaped REST adapter."""

import base64
import json
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence

from django.conf import settings

from . import messaging
from .messaging import SmsMessage, SmsPermanentError, SmsTransientError


class BaseSmsBackend:
    def __init__(self, *, fail_silently: bool = False, **kwargs) -> None:
        self.fail_silently = fail_silently

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send_messages(self, messages: Sequence[SmsMessage]) -> int:
        raise NotImplementedError


class ConsoleBackend(BaseSmsBackend):
    def __init__(self, *, stream=None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.stream = stream or sys.stdout
        self._lock = threading.RLock()

    def send_messages(self, messages: Sequence[SmsMessage]) -> int:
        with self._lock:
            for message in messages:
                sender = message.from_number or "-"
                self.stream.write(f"SMS from {sender} to {message.to}\n{message.body}\n{'-' * 60}\n")
            self.stream.flush()
        return len(messages)


class LocmemBackend(BaseSmsBackend):
    """Keeps messages in `refills.messaging.outbox`."""

    def send_messages(self, messages: Sequence[SmsMessage]) -> int:
        messaging.outbox.extend(messages)
        return len(messages)


class TwilioBackend(BaseSmsBackend):
    """POST {SMS_PROVIDER_URL}/2010-04-01/Accounts/{sid}/Messages.json (form: To, From, Body), basic auth.

    429 and 5xx answers, timeouts and network errors are transient (retried by the caller);
    other 4xx answers are permanent. The URL must be https (the token travels with it).
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        account_sid: str | None = None,
        auth_token: str | None = None,
        timeout: float | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.base_url = (base_url or settings.SMS_PROVIDER_URL).rstrip("/")
        self.account_sid = account_sid or settings.SMS_PROVIDER_ACCOUNT_SID
        self.auth_token = auth_token or settings.SMS_PROVIDER_AUTH_TOKEN
        self.timeout = timeout or settings.SMS_PROVIDER_TIMEOUT
        if not self.base_url.startswith("https://"):
            raise ValueError("SMS_PROVIDER_URL must be an https:// URL.")
        if not (self.account_sid and self.auth_token):
            raise ValueError("SMS_PROVIDER_ACCOUNT_SID and SMS_PROVIDER_AUTH_TOKEN must be set.")

    def _request(self, message: SmsMessage) -> urllib.request.Request:
        url = f"{self.base_url}/2010-04-01/Accounts/{urllib.parse.quote(self.account_sid)}/Messages.json"
        data = urllib.parse.urlencode({"To": message.to, "From": message.from_number, "Body": message.body}).encode()
        credentials = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return urllib.request.Request(  # noqa: S310 (https only, checked in __init__)
            url,
            data=data,
            method="POST",
            headers={
                "Authorization": f"Basic {credentials}",
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
        )

    def _send(self, message: SmsMessage) -> None:
        request = self._request(message)
        try:
            # The scheme is checked in __init__ (https only), hence the noqa.
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                payload = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode("utf-8", "replace")
            if exc.code == 429 or exc.code >= 500:
                raise SmsTransientError(f"SMS provider answered {exc.code}: {detail}") from exc
            raise SmsPermanentError(f"SMS provider refused the message ({exc.code}): {detail}") from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise SmsTransientError(f"SMS provider unreachable: {exc}") from exc
        if payload.get("sid"):
            message.provider_ids.append(str(payload["sid"]))

    def send_messages(self, messages: Sequence[SmsMessage]) -> int:
        sent = 0
        for message in messages:
            try:
                self._send(message)
            except Exception:
                if not self.fail_silently:
                    raise
                continue
            sent += 1
        return sent
