"""The MHD route toward the DMP: a report filed as an ITI-65 Provide Document Bundle (ANS PDSm)
POSTed to a configured MHD Document Recipient.

The Bundle (``mappers/mhd_bundle.py``) makes the DocumentReference a conditional create on the
document's uniqueId, so a retry after a lost answer files nothing twice: the recipient answers
that entry ``200`` (found) instead of ``201`` (created), which is ``ALREADY_PRESENT``.

How answers map: a ``2xx`` transaction-response is ``ACCEPTED`` or ``ALREADY_PRESENT``; a
timeout, a connection error, a ``5xx`` or ``429``, or a ``2xx`` that is not a readable
transaction-response is ``DmpTransientError`` (retrying is safe, see above); any other answer
is ``DmpRejected`` with code "HTTP status + first OperationOutcome issue code" and the issue's
diagnostics, trimmed, as reason. The answer's body is never logged nor carried whole, and no
log line names the patient or the document's content.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import httpx
import orjson

from fhir_server.dmp.port import DmpRejected, DmpTransientError, Submission, SubmissionOutcome
from mappers.mhd_bundle import provide_document_bundle

logger = logging.getLogger(__name__)

FHIR_JSON: Final = "application/fhir+json"
REASON_LIMIT: Final = 200
"""Longest reason kept from a recipient's OperationOutcome."""
TRANSIENT_STATUSES: Final = frozenset({408, 425, 429})
"""4xx answers that mean "later", not "never"."""


class MhdAdapter:
    """Files documents with one MHD Document Recipient (route ``mhd``)."""

    route = "mhd"

    def __init__(self, base_url: str, token: str | None, timeout: float,
                 client: httpx.AsyncClient | None = None, *,
                 source_id: str | None = None) -> None:
        """``base_url``: the recipient's FHIR base (the Bundle is POSTed to it); ``token``: a
        Bearer token, if the recipient wants one; ``client``: an HTTP client to use (closed by
        its owner), else one of the adapter's own; ``source_id``: the sourceId OID of the
        submissions (default: made from the custodian, ``mappers/mhd_bundle.py``)."""
        self._url = base_url.rstrip("/") or base_url
        self._token = token
        self._timeout = timeout
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._source_id = source_id

    async def submit(self, submission: Submission) -> SubmissionOutcome:
        """POST the submission's Provide Document Bundle; see the module doc for the answers."""
        bundle = provide_document_bundle(submission.document, submission.cda,
                                         submission_set_id=submission.submission_set_id,
                                         source_id=self._source_id)
        headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            response = await self._client.post(self._url, content=orjson.dumps(bundle),
                                               headers=headers, timeout=self._timeout)
        except httpx.TimeoutException:
            logger.warning("MHD recipient: no answer within %.0f s", self._timeout)
            raise DmpTransientError(
                f"the MHD recipient did not answer within {self._timeout:g} s") from None
        except httpx.TransportError as error:
            logger.warning("MHD recipient unreachable: %s", type(error).__name__)
            raise DmpTransientError(
                f"the MHD recipient cannot be reached ({type(error).__name__})") from None
        logger.info("MHD recipient answered HTTP %s", response.status_code)
        return _outcome(response, document_entry=_document_entry_index(bundle))

    async def aclose(self) -> None:
        """Close the adapter's own HTTP client (not one it was given)."""
        if self._own_client:
            await self._client.aclose()


def _document_entry_index(bundle: dict[str, Any]) -> int:
    return next(index for index, entry in enumerate(bundle["entry"])
                if entry["resource"]["resourceType"] == "DocumentReference")


def _outcome(response: httpx.Response, *, document_entry: int) -> SubmissionOutcome:
    status = response.status_code
    if status >= 500 or status in TRANSIENT_STATUSES:
        raise DmpTransientError(f"the MHD recipient answered HTTP {status}; retry later")
    if not 200 <= status < 300:
        code, reason = _refusal(response)
        raise DmpRejected(code, reason)
    entry_status = _entry_status(response, document_entry)
    if entry_status is None:
        raise DmpTransientError(f"the MHD recipient answered HTTP {status} without a "
                                "transaction-response naming the DocumentReference")
    if entry_status.startswith("200"):
        return SubmissionOutcome.ALREADY_PRESENT
    if entry_status.startswith("201"):
        return SubmissionOutcome.ACCEPTED
    raise DmpTransientError(f"the MHD recipient answered the DocumentReference entry with "
                            f"'{entry_status[:20]}', neither 201 nor 200")


def _json(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


def _entry_status(response: httpx.Response, index: int) -> str | None:
    """``response.status`` of the entry at ``index`` of a transaction-response Bundle."""
    body = _json(response)
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle" or (
            body.get("type") != "transaction-response"):
        return None
    entries = body.get("entry")
    if not isinstance(entries, list) or len(entries) <= index:
        return None
    entry = entries[index]
    answer = entry.get("response") if isinstance(entry, dict) else None
    status = answer.get("status") if isinstance(answer, dict) else None
    return status.strip() if isinstance(status, str) else None


def _refusal(response: httpx.Response) -> tuple[str, str]:
    """The code (HTTP status and the first issue's code) and reason (its diagnostics,
    trimmed) of a refusal; the body itself is never kept."""
    status = str(response.status_code)
    body = _json(response)
    issues = body.get("issue") if isinstance(body, dict) and (
        body.get("resourceType") == "OperationOutcome") else None
    first = issues[0] if isinstance(issues, list) and issues else None
    if not isinstance(first, dict):
        return status, f"the MHD recipient refused the document (HTTP {status})"
    code = first.get("code")
    diagnostics = first.get("diagnostics")
    if not isinstance(diagnostics, str) or not diagnostics.strip():
        details = first.get("details")
        diagnostics = details.get("text") if isinstance(details, dict) else None
    reason = (" ".join(diagnostics.split())[:REASON_LIMIT] if isinstance(diagnostics, str)
              and diagnostics.strip() else f"the MHD recipient refused the document "
                                           f"(HTTP {status})")
    return (f"{status} {code}" if isinstance(code, str) and code else status), reason
