"""The kit's client for the authorization server: discovery's endpoints, OAuth form posts, the
sign-in page; redirects are answers to read, never followed.

The endpoints sit outside the FHIR base (``<root>/auth/…``), so ``FhirClient`` (which keeps to
the base) cannot reach them. This client keeps to the base's origin instead (scheme, host and
port): a URL that discovery or a page gives on another origin is a CheckFailure, so the user's
password and the tokens never leave for another host. Cookies are kept between a sign-in page
and its form post (a CSRF token may be bound to one) and dropped with ``forget_cookies``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from urllib.parse import urlencode, urljoin, urlsplit

import httpx

from conformance.client import DEFAULT_TIMEOUT, CheckFailure, HttpSession, Reply

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
HTML = "text/html"


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of an absolute URL (empty for a relative one)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def is_absolute_url(value: object) -> bool:
    """Whether ``value`` is an absolute http(s) URL with a host."""
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


class AuthClient(HttpSession):
    """Synchronous HTTP on the FHIR base's origin, for OAuth endpoints and sign-in pages."""

    def __init__(self, base: str, *, timeout: float = DEFAULT_TIMEOUT,
                 trace: Callable[[str], None] | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.origin = origin_of(base)
        if not self.origin:
            raise ValueError(f"the FHIR base {base!r} is not an absolute URL")
        super().__init__(httpx.Client(timeout=timeout, transport=transport,
                                      follow_redirects=False), trace)

    def forget_cookies(self) -> None:
        """Start the next sign-in as a new browser would: without the server's cookies."""
        self._http.cookies.clear()

    def resolve(self, url: str, *, relative_to: str | None = None) -> str:
        """``url`` made absolute (against ``relative_to``); CheckFailure off the base's origin."""
        absolute = urljoin(relative_to, url) if relative_to else url
        if not is_absolute_url(absolute):
            raise CheckFailure(f"{url[:200]!r} is not an absolute http(s) URL")
        if origin_of(absolute) != self.origin:
            raise CheckFailure(f"{absolute[:200]} is not on the FHIR base's origin "
                               f"{self.origin}: the kit does not send credentials elsewhere")
        return absolute

    def get(self, url: str, *, params: Mapping[str, str] | None = None,
            accept: str = JSON, headers: Mapping[str, str] | None = None) -> Reply:
        return self._send("GET", url, params=params,
                          headers={"Accept": accept, **(headers or {})})

    def post_form(self, url: str, fields: Mapping[str, str] | Sequence[tuple[str, str]], *,
                  accept: str = JSON, headers: Mapping[str, str] | None = None) -> Reply:
        """POST ``fields`` form-encoded (pairs keep their order and repetitions)."""
        pairs = list(fields.items()) if isinstance(fields, Mapping) else list(fields)
        return self._send("POST", url, content=urlencode(pairs).encode("ascii"),
                          headers={"Accept": accept, "Content-Type": FORM, **(headers or {})})

    def _send(self, method: str, url: str, *, headers: Mapping[str, str],
              params: Mapping[str, str] | None = None, content: bytes | None = None) -> Reply:
        target = self.resolve(url)
        shown = urlsplit(target).path or "/"
        return self.exchange(method, target, shown=shown, headers=headers, params=params,
                             content=content)
