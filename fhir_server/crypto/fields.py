"""The field cipher: sensitive values of a resource sealed with AES-256-GCM, and blind indexes.

What is sealed is set by ``SensitivePolicy``: identifier values of the INS systems (NIR, NIA,
test and demo), every ContactPoint value (elements named ``telecom``), and attachment bytes
(``Attachment.data`` anywhere, ``Binary.data``). A sealed value is the string ``enc:v1:``
followed by the URL-safe base64 of ``nonce (12 bytes) || ciphertext || tag (16 bytes)``. Its
associated data is ``{resourceType}/{id}`` of the stored resource (resources nested in it, such
as contained ones, use the container's), so a value copied into another resource does not open.

Sealed values can only sit in the ``value`` or ``data`` string of an element. ``open`` opens
every such string that carries the prefix, whatever the policy, so narrowing the policy never
makes stored data unreadable. ``seal`` keeps a value it sealed before for the same resource
(sealing is idempotent) and refuses any other string with the prefix there: it is reserved, and a
ciphertext bound to another resource must not be stored where it would never open.

Equality search on a sealed identifier goes through ``blind_index``, a keyed HMAC of the
system and the value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fhir_server.crypto.keys import KeyMaterial
from fhir_server.crypto.random_pool import random_bytes
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.types import JsonBytes, ResourceDict

SEALED_PREFIX = "enc:v1:"
BLIND_INDEX_PREFIX = "hmac:"

INS_IDENTIFIER_SYSTEMS = frozenset({
    "urn:oid:1.2.250.1.213.1.4.8",   # INS-NIR
    "urn:oid:1.2.250.1.213.1.4.9",   # INS-NIA
    "urn:oid:1.2.250.1.213.1.4.10",  # INS-NIR test
    "urn:oid:1.2.250.1.213.1.4.11",  # INS-NIR demo
})

_SEALED_MARKER = b'"' + SEALED_PREFIX.encode("ascii")
_SEALED_STRING = re.compile(rb'"(enc:v1:[A-Za-z0-9_\-]+=*)"')
_NONCE_BYTES = 12
_URL_SAFE = bytes.maketrans(b"+/", b"-_")
"""Standard base64 to its URL-safe alphabet (``base64.urlsafe_b64encode`` without its wrappers)."""
_TAG_BYTES = 16
_SEALABLE_KEYS = frozenset({"value", "data"})
_SCALARS = frozenset({bool, int, float, type(None)})
"""JSON values that hold nothing to seal, told apart by their exact type."""
_CONTACT_POINT_ELEMENTS = frozenset({"telecom", "valueContactPoint"})
_ATTACHMENT_ELEMENTS = frozenset(
    prefix + name
    for name in ("id", "extension", "contentType", "language", "data", "url", "size", "hash",
                 "title", "creation")
    for prefix in ("", "_"))

_Transform: TypeAlias = Callable[[dict[str, Any], str, str, str], str]
"""(owner element, the owner's name, key, string value) -> the value to keep there."""


@dataclass(frozen=True)
class SensitivePolicy:
    """Which values are sealed at rest."""

    identifier_systems: frozenset[str] = INS_IDENTIFIER_SYSTEMS
    telecom: bool = True
    """Every ContactPoint value (elements named ``telecom`` at any depth)."""
    attachments: bool = True
    """``Attachment.data`` anywhere and ``Binary.data`` (``Binary.securityContext`` stays clear)."""


DEFAULT_POLICY = SensitivePolicy()


class SealedValueError(FhirError):
    """A stored sealed value did not authenticate: altered, moved, or sealed with another key."""

    def __init__(self, path: str) -> None:
        super().__init__(
            ErrorCode.INTERNAL,
            f"The stored value at {path} failed its integrity check (altered, moved from "
            f"another resource, or sealed with another key).",
            (path,))
        self.path = path


class ReservedValueError(FhirError):
    """A value to seal starts with the reserved prefix but is not sealed for this resource."""

    def __init__(self, path: str) -> None:
        super().__init__(
            ErrorCode.INVALID_RESOURCE,
            f"The value at {path} starts with {SEALED_PREFIX!r}, which is reserved for values "
            f"encrypted at rest.",
            (path,))
        self.path = path


class FieldCipher:
    """Seals and opens the sensitive values of resources; computes blind indexes."""

    def __init__(self, keys: KeyMaterial, policy: SensitivePolicy = DEFAULT_POLICY) -> None:
        self.policy = policy
        self._aead = AESGCM(keys.data_key)
        self._blind_mac = hmac.new(keys.blind_key, digestmod=hashlib.sha256)
        """Keyed once; each blind index copies it (the key schedule is not redone per value)."""

    def seal(self, resource: ResourceDict) -> ResourceDict:
        """A new resource whose sensitive values are sealed; the input is left unchanged.

        Elements without sensitive values are shared with the input, not copied. Raises
        ``ReservedValueError`` for a prefixed value that does not open for this resource, and
        ``ValueError`` if a value must be sealed and the resource has no ``resourceType``/``id``.
        """
        aad = _associated_data(resource)

        def seal_value(owner: dict[str, Any], element: str, key: str, value: str) -> str:
            if value.startswith(SEALED_PREFIX):
                if self._decrypt(value, aad) is None:
                    raise _Unopenable
                return value
            if self._selects(owner, element, key):
                return self._encrypt(value, aad)
            return value

        try:
            sealed = _rewrite_resource(resource, seal_value)
        except _Unopenable as failure:
            raise ReservedValueError(_root_name(resource) + failure.path()) from None
        return _fresh(resource, sealed)

    def open(self, resource: ResourceDict) -> ResourceDict:
        """A new resource with its sealed values opened; ``SealedValueError`` if one was altered."""
        return _fresh(resource, self._open_resource(resource))

    def open_json(self, body: JsonBytes) -> JsonBytes:
        """Stored JSON with its sealed values opened; ``body`` itself when it holds none."""
        if _SEALED_MARKER not in body:
            return body
        resource = orjson.loads(body)
        opened = self._open_resource(resource)
        return body if opened is resource else orjson.dumps(opened)

    def open_stored(self, body: JsonBytes, owner: str) -> JsonBytes:
        """Stored JSON of resource ``owner`` ("Type/id") with sealed values opened, without parsing.

        The read path's fast form of ``open_json``: each sealed JSON string is replaced in the
        bytes by the JSON string of its plaintext. ``body`` itself when it holds none.
        """
        if _SEALED_MARKER not in body:
            return body
        aad = owner.encode("utf-8")

        def opened(match: re.Match[bytes]) -> bytes:
            plaintext = self._decrypt(match.group(1).decode("ascii"), aad)
            if plaintext is None:
                raise SealedValueError(owner)
            return orjson.dumps(plaintext)

        return _SEALED_STRING.sub(opened, body)

    def blind_index(self, system: str, value: str) -> str:
        """The keyed HMAC stored and searched in place of a sensitive identifier's value."""
        mac = self._blind_mac.copy()
        mac.update(f"{system}|{value.strip()}".encode())
        return BLIND_INDEX_PREFIX + mac.hexdigest()

    def is_sensitive_identifier(self, system: str | None) -> bool:
        """Whether identifiers of ``system`` are sealed (and so indexed by blind index)."""
        return system is not None and system in self.policy.identifier_systems

    def _open_resource(self, resource: ResourceDict) -> ResourceDict:
        aad = _associated_data(resource)

        def open_value(owner: dict[str, Any], element: str, key: str, value: str) -> str:
            if not value.startswith(SEALED_PREFIX):
                return value
            plaintext = self._decrypt(value, aad)
            if plaintext is None:
                raise _Unopenable
            return plaintext

        try:
            return _rewrite_resource(resource, open_value)
        except _Unopenable as failure:
            raise SealedValueError(_root_name(resource) + failure.path()) from None

    def _selects(self, owner: dict[str, Any], element: str, key: str) -> bool:
        """Whether the policy seals ``owner[key]``, a string in an element named ``element``."""
        if key == "value":
            if self.policy.telecom and element in _CONTACT_POINT_ELEMENTS:
                return True
            return self.is_sensitive_identifier(owner.get("system"))
        if not self.policy.attachments:
            return False
        return owner.get("resourceType") == "Binary" or owner.keys() <= _ATTACHMENT_ELEMENTS

    def _encrypt(self, plaintext: str, aad: bytes | None) -> str:
        if aad is None:
            raise ValueError("a resource needs its resourceType and id before its sensitive "
                             "values can be sealed")
        nonce = random_bytes(_NONCE_BYTES)
        blob = nonce + self._aead.encrypt(nonce, plaintext.encode("utf-8"), aad)
        encoded = binascii.b2a_base64(blob, newline=False).translate(_URL_SAFE)
        return SEALED_PREFIX + encoded.decode("ascii")

    def _decrypt(self, sealed: str, aad: bytes | None) -> str | None:
        """The plaintext of a sealed value, or None if it does not authenticate under ``aad``."""
        if aad is None:
            return None
        try:
            blob = base64.urlsafe_b64decode(sealed[len(SEALED_PREFIX):])
        except (binascii.Error, ValueError):
            return None
        if len(blob) < _NONCE_BYTES + _TAG_BYTES:
            return None
        try:
            plaintext = self._aead.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], aad)
            return plaintext.decode("utf-8")
        except (InvalidTag, UnicodeDecodeError):
            return None


def sealed_paths(resource: ResourceDict) -> list[str]:
    """The paths (``Patient.telecom[0].value``) of the values in ``resource`` that look sealed."""
    found: list[str] = []
    _collect_sealed(resource, _root_name(resource), found)
    return found


def _collect_sealed(node: Any, path: str, found: list[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str):
                if key in _SEALABLE_KEYS and value.startswith(SEALED_PREFIX):
                    found.append(f"{path}.{key}")
            else:
                _collect_sealed(value, f"{path}.{key}", found)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            _collect_sealed(item, f"{path}[{index}]", found)


def _associated_data(resource: ResourceDict) -> bytes | None:
    resource_type, resource_id = resource.get("resourceType"), resource.get("id")
    if not isinstance(resource_type, str) or not isinstance(resource_id, str):
        return None
    return f"{resource_type}/{resource_id}".encode()


def _fresh(original: ResourceDict, rewritten: ResourceDict) -> ResourceDict:
    return dict(original) if rewritten is original else rewritten


def _root_name(resource: ResourceDict) -> str:
    root = resource.get("resourceType")
    return root if isinstance(root, str) else "Resource"


class _Unopenable(Exception):
    """Raised at a value that does not open; each enclosing level adds its step to the path."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[str] = []

    def path(self) -> str:
        return "".join(reversed(self.steps))


def _rewrite_resource(resource: ResourceDict, transform: _Transform) -> ResourceDict:
    name = _root_name(resource)
    return _rewrite_object(resource, name, transform)


def _rewrite_object(node: dict[str, Any], element: str,
                    transform: _Transform) -> dict[str, Any]:
    """``node`` with ``transform`` applied to its sealable strings, copied only if one changed.

    Values are told apart by their exact type first (what JSON gives), subclasses after.
    """
    updated: dict[str, Any] | None = None
    key = ""
    try:
        for key, value in node.items():
            new_value: Any
            kind = type(value)
            if kind is str:
                if key not in _SEALABLE_KEYS:
                    continue
                new_value = transform(node, element, key, value)
            elif kind is dict:
                new_value = _rewrite_object(value, key, transform)
            elif kind is list:
                for item in value:
                    if type(item) is not str:
                        break
                else:  # only strings (``given``, ``line``): nothing to seal in them
                    continue
                new_value = _rewrite_array(value, key, transform)
            elif kind in _SCALARS:
                continue
            elif isinstance(value, str):
                if key not in _SEALABLE_KEYS:
                    continue
                new_value = transform(node, element, key, value)
            elif isinstance(value, dict):
                new_value = _rewrite_object(value, key, transform)
            elif isinstance(value, list):
                new_value = _rewrite_array(value, key, transform)
            else:
                continue
            if new_value is not value:
                if updated is None:
                    updated = dict(node)
                updated[key] = new_value
    except _Unopenable as failure:
        failure.steps.append(f".{key}")
        raise
    return node if updated is None else updated


def _rewrite_array(items: list[Any], element: str, transform: _Transform) -> list[Any]:
    updated: list[Any] | None = None
    index = 0
    try:
        for index, item in enumerate(items):
            new_item: Any
            kind = type(item)
            if kind is dict:
                new_item = _rewrite_object(item, element, transform)
            elif kind is list:
                new_item = _rewrite_array(item, element, transform)
            elif kind is str or kind in _SCALARS:
                continue
            elif isinstance(item, dict):
                new_item = _rewrite_object(item, element, transform)
            elif isinstance(item, list):
                new_item = _rewrite_array(item, element, transform)
            else:
                continue
            if new_item is not item:
                if updated is None:
                    updated = list(items)
                updated[index] = new_item
    except _Unopenable as failure:
        failure.steps.append(f"[{index}]")
        raise
    return items if updated is None else updated
