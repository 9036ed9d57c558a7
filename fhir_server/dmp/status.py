"""A report document's DMP export status: the ``pictaderm-dmp-export`` extension on its
DocumentReference (status, route, attempts, last attempt, reason), read and written here."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from fhir_server.types import ResourceDict

EXTENSION_URL: Final = "https://fhir.pictaderm.com/StructureDefinition/pictaderm-dmp-export"
STATUS_SYSTEM: Final = "https://fhir.pictaderm.com/CodeSystem/dmp-export-status"


class ExportStatus(StrEnum):
    """Where a report document stands toward the DMP (CodeSystem ``dmp-export-status``)."""

    PENDING = "dmp-pending"
    SUBMITTED = "dmp-submitted"
    SKIPPED_NO_INS = "dmp-skipped-no-ins"
    SKIPPED_DISABLED = "dmp-skipped-disabled"
    SKIPPED_OPPOSED = "dmp-skipped-opposed"
    FAILED = "dmp-failed"

    @property
    def is_final(self) -> bool:
        return self is not ExportStatus.PENDING


DISPLAYS: Final = {
    ExportStatus.PENDING: "Envoi au DMP en cours",
    ExportStatus.SUBMITTED: "Envoyé au DMP",
    ExportStatus.SKIPPED_NO_INS: "Non envoyé : pas d'INS propre au patient",
    ExportStatus.SKIPPED_DISABLED: "Non envoyé : envoi au DMP désactivé",
    ExportStatus.SKIPPED_OPPOSED: "Non envoyé : opposition du patient",
    ExportStatus.FAILED: "Échec de l'envoi au DMP",
}


@dataclass(frozen=True, slots=True)
class ExportState:
    """The export status of one document."""

    status: ExportStatus = ExportStatus.PENDING
    route: str | None = None
    attempts: int = 0
    last_attempt: datetime | None = None
    reason: str | None = None
    document: str | None = None
    """The CDA R2 N1 document made for the submission (``Binary/<id>``), once made."""

    def tried(self, status: ExportStatus, *, route: str | None, at: datetime,
              reason: str | None = None) -> ExportState:
        """The state after one more attempt."""
        return replace(self, status=status, route=route, attempts=self.attempts + 1,
                       last_attempt=at, reason=reason)


def export_state(document: ResourceDict) -> ExportState | None:
    """The document's export state; None when no export was recorded yet."""
    extension = next((item for item in document.get("extension") or ()
                      if isinstance(item, dict) and item.get("url") == EXTENSION_URL), None)
    if extension is None:
        return None
    parts = {str(part.get("url")): part for part in extension.get("extension") or ()
             if isinstance(part, dict)}
    code = str((parts.get("status") or {}).get("valueCoding", {}).get("code") or "")
    try:
        status = ExportStatus(code)
    except ValueError:
        status = ExportStatus.PENDING
    last = (parts.get("lastAttempt") or {}).get("valueInstant")
    return ExportState(
        status=status, route=(parts.get("route") or {}).get("valueCode"),
        attempts=int((parts.get("attempts") or {}).get("valueInteger") or 0),
        last_attempt=datetime.fromisoformat(str(last).replace("Z", "+00:00")) if last else None,
        reason=(parts.get("reason") or {}).get("valueString"),
        document=((parts.get("document") or {}).get("valueReference") or {}).get("reference"))


def with_export_state(document: ResourceDict, state: ExportState) -> ResourceDict:
    """The document carrying ``state`` as its (only) export extension."""
    parts: list[dict[str, Any]] = [{"url": "status", "valueCoding": {
        "system": STATUS_SYSTEM, "code": state.status.value,
        "display": DISPLAYS[state.status]}}]
    if state.route:
        parts.append({"url": "route", "valueCode": state.route})
    parts.append({"url": "attempts", "valueInteger": state.attempts})
    if state.last_attempt is not None:
        parts.append({"url": "lastAttempt", "valueInstant": state.last_attempt.isoformat(
            timespec="milliseconds").replace("+00:00", "Z")})
    if state.reason:
        parts.append({"url": "reason", "valueString": state.reason[:500]})
    if state.document:
        parts.append({"url": "document", "valueReference": {"reference": state.document}})
    others = [item for item in document.get("extension") or ()
              if not (isinstance(item, dict) and item.get("url") == EXTENSION_URL)]
    return {**document, "extension": [*others, {"url": EXTENSION_URL, "extension": parts}]}
