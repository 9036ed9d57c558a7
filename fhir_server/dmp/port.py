"""The DMP port: what a DMP adapter (MHD ITI-65, XDS.b ITI-41) is given and how it answers.

The export service (``fhir_server.dmp.export``) decides whether and when to submit; an adapter
only speaks its protocol. An adapter never logs or raises health data: its errors carry a
protocol code and a short reason about the exchange (HTTP status, registry error code).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from mappers.report_document import ReportDocument


class SubmissionOutcome(StrEnum):
    """What became of a submission that did not fail."""

    ACCEPTED = "accepted"
    """The recipient registered the document now."""
    ALREADY_PRESENT = "already-present"
    """The recipient already holds a document with this uniqueId (an earlier try got through)."""


class DmpTransientError(Exception):
    """The submission may succeed later (network, timeout, 5xx, a busy registry): retry."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DmpRejected(Exception):
    """The recipient refused the document for good (bad metadata, unknown patient…).

    ``code`` is the protocol's error code (an XDS registry error code, an HTTP status, an
    OperationOutcome issue code); ``reason`` a short description without health data.
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Submission:
    """One document to send: its facts and its CDA R2 N1 form (``text/xml``)."""

    document: ReportDocument
    cda: bytes
    submission_set_id: str
    """The OID of this submission set (fresh per document, stable across retries)."""


class DmpAdapter(Protocol):
    """One route toward the DMP."""

    route: str
    """``mhd`` or ``xds``: recorded with the export's status."""

    async def submit(self, submission: Submission) -> SubmissionOutcome:
        """Send the document; raises ``DmpTransientError`` or ``DmpRejected``."""
        ...

    async def aclose(self) -> None:
        """Release the adapter's connections."""
        ...
