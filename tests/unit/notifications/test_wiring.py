"""The notification consumers as a Celery worker builds them: every topic they read is one the
worker asks for, and the SMS sender comes only with an SMS API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from fhir_server.notifications.wiring import NOTIFICATION_TOPICS
from fhir_server.runtime import worker_consumers
from fhir_server.settings import Settings
from fhir_server.storage.sqlite import SqliteStore
from tests.support.sms_api import ACCOUNT_SID, AUTH_TOKEN, SENDER

NAMES = {"notify-case-transition", "notify-report-filed", "notify-dmp-export"}


@pytest.mark.parametrize("texting", [False, True])
async def test_a_worker_builds_the_notification_consumers(tmp_path: Path, texting: bool) -> None:
    sms: dict[str, Any] = ({"sms_url": "https://sms.example", "sms_account_sid": ACCOUNT_SID,
            "sms_auth_token": SecretStr(AUTH_TOKEN), "sms_from": SENDER} if texting else {})
    settings = Settings(data_dir=tmp_path / "data", store=f"sqlite:///{tmp_path / 'f.sqlite3'}",
                        **sms)
    bound = worker_consumers(settings)
    assert bound.topics >= NOTIFICATION_TOPICS
    store = SqliteStore(tmp_path / "f.sqlite3")
    await store.start()
    try:
        consumers = await bound.build(store)
    finally:
        await store.close()
    names = {consumer.name for consumer in consumers if consumer.name.startswith("notify-")}
    assert names == NAMES | ({"notify-patient-sms"} if texting else set())
    assert {c.topic for c in consumers if c.name in names} <= bound.topics
