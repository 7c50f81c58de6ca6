"""SMS backends (see refills/messaging.py): console, in-memory, and Twilio through its SDK."""

import sys
import threading
from collections.abc import Sequence

import requests
from django.conf import settings
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

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
    """Sends through Twilio's Python SDK (`twilio`): POST {SMS_PROVIDER_URL}/2010-04-01/Accounts/{sid}/Messages.json.

    The SDK's error statuses map onto the interface: 429 and 5xx answers, timeouts and network
    errors are transient (retried by the caller); other 4xx answers are permanent. The URL must
    be https (the token travels with it). `http_client` is the SDK's: tests pass a stub; by
    default `TwilioHttpClient` with `SMS_PROVIDER_TIMEOUT`.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        account_sid: str | None = None,
        auth_token: str | None = None,
        timeout: float | None = None,
        http_client: HttpClient | None = None,
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
        self.client = Client(
            self.account_sid,
            self.auth_token,
            http_client=http_client or TwilioHttpClient(timeout=self.timeout),
        )
        # The SDK has no base-URL option: its API domain's `base_url` is where requests go
        # (api.twilio.com by default; a test double or a regional endpoint otherwise).
        self.client.api.base_url = self.base_url

    def _send(self, message: SmsMessage) -> None:
        try:
            sent = self.client.api.v2010.accounts(self.account_sid).messages.create(
                to=message.to, from_=message.from_number, body=message.body
            )
        except (TwilioRestException, TwilioServiceException) as exc:
            if exc.status == 429 or exc.status >= 500:
                raise SmsTransientError(f"SMS provider answered {exc.status}: {_detail(exc)}") from exc
            raise SmsPermanentError(f"SMS provider refused the message ({exc.status}): {_detail(exc)}") from exc
        except (requests.RequestException, TimeoutError, ConnectionError) as exc:
            raise SmsTransientError(f"SMS provider unreachable: {exc}") from exc
        if sent.sid:
            message.provider_ids.append(str(sent.sid))

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


def _detail(exc: TwilioRestException | TwilioServiceException) -> str:
    """The provider's own words (its error code and message), short, without the SDK's terminal colours."""
    if isinstance(exc, TwilioServiceException):
        text = f"{exc.code} {exc.title}: {exc.detail or ''}"
    else:
        text = f"{exc.code} {exc.msg}" if exc.code else exc.msg
    return text[:300]
