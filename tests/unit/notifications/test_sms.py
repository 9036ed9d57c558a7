"""The SMS API client against the Twilio-compatible stand-in: what it posts, and how each kind
of answer (accepted, refused, unavailable, slow, unreachable) comes back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from fhir_server.crypto.keys import ConfigurationError
from fhir_server.notifications.sms import SmsAccount, SmsClient, SmsRefused, SmsUnavailable
from fhir_server.settings import Mode, Settings
from tests.support.server import free_port
from tests.support.sms_api import ACCOUNT_SID, AUTH_TOKEN, SENDER, SmsApi, running_sms_api

NUMBER = "+33600000001"


@pytest.fixture
def api() -> Iterator[SmsApi]:
    with running_sms_api() as running:
        yield running


def client_of(url: str, *, token: str = AUTH_TOKEN, timeout: float = 2.0) -> SmsClient:
    return SmsClient(SmsAccount(url=url, sid=ACCOUNT_SID, token=token, sender=SENDER),
                     timeout=timeout)


async def test_a_message_is_posted_as_twilio_expects(api: SmsApi) -> None:
    sid = await client_of(api.url).send(NUMBER, "Votre réponse est disponible.")
    (message,) = api.messages
    assert sid.startswith("SM") and len(sid) == 34
    assert message.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert message.form == {"To": NUMBER, "From": SENDER, "Body": "Votre réponse est disponible."}
    assert message.headers["content-type"] == "application/x-www-form-urlencoded"


async def test_a_wrong_token_is_a_refusal(api: SmsApi) -> None:
    with pytest.raises(SmsRefused) as refused:
        await client_of(api.url, token="wrong").send(NUMBER, "x")
    assert (refused.value.status, refused.value.code) == (401, "20003")
    assert api.messages == ()


async def test_a_4xx_is_a_refusal_for_good_without_the_number_in_it(api: SmsApi) -> None:
    api.answer(400)
    with pytest.raises(SmsRefused) as refused:
        await client_of(api.url).send(NUMBER, "x")
    assert (refused.value.status, refused.value.code) == (400, "21211")
    assert NUMBER not in str(refused.value)


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_a_5xx_or_too_many_requests_is_unavailable(api: SmsApi, status: int) -> None:
    api.answer(status)
    with pytest.raises(SmsUnavailable) as unavailable:
        await client_of(api.url).send(NUMBER, "x")
    assert unavailable.value.reason == f"HTTP {status}"
    assert await client_of(api.url).send(NUMBER, "x")
    assert len(api.messages) == 1


async def test_a_slow_api_times_out_as_unavailable(api: SmsApi) -> None:
    api.delay(1.0)
    with pytest.raises(SmsUnavailable) as unavailable:
        await client_of(api.url, timeout=0.2).send(NUMBER, "x")
    assert unavailable.value.reason == "timeout"


async def test_an_unreachable_api_is_unavailable() -> None:
    with pytest.raises(SmsUnavailable):
        await client_of(f"http://127.0.0.1:{free_port()}").send(NUMBER, "x")


def test_the_client_comes_from_the_settings(tmp_path: Path) -> None:
    assert SmsClient.from_settings(Settings(data_dir=tmp_path)) is None
    complete: dict[str, Any] = {"data_dir": tmp_path, "sms_url": "https://api.twilio.com",
                "sms_account_sid": ACCOUNT_SID, "sms_auth_token": SecretStr(AUTH_TOKEN),
                "sms_from": SENDER}
    assert isinstance(SmsClient.from_settings(Settings(**complete)), SmsClient)
    with pytest.raises(ConfigurationError):
        SmsClient.from_settings(Settings(**{**complete, "sms_auth_token": None}))
    with pytest.raises(ConfigurationError):
        SmsClient.from_settings(Settings(**{**complete, "sms_url": "http://sms.example",
                                            "mode": Mode.PRODUCTION}))


def test_the_token_is_not_in_the_account_repr() -> None:
    account = SmsAccount(url="https://api.twilio.com", sid=ACCOUNT_SID, token=AUTH_TOKEN,
                         sender=SENDER)
    assert AUTH_TOKEN not in repr(account)
    assert account.messages_url == (
        f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json")
