"""The SMS API client: one message through a Twilio-compatible REST API.

``POST {sms_url}/2010-04-01/Accounts/{sid}/Messages.json`` with HTTP Basic ``sid:token`` and the
form fields ``To``, ``From``, ``Body``. A 2xx answer is a sent message (its ``sid`` returned). A
4xx answer is a refusal for good (``SmsRefused``: an invalid number, a blocked recipient…),
except 408 and 429 (too many requests), which mean "later". Any other answer, a timeout or a
connection error raises ``SmsUnavailable``, so that the outbox tries the event again.

Twilio documents no idempotency key for creating a Message (its ``I-Twilio-Idempotency-Token``
header is one Twilio sends on its own webhooks), so none is sent: the outbox's ``Consumption``
keeps an event from being sent twice, except when the process stops between the API's answer
and the commit of that record (at least once).

Neither the number nor the text is logged or put in an exception message: only statuses and the
API's numeric error code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote, urlsplit

import httpx

from fhir_server.crypto.keys import ConfigurationError
from fhir_server.settings import Mode, Settings

API_VERSION_PATH: Final = "/2010-04-01/Accounts/{sid}/Messages.json"
RETRY_LATER: Final = frozenset({408, 429})
"""4xx statuses that ask to try again later rather than refuse for good."""


class SmsRefused(Exception):
    """The SMS API refused the message for good: do not send it again."""

    def __init__(self, status: int, code: str | None) -> None:
        super().__init__(f"SMS refused: HTTP {status}" + (f", error {code}" if code else ""))
        self.status = status
        self.code = code


class SmsUnavailable(Exception):
    """The SMS API could not take the message now (5xx, 408/429, timeout, connection): retry."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"SMS API unavailable: {reason}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SmsAccount:
    """Where and as whom messages are sent."""

    url: str
    sid: str
    token: str = field(repr=False)
    sender: str

    @property
    def messages_url(self) -> str:
        return self.url.rstrip("/") + API_VERSION_PATH.format(sid=quote(self.sid, safe=""))


class SmsClient:
    """Sends SMS through the API of ``account``, each call within ``timeout`` seconds."""

    def __init__(self, account: SmsAccount, *, timeout: float) -> None:
        self._account = account
        self._timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> SmsClient | None:
        """The client of ``sms_url``; None when no SMS API is configured. Raises
        ConfigurationError when ``sms_url`` lacks its account SID, token or sender, or (in
        production) is not HTTPS."""
        if not settings.sms_url:
            return None
        token = settings.sms_auth_token.get_secret_value() if settings.sms_auth_token else ""
        if not (settings.sms_account_sid and token and settings.sms_from):
            raise ConfigurationError("FHIR_SERVER_SMS_URL needs FHIR_SERVER_SMS_ACCOUNT_SID, "
                                     "FHIR_SERVER_SMS_AUTH_TOKEN and FHIR_SERVER_SMS_FROM")
        scheme = urlsplit(settings.sms_url).scheme
        if scheme not in ("http", "https") or (
                settings.mode == Mode.PRODUCTION and scheme != "https"):
            raise ConfigurationError("FHIR_SERVER_SMS_URL must be an https:// URL")
        return cls(SmsAccount(url=settings.sms_url, sid=settings.sms_account_sid, token=token,
                              sender=settings.sms_from),
                   timeout=settings.notification_timeout_seconds)

    async def send(self, to: str, body: str) -> str:
        """Send ``body`` to ``to`` (E.164); the API's message sid ("" when it gives none).

        Raises ``SmsRefused`` (4xx but 408/429) or ``SmsUnavailable``.
        """
        account = self._account
        try:
            async with httpx.AsyncClient(timeout=self._timeout, follow_redirects=False) as http:
                response = await http.post(
                    account.messages_url, auth=(account.sid, account.token),
                    data={"To": to, "From": account.sender, "Body": body},
                    headers={"Accept": "application/json"})
        except httpx.TimeoutException:
            raise SmsUnavailable("timeout") from None
        except httpx.HTTPError as error:
            raise SmsUnavailable(type(error).__name__) from None
        status = response.status_code
        if 200 <= status < 300:
            return _field(response, "sid") or ""
        if 400 <= status < 500 and status not in RETRY_LATER:
            raise SmsRefused(status, _field(response, "code"))
        raise SmsUnavailable(f"HTTP {status}")


def _field(response: httpx.Response, name: str) -> str | None:
    """A scalar field of a JSON answer, as text (None when absent or not JSON)."""
    try:
        data = response.json()
    except ValueError:
        return None
    value = data.get(name) if isinstance(data, dict) else None
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None
