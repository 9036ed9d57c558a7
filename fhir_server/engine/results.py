"""What interactions return to the API: a resource version and the status the spec asks for."""

from __future__ import annotations

from dataclasses import dataclass

from fhir_server.engine.hooks import PlannedWrite
from fhir_server.errors import Issue
from fhir_server.storage.protocol import StoredVersion


@dataclass(frozen=True, slots=True)
class ResourceResult:
    """One resource version as answered: ``body`` is plaintext JSON, None for a deletion."""

    status: int
    resource_type: str
    id: str
    version: int
    last_updated: str
    body: bytes | None
    message: str = ""
    issues: tuple[Issue, ...] = ()
    """What the validation of a write found without refusing it (warnings; errors in tag mode)."""

    @classmethod
    def of_write(cls, write: PlannedWrite, *, status: int | None = None, message: str = "",
                 issues: tuple[Issue, ...] = ()) -> ResourceResult:
        change = write.change
        return cls(status=write.status if status is None else status,
                   resource_type=change.resource_type, id=change.id, version=change.version,
                   last_updated=change.last_updated, body=write.body, message=message,
                   issues=issues)

    @classmethod
    def of_stored(cls, stored: StoredVersion, body: bytes | None, *, status: int = 200,
                  message: str = "", issues: tuple[Issue, ...] = ()) -> ResourceResult:
        return cls(status=status, resource_type=stored.resource_type, id=stored.id,
                   version=stored.version, last_updated=stored.last_updated, body=body,
                   message=message, issues=issues)

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'

    @property
    def location(self) -> str:
        """Relative location of this version: ``Type/id/_history/n``."""
        return f"{self.resource_type}/{self.id}/_history/{self.version}"
