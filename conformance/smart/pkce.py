"""PKCE with the S256 method (RFC 7636 section 4): a random verifier and its challenge.

The challenge is ``BASE64URL(SHA256(verifier))`` without padding; SMART servers must accept only
this method, so the kit never offers ``plain`` except to check that it is refused.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass

METHOD = "S256"
VERIFIER_BYTES = 48
"""Random bytes behind a verifier: 64 base64url characters (RFC 7636 allows 43 to 128)."""


@dataclass(frozen=True, slots=True)
class Pkce:
    """A verifier the kit keeps and the challenge it sends with the authorization request."""

    verifier: str
    challenge: str
    method: str = METHOD


def s256_challenge(verifier: str) -> str:
    """The S256 challenge of ``verifier``."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_pkce() -> Pkce:
    """A fresh verifier (unreserved characters only) and its S256 challenge."""
    verifier = secrets.token_urlsafe(VERIFIER_BYTES)
    return Pkce(verifier=verifier, challenge=s256_challenge(verifier))
