"""An outbox consumer for the Celery e2e test; the worker imports it (FHIR_SERVER_CONSUMER_MODULES).

On topic ``e2e.echo`` it commits ``Basic/<event id>`` (echoing the payload's ``note``) together
with its ``Consumption``. The payload may ask it to append each call to a file (``calls_file``)
and to fail its first call (``fail_once_marker``: a file it creates before failing).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson

from fhir_server.outbox.consumers import consumer
from fhir_server.storage.protocol import Change, Consumption, OutboxEvent, Store

TOPIC = "e2e.echo"
NAME = "e2e-echo"


@consumer(NAME, topic=TOPIC)
async def echo(event: OutboxEvent, store: Store) -> None:
    request = orjson.loads(event.payload)
    if calls_file := request.get("calls_file"):
        with Path(calls_file).open("a") as calls:
            calls.write(event.id + "\n")
    marker = request.get("fail_once_marker")
    if marker and not Path(marker).exists():
        Path(marker).touch()
        raise RuntimeError("failing the first call on purpose")
    body = orjson.dumps({"resourceType": "Basic", "id": event.id, "meta": {"versionId": "1"},
                         "code": {"text": request["note"]}})
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    change = Change(resource_type="Basic", id=event.id, version=1, expected_version=0,
                    last_updated=now, method="POST", body=body)
    await store.commit([change], consumed=[Consumption(NAME, event.id)])
