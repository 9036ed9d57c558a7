"""The key and certificate that sign XDS submissions (the VIHF assertion and the XAdES
signature), loaded once from their PEM; error messages never echo key material."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)

from fhir_server.crypto.keys import ConfigurationError


@dataclass(frozen=True, slots=True)
class SigningMaterial:
    """An RSA private key and its X.509 certificate (the structure's signing certificate)."""

    key: rsa.RSAPrivateKey = field(repr=False)
    certificate: x509.Certificate

    @property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(Encoding.PEM).decode("ascii")

    @property
    def subject_dn(self) -> str:
        """The certificate's subject distinguished name (RFC 4514): the VIHF's Issuer."""
        return self.certificate.subject.rfc4514_string()


def load_signing_material(key_pem: str, certificate_pem: str, *,
                          key_source: str = "the DMP signing key",
                          certificate_source: str = "the DMP signing certificate"
                          ) -> SigningMaterial:
    """The key and certificate of the PEM texts; ``ConfigurationError`` when either is not PEM,
    the key is not RSA (the DMP's structure certificates are RSA), or they do not match."""
    try:
        key = load_pem_private_key(key_pem.encode("utf-8"), password=None)
    except (ValueError, TypeError):
        raise ConfigurationError(
            f"{key_source} is not an unencrypted PEM private key (-----BEGIN PRIVATE "
            f"KEY----- or -----BEGIN RSA PRIVATE KEY-----).") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigurationError(f"{key_source} must be an RSA key: the VIHF and XAdES "
                                 f"signatures are RSA-SHA256.")
    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem.encode("utf-8"))
    except ValueError:
        raise ConfigurationError(
            f"{certificate_source} is not a PEM certificate (-----BEGIN CERTIFICATE-----)."
        ) from None
    if _public(key.public_key()) != _public(certificate.public_key()):
        raise ConfigurationError(f"{key_source} does not match {certificate_source}: the "
                                 f"certificate must be the one issued for that key.")
    return SigningMaterial(key=key, certificate=certificate)


def _public(key: object) -> bytes:
    public_bytes = getattr(key, "public_bytes", None)
    if public_bytes is None:
        return b""
    encoded: bytes = public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return encoded
