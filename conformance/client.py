"""The kit's HTTP client: one FHIR base URL and its bearer token; failures become CheckFailure.

A check never sees an httpx exception: a server that does not answer, or answers something that
is not what the specification requires, raises ``CheckFailure`` with a sentence saying what was
expected and what came. Links the server hands out (``Location``, ``next``) are followed only
when they stay under the base URL, so the token never leaves for another host.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeAlias

import httpx

Resource: TypeAlias = dict[str, Any]
"""A FHIR resource as parsed JSON."""

FHIR_JSON = "application/fhir+json"
DEFAULT_TIMEOUT = 30.0
EXCERPT = 300


class CheckFailure(Exception):
    """A check did not get what the specification requires; the message says what came."""


class ServerUnreachable(Exception):
    """Nothing answers at the base URL (refused connection, unknown host, timeout)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP answer: status, headers (lower-case names) and the body parsed as JSON."""

    method: str
    path: str
    status: int
    headers: Mapping[str, str]
    body: Any
    """The parsed JSON body, or None when it is empty or not JSON."""
    text: str

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def expect(self, *statuses: int) -> Reply:
        """This reply if its status is one of ``statuses``, else a CheckFailure saying what came."""
        if self.status not in statuses:
            wanted = " or ".join(str(status) for status in statuses)
            raise CheckFailure(f"{self.method} {self.path}: expected {wanted}, got {self.status}"
                               f"{self.outcome_summary()}")
        return self

    def resource(self, resource_type: str | None = None) -> Resource:
        """The body as a resource (of ``resource_type`` when given); else a CheckFailure."""
        body = self.body
        if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
            raise CheckFailure(f"{self.method} {self.path}: expected a FHIR resource, got "
                               f"{self.text[:EXCERPT]!r}")
        if resource_type is not None and body["resourceType"] != resource_type:
            raise CheckFailure(f"{self.method} {self.path}: expected a {resource_type}, got a "
                               f"{body['resourceType']}")
        return body

    def outcome_summary(self) -> str:
        """`` (issues: code at expression: text; …)`` when the body is an OperationOutcome."""
        body = self.body
        if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
            return ""
        return f" (issues: {describe_issues(body)})"


def describe_issues(outcome: Resource, limit: int = 5) -> str:
    """The issues of an OperationOutcome in one line: ``code at expression: text; …``."""
    issues = [issue for issue in outcome.get("issue", []) if isinstance(issue, dict)]
    parts = []
    for issue in issues[:limit]:
        where = ", ".join(str(e) for e in issue.get("expression", []) or []) or "-"
        text = issue.get("diagnostics") or (issue.get("details") or {}).get("text") or ""
        parts.append(f"{issue.get('code')} at {where}: {str(text)[:120]}")
    if len(issues) > limit:
        parts.append(f"and {len(issues) - limit} more")
    return "; ".join(parts) or "none"


class HttpSession:
    """One synchronous httpx client with its trace sink, closed by ``close()`` or on leaving a
    ``with`` block: what the kit's clients share."""

    def __init__(self, http: httpx.Client, trace: Callable[[str], None] | None) -> None:
        self._http = http
        self._trace = trace

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def exchange(self, method: str, target: str, *, shown: str,
                 headers: Mapping[str, str] | None = None,
                 params: Mapping[str, str] | None = None,
                 content: bytes | None = None) -> Reply:
        """One request and its ``Reply``; ``shown`` names it in the trace and in failures.
        Raises CheckFailure when nothing answers."""
        try:
            response = self._http.request(method, target, params=params,
                                          headers=dict(headers or {}), content=content)
        except httpx.HTTPError as exc:
            raise CheckFailure(f"{method} {shown}: no answer ({type(exc).__name__}: "
                               f"{exc})") from exc
        if self._trace is not None:
            self._trace(f"{method} {shown} -> {response.status_code}")
        return Reply(method=method, path=shown, status=response.status_code,
                     headers={name.lower(): value for name, value in response.headers.items()},
                     body=json_body(response), text=response.text)


class FhirClient(HttpSession):
    """Synchronous FHIR client on one base URL, sending the bearer token when there is one."""

    def __init__(self, base: str, *, token: str | None, timeout: float = DEFAULT_TIMEOUT,
                 trace: Callable[[str], None] | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base = base.rstrip("/")
        headers = {"Accept": FHIR_JSON}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        super().__init__(httpx.Client(base_url=self.base, headers=headers, timeout=timeout,
                                      transport=transport), trace)

    def probe(self) -> Reply:
        """``GET metadata``; ServerUnreachable when nothing answers at the base."""
        try:
            return self.get("metadata")
        except CheckFailure as failure:
            if isinstance(failure.__cause__, httpx.TransportError):
                raise ServerUnreachable(f"nothing answers at {self.base}: "
                                        f"{failure.__cause__}") from failure
            raise

    def get(self, path: str, *, params: Mapping[str, str] | None = None,
            headers: Mapping[str, str] | None = None) -> Reply:
        return self.request("GET", path, params=params, headers=headers)

    def post(self, path: str, resource: Resource, *,
             headers: Mapping[str, str] | None = None) -> Reply:
        return self.request("POST", path, resource=resource, headers=headers)

    def put(self, path: str, resource: Resource, *,
            headers: Mapping[str, str] | None = None) -> Reply:
        return self.request("PUT", path, resource=resource, headers=headers)

    def delete(self, path: str) -> Reply:
        return self.request("DELETE", path)

    def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                resource: Resource | None = None,
                headers: Mapping[str, str] | None = None) -> Reply:
        """One exchange. ``path`` is relative to the base, or an absolute URL under it."""
        target = self._relative(path)
        sent = dict(headers or {})
        content = None
        if resource is not None:
            sent.setdefault("Content-Type", FHIR_JSON)
            content = json.dumps(resource).encode("utf-8")
        shown = f"/{target}" if not params else f"/{target}?{httpx.QueryParams(params)}"
        return self.exchange(method, target, shown=shown, headers=sent, params=params,
                             content=content)

    def _relative(self, path: str) -> str:
        if not path.startswith(("http://", "https://")):
            return path.lstrip("/")
        if path != self.base and not path.startswith(self.base + "/"):
            raise CheckFailure(f"the server's link {path[:200]} is not under the base "
                               f"{self.base} (is the server's public base URL another one?)")
        return path[len(self.base):].lstrip("/")


def json_body(response: httpx.Response) -> Any:
    """The body parsed as JSON when the content type says JSON, else None."""
    if not response.content or "json" not in response.headers.get("content-type", ""):
        return None
    try:
        return json.loads(response.content)
    except ValueError:
        return None
