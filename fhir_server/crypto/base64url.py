"""Base64url without padding (RFC 4648 §5, RFC 7515 §2), as JOSE, PKCE and our opaque tokens
and cursors write it."""

from __future__ import annotations

import base64


def b64url_encode(data: bytes) -> str:
    """``data`` in base64url, without the ``=`` padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str | bytes) -> bytes:
    """The bytes of unpadded (or padded) base64url ``text``; ``binascii.Error`` (a ValueError)
    when it is not base64url, ``UnicodeEncodeError`` when it is not ASCII."""
    data = text.encode("ascii") if isinstance(text, str) else text
    return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))
