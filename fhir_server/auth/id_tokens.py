"""OpenID Connect ID tokens (RS256) for SMART ``openid fhirUser``, the key that signs them and
the JWKS that publishes its public half.

Spec: https://hl7.org/fhir/smart-app-launch/STU2.2/scopes-and-launch-context.html#scopes-for-requesting-identity-data
and OpenID Connect Core 1.0 section 2. The key is the RSA private key of the
``oidc_signing_key`` setting (PEM); without it, a development server reads, or creates once,
``<data dir>/keys/oidc-signing-key.pem`` (mode 0600), and production refuses to start. Its
``kid`` is the key's RFC 7638 thumbprint, so a new key gets a new ``kid`` by itself. Other
secrets of the authorization server (the sign-in form's tokens) are derived from it with HKDF,
each under its own label, so there is one secret to configure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from fhir_server.crypto.keys import ConfigurationError
from fhir_server.crypto.secret_files import create_secret_file
from fhir_server.settings import Mode, Settings

ALGORITHM: Final = "RS256"
KEY_FILE: Final = Path("keys") / "oidc-signing-key.pem"
MIN_KEY_BITS: Final = 2048
NEW_KEY_BITS: Final = 3072
DERIVED_KEY_BYTES: Final = 32
_ENV_NAME: Final = "FHIR_SERVER_OIDC_SIGNING_KEY"
_NEW_KEY_HINT: Final = "generate one with: openssl genpkey -algorithm RSA -pkeyopt " \
                       "rsa_keygen_bits:3072"


class IdTokenSigner:
    """Signs ID tokens with one RSA private key and publishes its public JWK.

    Built from the key, or from a function giving it: then the key is read (or, in
    development, generated) on first use, so a server that never signs an ID token never
    spends the key generation."""

    def __init__(self, key: RSAKey | Callable[[], RSAKey]) -> None:
        self._load = key if callable(key) else None
        self._loaded: tuple[RSAKey, str] | None = None
        if isinstance(key, RSAKey):
            self._loaded = _checked(key)

    @property
    def _key(self) -> RSAKey:
        return self._material()[0]

    @property
    def kid(self) -> str:
        """The key id: the RFC 7638 thumbprint (SHA-256) of the public key."""
        return self._material()[1]

    def _material(self) -> tuple[RSAKey, str]:
        if self._loaded is None:
            assert self._load is not None
            self._loaded = _checked(self._load())
        return self._loaded

    def jwks(self) -> dict[str, Any]:
        """The JWKS document: the public RSA key only, with ``kid``, ``alg`` and ``use``."""
        public = dict(self._key.as_dict(private=False))
        public.update({"kid": self.kid, "alg": ALGORITHM, "use": "sig"})
        return {"keys": [public]}

    def id_token(self, *, issuer: str, subject: str, audience: str, auth_time: datetime,
                 lifetime: int, nonce: str | None = None, fhir_user: str | None = None,
                 now: float | None = None) -> str:
        """A signed ID token: ``iss`` (the FHIR base URL), ``sub``, ``aud`` (the client_id),
        ``iat``, ``exp`` (``lifetime`` seconds later), ``auth_time``, and ``nonce`` and
        ``fhirUser`` (an absolute URL) when given."""
        issued_at = int(time.time() if now is None else now)
        claims: dict[str, Any] = {"iss": issuer, "sub": subject, "aud": audience,
                                  "iat": issued_at, "exp": issued_at + lifetime,
                                  "auth_time": int(auth_time.timestamp())}
        if nonce is not None:
            claims["nonce"] = nonce
        if fhir_user is not None:
            claims["fhirUser"] = fhir_user
        header = {"alg": ALGORITHM, "typ": "JWT", "kid": self.kid}
        return jwt.encode(header, claims, self._key, algorithms=[ALGORITHM])

    def derived_key(self, label: str) -> bytes:
        """A 32-byte secret for ``label`` (HKDF-SHA256 over the private key), stable for as
        long as the signing key is."""
        private = self._key.private_key
        if private is None:
            raise ValueError("the ID token key has no private half")
        material = private.private_bytes(serialization.Encoding.DER,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())
        hkdf = HKDF(algorithm=hashes.SHA256(), length=DERIVED_KEY_BYTES, salt=None,
                    info=f"pictaderm {label}".encode())
        return hkdf.derive(material)


def _checked(key: RSAKey) -> tuple[RSAKey, str]:
    """The key and its thumbprint; ValueError unless an RSA private key big enough."""
    if not key.is_private:
        raise ValueError("the ID token key must be an RSA private key")
    public = key.public_key
    if not isinstance(public, rsa.RSAPublicKey) or public.key_size < MIN_KEY_BITS:
        raise ValueError(f"the ID token key must be RSA of at least {MIN_KEY_BITS} bits")
    return key, key.thumbprint()


def id_token_signer(settings: Settings) -> IdTokenSigner:
    """The signer for the configured key, or (development) the key file under the data dir,
    loaded on first use. Raises ``ConfigurationError`` at once in production without a key,
    and on first use when the key is unusable."""
    configured = settings.oidc_signing_key
    if settings.mode == Mode.PRODUCTION and (configured is None
                                             or not configured.get_secret_value()):
        load_signing_key(settings)
    return IdTokenSigner(lambda: load_signing_key(settings))


def load_signing_key(settings: Settings) -> RSAKey:
    """The RSA private key that signs ID tokens: the setting, else (development only) the key
    file under the data dir, created on first use."""
    if settings.oidc_signing_key is not None and settings.oidc_signing_key.get_secret_value():
        return _parsed_key(settings.oidc_signing_key.get_secret_value().encode(),
                           source=_ENV_NAME)
    if settings.mode == Mode.PRODUCTION:
        raise ConfigurationError(f"{_ENV_NAME} is required in production: the PEM of an RSA "
                                 f"private key of at least {MIN_KEY_BITS} bits ({_NEW_KEY_HINT})")
    path = settings.data_dir / KEY_FILE
    if not path.exists():
        _create_key_file(path)
    return _parsed_key(path.read_bytes(), source=f"the development key file {path}")


def signing_key_file(settings: Settings) -> Path | None:
    """Where the development signing key lives, when the setting does not give one."""
    configured = settings.oidc_signing_key
    if configured is not None and configured.get_secret_value():
        return None
    return settings.data_dir / KEY_FILE


def _parsed_key(pem: bytes, *, source: str) -> RSAKey:
    try:
        key = RSAKey.import_key(pem)
    except (JoseError, ValueError, TypeError) as error:
        raise ConfigurationError(f"{source} is not the PEM of an RSA private key "
                                 f"({_NEW_KEY_HINT})") from error
    public = key.public_key
    if not key.is_private or not isinstance(public, rsa.RSAPublicKey):
        raise ConfigurationError(f"{source} must hold an RSA private key ({_NEW_KEY_HINT})")
    if public.key_size < MIN_KEY_BITS:
        raise ConfigurationError(f"{source} holds a {public.key_size}-bit key: use at least "
                                 f"{MIN_KEY_BITS} bits ({_NEW_KEY_HINT})")
    return key


def _create_key_file(path: Path) -> None:
    """Write a new RSA key with mode 0600; if another process won the race, keep its key."""
    create_secret_file(path, RSAKey.generate_key(NEW_KEY_BITS, private=True).as_pem(private=True))
