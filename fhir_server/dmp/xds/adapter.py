"""``XdsAdapter``: the DMP port over XDS.b — POSTs one ITI-41 request per submission and turns
the repository's answer into an outcome (``ACCEPTED``, ``ALREADY_PRESENT``) or a
``DmpTransientError`` / ``DmpRejected``; ``xds_adapter(settings)`` builds it from Settings.

Errors carry protocol codes and fixed reasons, never the registry's free text (it may quote
the submission) nor anything of the document.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

import httpx

from fhir_server import __version__
from fhir_server.crypto.keys import ConfigurationError
from fhir_server.dmp.port import (
    DmpRejected,
    DmpTransientError,
    Submission,
    SubmissionOutcome,
)
from fhir_server.dmp.xds import names
from fhir_server.dmp.xds.metadata import MetadataError, XdsProfile
from fhir_server.dmp.xds.mtom import UnreadableMessage
from fhir_server.dmp.xds.request import Iti41Request, XdsSender, iti41_request
from fhir_server.dmp.xds.signing import load_signing_material
from fhir_server.dmp.xds.soap import RegistryResponse, SoapFault, parse_answer
from fhir_server.dmp.xds.vihf import VihfSettings
from fhir_server.settings import Settings

logger = logging.getLogger(__name__)

SOURCE_ID_NAMESPACE: Final = uuid.UUID("0b6f1d5e-8a4c-4f43-9d0e-2c7a61e5b9f4")
"""Namespace of the UUID (v5, from the structure id) whose OID is the submissions' sourceId."""
_SAFE_CODE: Final = re.compile(r"[A-Za-z0-9_.:\-]{1,100}")
_RETRY_STATUSES: Final = frozenset({408, 425, 429})


def _utc_now() -> datetime:
    return datetime.now(UTC)


class XdsAdapter:
    """The ``xds`` route: ITI-41 Provide and Register Document Set-b toward the DMP."""

    route = "xds"

    def __init__(self, sender: XdsSender, *, timeout_seconds: float,
                 client: httpx.AsyncClient | None = None,
                 clock: Callable[[], datetime] = _utc_now) -> None:
        self._sender = sender
        self._timeout = httpx.Timeout(timeout_seconds)
        self._timeout_seconds = timeout_seconds
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=self._timeout)
        self._clock = clock

    async def submit(self, submission: Submission) -> SubmissionOutcome:
        try:
            request = iti41_request(submission, self._sender, now=self._clock(),
                                    message_id=f"urn:uuid:{uuid.uuid4()}",
                                    assertion_id=f"_{uuid.uuid4()}")
        except MetadataError as error:
            raise DmpRejected("incomplete-metadata", str(error)) from None
        try:
            response = await self._client.post(
                self._sender.endpoint, content=request.message.body,
                headers={"Content-Type": request.message.content_type}, timeout=self._timeout)
        except httpx.TimeoutException:
            raise DmpTransientError(f"the DMP repository did not answer within "
                                    f"{self._timeout_seconds:g} s") from None
        except httpx.TransportError as error:
            raise DmpTransientError(f"the DMP repository could not be reached "
                                    f"({type(error).__name__})") from None
        outcome = answer_outcome(response.status_code, response.headers.get("content-type", ""),
                                 response.content, request)
        logger.info("XDS submission set %s: %s", request.submission_set_id, outcome.value)
        return outcome

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


def answer_outcome(status: int, content_type: str, body: bytes,
                   request: Iti41Request) -> SubmissionOutcome:
    """What the repository's HTTP answer to ``request`` means (raises the port's errors)."""
    try:
        answer = parse_answer(content_type, body)
    except UnreadableMessage as error:
        if status >= 500 or status in _RETRY_STATUSES:
            raise DmpTransientError(f"HTTP {status} from the DMP repository") from None
        if status >= 400:
            raise DmpRejected(f"http-{status}",
                              "the DMP repository refused the request") from None
        raise DmpTransientError(f"unreadable answer from the DMP repository ({error})") from None
    if isinstance(answer, SoapFault):
        code = _safe(answer.subcode or answer.code)
        if answer.sender:
            raise DmpRejected(code, "the DMP repository refused the request (SOAP fault)")
        raise DmpTransientError(f"the DMP repository failed ({code})")
    return _registry_outcome(answer, request)


def _registry_outcome(answer: RegistryResponse, request: Iti41Request) -> SubmissionOutcome:
    errors = [error for error in answer.errors if error.is_error]
    if answer.success and not errors:
        return SubmissionOutcome.ACCEPTED
    if not errors:
        raise DmpRejected(_safe(answer.status.rpartition(":")[2]),
                          "the registry did not register the submission and gave no error")
    ours = (request.document_unique_id, request.submission_set_id, request.signature_unique_id)
    if all(error.code == names.DUPLICATE_UNIQUE_ID for error in errors) and any(
            _names(f"{error.context} {error.location}", unique_id)
            for error in errors for unique_id in ours):
        return SubmissionOutcome.ALREADY_PRESENT
    if any(error.code in names.BUSY_ERRORS for error in errors):
        raise DmpTransientError(f"the registry is busy ({_safe(errors[0].code)})")
    refusal = next((error for error in errors if error.code != names.DUPLICATE_UNIQUE_ID),
                   errors[0])
    raise DmpRejected(_safe(refusal.code), "the registry refused the submission")


def _names(text: str, oid: str) -> bool:
    """Whether ``text`` names ``oid`` itself (not a longer OID that begins with it)."""
    return re.search(rf"(?<![0-9.]){re.escape(oid)}(?![0-9]|\.[0-9])", text) is not None


def _safe(code: str) -> str:
    """A protocol code fit for a log line and an error status (else ``unknown``)."""
    return code if _SAFE_CODE.fullmatch(code) else "unknown"


def xds_adapter(settings: Settings, client: httpx.AsyncClient | None = None) -> XdsAdapter:
    """The adapter of ``FHIR_SERVER_DMP_EXPORT=xds``; ``ConfigurationError`` naming what is
    missing or wrong when the repository URL, the signing key, its certificate or the
    structure id is not configured."""
    key = settings.dmp_signing_key.get_secret_value() if settings.dmp_signing_key else ""
    required = (("FHIR_SERVER_DMP_XDS_URL", settings.dmp_xds_url),
                ("FHIR_SERVER_DMP_SIGNING_KEY", key),
                ("FHIR_SERVER_DMP_SIGNING_CERTIFICATE", settings.dmp_signing_certificate),
                ("FHIR_SERVER_DMP_STRUCTURE_ID", settings.dmp_structure_id))
    missing = [name for name, value in required if not (value or "").strip()]
    if missing:
        raise ConfigurationError(
            f"the XDS route toward the DMP (FHIR_SERVER_DMP_EXPORT=xds) needs "
            f"{', '.join(missing)}: the repository's ITI-41 URL, the PEM private key and "
            f"certificate that sign the VIHF and XAdES signatures, and the structure's "
            f"national id (idNST).")
    assert settings.dmp_xds_url is not None and settings.dmp_signing_certificate is not None
    assert settings.dmp_structure_id is not None
    if not settings.dmp_xds_url.startswith(("https://", "http://")):
        raise ConfigurationError("FHIR_SERVER_DMP_XDS_URL must be an http(s) URL.")
    material = load_signing_material(key, settings.dmp_signing_certificate,
                                     key_source="FHIR_SERVER_DMP_SIGNING_KEY",
                                     certificate_source="FHIR_SERVER_DMP_SIGNING_CERTIFICATE")
    structure_id = settings.dmp_structure_id.strip()
    sender = XdsSender(
        endpoint=settings.dmp_xds_url, material=material,
        profile=XdsProfile(source_id=source_id(structure_id)),
        vihf=VihfSettings(structure_id=structure_id, software_name=settings.platform_name,
                          software_version=__version__))
    return XdsAdapter(sender, timeout_seconds=settings.dmp_timeout_seconds, client=client)


def source_id(structure_id: str) -> str:
    """The sourceId of the structure's submissions: the OID (under 2.25) of a UUID v5 made
    from its structure id, stable across restarts and needing no registration."""
    return f"2.25.{uuid.uuid5(SOURCE_ID_NAMESPACE, structure_id).int}"
