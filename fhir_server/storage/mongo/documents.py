"""The MongoDB document layout: what the adapter writes for a change, an event or a consumption.

``resources`` holds one document per current resource (``_id`` "Type/id") with its search values
embedded as the ``idx`` array, one small sub-document per index entry, so the resource and its
index can never drift apart. ``history`` holds every version (``_id`` "Type/id/version") with the
period it was current: ``valid_from`` its own ``last_updated``, ``valid_to`` the next version's
(None while current). ``outbox`` holds events, ``consumed`` one document per consumption.
"""

from __future__ import annotations

from typing import Any, Final, TypeAlias, assert_never, cast

from bson import Binary

from fhir_server.storage.index import (
    CompositeEntry,
    DateEntry,
    IndexEntry,
    NumberEntry,
    QuantityEntry,
    ReferenceEntry,
    StringEntry,
    TokenEntry,
    UriEntry,
)
from fhir_server.storage.protocol import (
    Change,
    Consumption,
    Method,
    OutboxEvent,
    OutboxRecord,
    StoredVersion,
)

Document: TypeAlias = dict[str, Any]

RESOURCES: Final = "resources"
HISTORY: Final = "history"
OUTBOX: Final = "outbox"
CONSUMED: Final = "consumed"

# The ``k`` (kind) of each ``idx`` entry; the search compiler matches on it.
TOKEN: Final = "token"
STRING: Final = "string"
DATE: Final = "date"
NUMBER: Final = "number"
QUANTITY: Final = "quantity"
REFERENCE: Final = "reference"
URI: Final = "uri"
COMPOSITE: Final = "composite"


def resource_key(resource_type: str, id: str) -> str:
    return f"{resource_type}/{id}"


def version_key(resource_type: str, id: str, version: int) -> str:
    return f"{resource_type}/{id}/{version}"


def resource_document(change: Change) -> Document:
    """The ``resources`` document for the version a change writes, ``idx`` included."""
    return {
        "_id": resource_key(change.resource_type, change.id),
        **_version_fields(change),
        "idx": [index_entry_document(entry) for entry in change.index],
    }


def history_document(change: Change) -> Document:
    """The ``history`` document for the version a change writes, current from its last_updated."""
    return {
        "_id": version_key(change.resource_type, change.id, change.version),
        **_version_fields(change),
        "valid_from": change.last_updated,
        "valid_to": None,
    }


def _version_fields(change: Change) -> Document:
    return {
        "type": change.resource_type,
        "id": change.id,
        "version": change.version,
        "last_updated": change.last_updated,
        "method": change.method,
        "body": None if change.body is None else Binary(change.body),
    }


def index_entry_document(entry: IndexEntry) -> Document:
    """The compact ``idx`` sub-document of one index entry; absent values are left out."""
    match entry:
        case TokenEntry(param, system, code, text):
            fields: Document = {"k": TOKEN, "s": system or None, "c": code, "x": text}
        case StringEntry(param, normalized, exact):
            fields = {"k": STRING, "n": normalized, "e": exact}
        case DateEntry(param, low, high):
            fields = {"k": DATE, "lo": low, "hi": high}
        case NumberEntry(param, low, high):
            fields = {"k": NUMBER, "lo": low, "hi": high}
        case QuantityEntry(param, system, code, low, high):
            fields = {"k": QUANTITY, "s": system or None, "c": code, "lo": low, "hi": high}
        case ReferenceEntry(param, target_type, target_id, url):
            fields = {"k": REFERENCE, "t": target_type, "i": target_id, "u": url}
        case UriEntry(param, value):
            fields = {"k": URI, "v": value}
        case CompositeEntry():
            param, fields = entry.param, _composite_fields(entry)
        case _:
            assert_never(entry)
    return {"p": param, **{key: value for key, value in fields.items() if value is not None}}


def _composite_fields(entry: CompositeEntry) -> Document:
    """A composite entry: its first token as ``s``/``c`` (so the token index serves it), its
    second value under the names its kind has elsewhere (``lo``/``hi``, ``n``/``e``, ``t``/``i``
    /``u``), a second token or quantity unit as ``s2``/``c2``."""
    return {"k": COMPOSITE, "s": entry.system or None, "c": entry.code,
            "s2": entry.value_system or None, "c2": entry.value_code,
            "lo": entry.low, "hi": entry.high, "n": entry.normalized, "e": entry.exact,
            "t": entry.target_type, "i": entry.target_id, "u": entry.url}


def stored_version(document: Document) -> StoredVersion:
    """A ``resources`` or ``history`` document read back."""
    body = document["body"]
    return StoredVersion(
        resource_type=document["type"],
        id=document["id"],
        version=document["version"],
        last_updated=document["last_updated"],
        method=cast(Method, document["method"]),
        body=None if body is None else bytes(body),
    )


def outbox_document(event: OutboxEvent) -> Document:
    return {"_id": event.id, "topic": event.topic, "payload": Binary(event.payload),
            "created": event.created, "attempts": 0, "delivered": False}


def outbox_record(document: Document) -> OutboxRecord:
    event = OutboxEvent(id=document["_id"], topic=document["topic"],
                        payload=bytes(document["payload"]), created=document["created"])
    return OutboxRecord(event=event, attempts=document["attempts"])


def consumption_document(consumption: Consumption) -> Document:
    return {"_id": f"{consumption.consumer}|{consumption.event_id}",
            "consumer": consumption.consumer, "event_id": consumption.event_id}
