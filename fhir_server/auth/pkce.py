"""PKCE (RFC 7636) as SMART requires it: the S256 method only, for every client.

At the authorization request the app sends ``code_challenge`` = BASE64URL(SHA256(verifier))
with ``code_challenge_method=S256``; at the code exchange it sends the ``code_verifier``.
``plain`` is refused (SMART App Launch 2.2: servers SHALL NOT support it). A verifier is 43 to
128 characters of ``[A-Za-z0-9-._~]`` (RFC 7636 section 4.1). A verifier that is missing, blank,
malformed, wrong, or equal to the challenge itself (which is what a client confused into
``plain`` would send) is ``invalid_grant`` (RFC 7636 section 4.6).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Final

from fhir_server.auth.token_endpoint import OAuthError
from fhir_server.crypto.base64url import b64url_encode

S256: Final = "S256"
VERIFIER_RE: Final = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
CHALLENGE_RE: Final = re.compile(r"[A-Za-z0-9\-_]{43}")
"""An S256 challenge: the unpadded base64url of 32 bytes."""


class InvalidChallenge(ValueError):
    """The authorization request's PKCE parameters are unusable; the message says why."""


def s256_challenge(verifier: str) -> str:
    """The S256 code challenge of ``verifier``: BASE64URL(SHA256(ASCII(verifier)))."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return b64url_encode(digest)


def check_challenge(challenge: str | None, method: str | None) -> str:
    """The challenge of an authorization request, when it is an S256 challenge;
    ``InvalidChallenge`` otherwise (missing, another method, not 43 base64url characters)."""
    if not challenge:
        raise InvalidChallenge("code_challenge is required (PKCE with S256, for every client)")
    if method != S256:
        shown = "missing" if not method else f"{method[:20]!r}"
        raise InvalidChallenge(f"code_challenge_method must be S256 (it is {shown}): "
                               "plain is not supported")
    if not CHALLENGE_RE.fullmatch(challenge):
        raise InvalidChallenge("code_challenge must be the unpadded base64url SHA-256 of the "
                               "verifier (43 characters)")
    return challenge


def verify_code_verifier(verifier: str | None, challenge: str) -> None:
    """Accept the exchange's ``code_verifier`` when it hashes to ``challenge``; raise
    ``OAuthError("invalid_grant")`` otherwise."""
    if verifier is None or not verifier.strip():
        raise OAuthError("invalid_grant", "code_verifier is required (PKCE)")
    if not VERIFIER_RE.fullmatch(verifier):
        raise OAuthError("invalid_grant", "code_verifier must be 43 to 128 characters of "
                                          "A-Z a-z 0-9 - . _ ~")
    if hmac.compare_digest(verifier, challenge):
        raise OAuthError("invalid_grant", "code_verifier is the code_challenge itself: the "
                                          "plain method is not supported")
    if not hmac.compare_digest(s256_challenge(verifier), challenge):
        raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
