"""MTOM/XOP packaging (``multipart/related; type="application/xop+xml"``): the SOAP envelope as
the root part, each document a binary part named by its Content-ID; and the reading of an
answer's SOAP part, whether the answer is MTOM or plain ``application/soap+xml``."""

from __future__ import annotations

import email.policy
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.parser import BytesParser
from typing import Final
from urllib.parse import quote

ROOT_CONTENT_ID: Final = "root.message@pictaderm"
_CRLF: Final = b"\r\n"


@dataclass(frozen=True, slots=True)
class MimePart:
    """One attachment: its Content-ID (without angle brackets), media type and bytes."""

    content_id: str
    content_type: str
    content: bytes


@dataclass(frozen=True, slots=True)
class MtomMessage:
    """An HTTP body and the Content-Type header that goes with it."""

    content_type: str
    body: bytes


class UnreadableMessage(ValueError):
    """An answer whose SOAP part cannot be found (the message says why, without content)."""


def cid_url(content_id: str) -> str:
    """The ``cid:`` URL of a Content-ID (RFC 2392), as ``xop:Include/@href`` writes it."""
    return "cid:" + quote(content_id, safe="@.-_~!$'()*+,;=:")


def mtom_message(envelope: bytes, attachments: Sequence[MimePart], *, action: str,
                 boundary: str | None = None) -> MtomMessage:
    """The MTOM message: ``envelope`` (SOAP 1.2, UTF-8) then each attachment, sent binary."""
    parts = [(ROOT_CONTENT_ID, 'application/xop+xml; charset=UTF-8; type="application/soap+xml"',
              envelope)]
    parts += [(part.content_id, part.content_type, part.content) for part in attachments]
    boundary = boundary or _boundary(parts)
    delimiter = b"--" + boundary.encode("ascii")
    body = bytearray()
    for content_id, content_type, content in parts:
        body += delimiter + _CRLF
        body += f"Content-Type: {content_type}".encode("ascii") + _CRLF
        body += b"Content-Transfer-Encoding: binary" + _CRLF
        body += f"Content-ID: <{content_id}>".encode("ascii") + _CRLF + _CRLF
        body += content + _CRLF
    body += delimiter + b"--" + _CRLF
    content_type = (f'multipart/related; boundary="{boundary}"; type="application/xop+xml"; '
                    f'start="<{ROOT_CONTENT_ID}>"; start-info="application/soap+xml"; '
                    f'action="{action}"')
    return MtomMessage(content_type=content_type, body=bytes(body))


def soap_part(content_type: str, body: bytes) -> bytes:
    """The SOAP envelope of an answer: the body itself, or the root part of a multipart one
    (the part named by ``start``, else the first)."""
    if not content_type.lower().lstrip().startswith("multipart/"):
        return body
    header = EmailMessage()
    header["Content-Type"] = content_type
    if header.get_param("boundary") is None:
        raise UnreadableMessage("a multipart answer without a boundary")
    message = BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace") + body)
    parts = [part for part in message.iter_parts() if isinstance(part, Message)] \
        if message.is_multipart() else []
    if not parts:
        raise UnreadableMessage("a multipart answer without parts")
    start = str(header.get_param("start") or "").strip("<>")
    root = next((part for part in parts
                 if str(part.get("Content-ID", "")).strip().strip("<>") == start), parts[0])
    payload = root.get_payload(decode=True)
    if not isinstance(payload, bytes):
        raise UnreadableMessage("the root part of a multipart answer is empty")
    return payload


def _boundary(parts: Sequence[tuple[str, str, bytes]]) -> str:
    """A random boundary that occurs in none of the parts."""
    while True:
        boundary = f"MIMEBoundary_{uuid.uuid4().hex}"
        if not any(boundary.encode("ascii") in content for _, _, content in parts):
            return boundary
