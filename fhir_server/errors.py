"""The server's errors: one registry of stable codes, each with an HTTP status and issue type.

Every refusal the server makes is a ``FhirError``; the API turns it into an OperationOutcome at
one place (``api/outcomes.py``). Pharmacy software can react to ``code`` (e.g. ``PD-0409``)
rather than to the sentence, which may change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, StrEnum


class IssueType(StrEnum):
    """The subset of http://hl7.org/fhir/issue-type that the server emits."""

    INVALID = "invalid"
    STRUCTURE = "structure"
    REQUIRED = "required"
    VALUE = "value"
    CODE_INVALID = "code-invalid"
    INVARIANT = "invariant"
    SECURITY = "security"
    LOGIN = "login"
    FORBIDDEN = "forbidden"
    PROCESSING = "processing"
    NOT_SUPPORTED = "not-supported"
    DUPLICATE = "duplicate"
    MULTIPLE_MATCHES = "multiple-matches"
    NOT_FOUND = "not-found"
    DELETED = "deleted"
    TOO_LONG = "too-long"
    CONFLICT = "conflict"
    EXCEPTION = "exception"
    TRANSIENT = "transient"
    BUSINESS_RULE = "business-rule"
    INFORMATIONAL = "informational"
    TOO_COSTLY = "too-costly"


class ErrorCode(Enum):
    """Stable error codes: (code, HTTP status, issue type)."""

    MALFORMED_JSON = ("PD-0400-JSON", 400, IssueType.STRUCTURE)
    BAD_REQUEST = ("PD-0400", 400, IssueType.INVALID)
    TYPE_MISMATCH = ("PD-0400-TYPE", 400, IssueType.INVALID)
    ID_MISMATCH = ("PD-0400-ID", 400, IssueType.INVALID)
    BAD_PARAMETER = ("PD-0400-PARAM", 400, IssueType.INVALID)
    TOO_COSTLY = ("PD-0400-COSTLY", 400, IssueType.TOO_COSTLY)
    UNAUTHENTICATED = ("PD-0401", 401, IssueType.LOGIN)
    FORBIDDEN = ("PD-0403", 403, IssueType.FORBIDDEN)
    UNKNOWN_TYPE = ("PD-0404-TYPE", 404, IssueType.NOT_SUPPORTED)
    NOT_FOUND = ("PD-0404", 404, IssueType.NOT_FOUND)
    METHOD_NOT_ALLOWED = ("PD-0405", 405, IssueType.NOT_SUPPORTED)
    NOT_ACCEPTABLE = ("PD-0406", 406, IssueType.NOT_SUPPORTED)
    VERSION_CONFLICT = ("PD-0409", 409, IssueType.CONFLICT)
    GONE = ("PD-0410", 410, IssueType.DELETED)
    PRECONDITION_FAILED = ("PD-0412", 412, IssueType.CONFLICT)
    MULTIPLE_MATCHES = ("PD-0412-MULTI", 412, IssueType.MULTIPLE_MATCHES)
    TOO_LARGE = ("PD-0413", 413, IssueType.TOO_LONG)
    UNSUPPORTED_MEDIA_TYPE = ("PD-0415", 415, IssueType.NOT_SUPPORTED)
    INVALID_RESOURCE = ("PD-0422", 422, IssueType.STRUCTURE)
    BUSINESS_RULE = ("PD-0422-RULE", 422, IssueType.BUSINESS_RULE)
    NOT_IMPLEMENTED = ("PD-0501", 501, IssueType.NOT_SUPPORTED)
    STORE_UNAVAILABLE = ("PD-0503", 503, IssueType.TRANSIENT)
    INTERNAL = ("PD-0500", 500, IssueType.EXCEPTION)

    @property
    def code(self) -> str:
        return self.value[0]

    @property
    def status(self) -> int:
        return self.value[1]

    @property
    def issue_type(self) -> IssueType:
        return self.value[2]


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem found, as it will appear in an OperationOutcome.issue."""

    diagnostics: str
    issue_type: IssueType = IssueType.INVALID
    severity: str = "error"
    expression: tuple[str, ...] = ()
    code: str | None = None


@dataclass(eq=False)
class FhirError(Exception):
    """A refusal, carried up to the API edge and rendered as an OperationOutcome."""

    error: ErrorCode
    diagnostics: str
    expression: tuple[str, ...] = ()
    issues: tuple[Issue, ...] = field(default=())
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        Exception.__init__(self, self.diagnostics)

    @property
    def status(self) -> int:
        return self.error.status

    def all_issues(self) -> tuple[Issue, ...]:
        """The issues to report: the main one first, then any detailed ones."""
        main = Issue(diagnostics=self.diagnostics, issue_type=self.error.issue_type,
                     expression=self.expression, code=self.error.code)
        return (main, *self.issues)
