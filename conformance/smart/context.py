"""What every part of the ``smart`` group shares: the kit, the authorization server's client,
the run's secrets, the checks being recorded, and the discovery document once fetched."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from conformance.client import CheckFailure, Reply
from conformance.kit import GroupRun, Kit
from conformance.smart.auth_client import AuthClient, is_absolute_url
from conformance.smart.vault import Vault

T = TypeVar("T")
DISCOVERY_PATH = ".well-known/smart-configuration"


@dataclass(frozen=True, slots=True)
class Discovery:
    """The SMART configuration document, and the OIDC JWKS when the server publishes one."""

    document: Mapping[str, Any]
    jwks: Mapping[str, Any] | None = None

    def endpoint(self, name: str) -> str:
        """The absolute URL the document gives as ``name``; CheckFailure when it gives none."""
        value = self.document.get(name)
        if not is_absolute_url(value):
            raise CheckFailure(f"the discovery document gives no absolute {name} "
                               f"(got {value!r})")
        return str(value)

    def strings(self, name: str) -> list[str]:
        """The strings of a list member (empty when absent or not a list)."""
        value = self.document.get(name)
        return [item for item in value if isinstance(item, str)] if isinstance(value, list) \
            else []


@dataclass(frozen=True, slots=True)
class SmartRun:
    """One run of the ``smart`` group; ``check`` and ``require`` mask the run's secrets."""

    kit: Kit
    auth: AuthClient
    vault: Vault
    checks: GroupRun

    def check(self, name: str, step: Callable[[], object]) -> bool:
        return self.checks.check(name, self.vault.guard(step))

    def require(self, name: str, step: Callable[[], T]) -> T:
        return self.checks.require(name, self.vault.guard(step))

    def fhir_get(self, path: str, access_token: str, *,
                 params: Mapping[str, str] | None = None) -> Reply:
        """A FHIR read or search under the base, presenting ``access_token``."""
        return self.kit.client.get(path, params=params,
                                   headers={"Authorization": f"Bearer {access_token}"})
