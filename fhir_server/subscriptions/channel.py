"""What a Subscription asks for, checked: its criteria (a Task search), and its rest-hook
channel — endpoint, payload and headers (https://hl7.org/fhir/R4/subscription.html).

These checks need nothing but the resource; whether the criteria's parameters are known and
whether the subscriber may search Tasks at all is checked by running the search
(``rules.py``). A refusal is a 422 ``FhirError`` naming the element to fix.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from fhir_server.errors import ErrorCode, FhirError
from fhir_server.search.parser import RESULT_PARAMETERS
from fhir_server.types import ResourceDict

SUBSCRIPTION: Final = "Subscription"
CRITERIA_TYPE: Final = "Task"
REST_HOOK: Final = "rest-hook"
FHIR_JSON: Final = "application/fhir+json"
SERVER_HEADERS: Final = frozenset({"host", "content-length", "content-type",
                                   "transfer-encoding", "connection"})
"""Headers the server sets itself on a notification; a channel may not name them."""
_HEADER_NAME_RE: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_VALUE_RE: Final = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*")


@dataclass(frozen=True, slots=True)
class RestHook:
    """A Subscription's checked channel and criteria.

    ``criteria``: the search parameters after ``Task?``; ``full_payload``: the notification
    carries the Task (``application/fhir+json``) rather than an empty body; ``headers``: the
    channel's ``Name: value`` headers, split."""

    criteria: tuple[tuple[str, str], ...]
    endpoint: str
    full_payload: bool
    headers: tuple[tuple[str, str], ...]


def refusal(element: str, message: str) -> FhirError:
    """The 422 answer for a Subscription whose ``element`` must be fixed."""
    return FhirError(ErrorCode.BUSINESS_RULE, f"{element}: {message}", expression=(element,))


def read_rest_hook(subscription: ResourceDict, *, https_only: bool) -> RestHook:
    """The Subscription's criteria and rest-hook channel, or a 422 ``FhirError`` saying what
    to fix. ``https_only``: production, where notifications leave only over TLS and never for
    the server's own network."""
    channel = subscription.get("channel")
    if not isinstance(channel, dict) or channel.get("type") != REST_HOOK:
        raise refusal("Subscription.channel.type",
                      f"this server delivers notifications by '{REST_HOOK}' only")
    return RestHook(criteria=criteria_parameters(subscription.get("criteria")),
                    endpoint=checked_endpoint(channel.get("endpoint"), https_only=https_only),
                    full_payload=wants_full_payload(channel.get("payload")),
                    headers=checked_headers(channel.get("header")))


def criteria_parameters(criteria: object) -> tuple[tuple[str, str], ...]:
    """The search parameters of ``Task?name=value&…`` (``Task`` alone: every Task)."""
    if not isinstance(criteria, str) or not criteria.strip():
        raise refusal("Subscription.criteria", "a Task search is required, such as "
                                               "'Task?status=requested'")
    resource_type, _, query = criteria.strip().partition("?")
    if resource_type != CRITERIA_TYPE:
        raise refusal("Subscription.criteria", f"subscriptions are offered on {CRITERIA_TYPE} "
                                               f"only: the criteria must start with "
                                               f"'{CRITERIA_TYPE}?'")
    params = tuple(parse_qsl(query, keep_blank_values=True))
    shaping = sorted({name for name, _ in params if name.partition(":")[0] in RESULT_PARAMETERS})
    if shaping:
        raise refusal("Subscription.criteria",
                      "the criteria select Tasks; parameters that shape a result are not "
                      "allowed: " + ", ".join(shaping))
    return params


def checked_endpoint(endpoint: object, *, https_only: bool) -> str:
    """An absolute http(s) URL without credentials or fragment (https only, and not the
    server's own network, when ``https_only``)."""
    element = "Subscription.channel.endpoint"
    if not isinstance(endpoint, str) or not endpoint:
        raise refusal(element, "a rest-hook needs the absolute URL to notify")
    parts = urlsplit(endpoint)
    schemes = ("https",) if https_only else ("http", "https")
    if parts.scheme not in schemes or not parts.hostname:
        raise refusal(element, "the endpoint must be an absolute "
                               + " or ".join(f"{s}://" for s in schemes) + " URL")
    if "@" in parts.netloc or parts.fragment:
        raise refusal(element, "the endpoint may not carry credentials or a fragment: send "
                               "credentials in channel.header")
    if https_only and _is_internal(parts.hostname):
        raise refusal(element, "the endpoint may not be an address of the server's own or a "
                               "private network")
    return endpoint


def _is_internal(host: str) -> bool:
    """Whether ``host`` names this machine or a private, link-local or reserved address."""
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return (address.is_private or address.is_loopback or address.is_link_local
            or address.is_reserved or address.is_multicast or address.is_unspecified)


def wants_full_payload(payload: object) -> bool:
    """No payload: an empty notification; ``application/fhir+json``: the Task itself."""
    if payload in (None, ""):
        return False
    if payload == FHIR_JSON:
        return True
    raise refusal("Subscription.channel.payload",
                  f"leave the payload out (an empty notification) or ask for '{FHIR_JSON}'")


def checked_headers(headers: object) -> tuple[tuple[str, str], ...]:
    """The channel's headers as (name, value) pairs, each ``Name: value``."""
    if headers is None:
        return ()
    if not isinstance(headers, list):
        raise refusal("Subscription.channel.header", "a list of 'Name: value' strings")
    return tuple(_header(item) for item in headers)


def _header(item: Any) -> tuple[str, str]:
    element = "Subscription.channel.header"
    name, colon, value = item.partition(":") if isinstance(item, str) else ("", "", "")
    name, value = name.strip(), value.strip()
    if not colon or not _HEADER_NAME_RE.fullmatch(name) \
            or not _HEADER_VALUE_RE.fullmatch(value):
        raise refusal(element, "each header is 'Name: value', a token name and a value on one "
                               "line")
    if name.lower() in SERVER_HEADERS:
        raise refusal(element, f"the server sets '{name}' itself")
    return name, value
