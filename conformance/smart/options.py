"""The ``smart`` group's options: a public app and its user (app launch), a backend client and
its private key (Backend Services). Each part runs only when all its options are given; half a
part is a usage error, named.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from conformance.smart.auth_client import is_absolute_url
from conformance.smart.signing import SigningKey, UnusableKey, load_signing_key

DEFAULT_APP_SCOPE = "launch/patient openid fhirUser offline_access patient/Patient.rs"
DEFAULT_BACKEND_SCOPE = "system/Patient.rs"
APP_FLAGS = ("--smart-client-id", "--smart-redirect-uri", "--smart-user", "--smart-password-env",
             "--smart-patient")
BACKEND_FLAGS = ("--smart-backend-client-id", "--smart-backend-key", "--smart-backend-kid")


class OptionsError(ValueError):
    """The SMART options cannot be used as given; the message says which and why."""


@dataclass(frozen=True, slots=True)
class SmartArguments:
    """The SMART options as the command line gave them (None: not given)."""

    client_id: str | None = None
    redirect_uri: str | None = None
    user: str | None = None
    password_env: str | None = None
    patient: str | None = None
    scope: str = DEFAULT_APP_SCOPE
    backend_client_id: str | None = None
    backend_key: Path | None = None
    backend_kid: str | None = None
    backend_scope: str = DEFAULT_BACKEND_SCOPE


@dataclass(frozen=True, slots=True)
class AppLaunchOptions:
    """A public app registered with ``redirect_uri``, and a user able to read ``patient``."""

    client_id: str
    redirect_uri: str
    user: str
    password: str = field(repr=False)
    patient: str
    scope: str


@dataclass(frozen=True, slots=True)
class BackendOptions:
    """A backend client, the private key of its registered JWKS and that key's ``kid``."""

    client_id: str
    key: SigningKey = field(repr=False)
    kid: str
    scope: str


@dataclass(frozen=True, slots=True)
class SmartOptions:
    """The parts of the ``smart`` group that can run (at least one)."""

    app: AppLaunchOptions | None
    backend: BackendOptions | None

    @property
    def secrets(self) -> tuple[str, ...]:
        """What the kit must never print."""
        return (self.app.password,) if self.app else ()


def smart_options(arguments: SmartArguments, *,
                  environ: Mapping[str, str]) -> SmartOptions | None:
    """The usable options, None when no SMART option is given; OptionsError for a part given
    only in part, an unset password variable, a relative redirect URI or an unusable key."""
    app = _app_options(arguments, environ) if _given(arguments, APP_FLAGS) else None
    backend = _backend_options(arguments) if _given(arguments, BACKEND_FLAGS) else None
    if app is None and backend is None:
        return None
    return SmartOptions(app=app, backend=backend)


def _attribute(flag: str) -> str:
    """``--smart-backend-kid`` -> ``backend_kid``."""
    return flag.removeprefix("--smart-").replace("-", "_")


def _given(arguments: SmartArguments, flags: tuple[str, ...]) -> bool:
    """Whether any of ``flags`` is given; OptionsError when some but not all are."""
    missing = [flag for flag in flags if getattr(arguments, _attribute(flag)) in (None, "")]
    if len(missing) == len(flags):
        return False
    if missing:
        raise OptionsError(f"{', '.join(flags)} go together: {', '.join(missing)} missing")
    return True


def _app_options(arguments: SmartArguments, environ: Mapping[str, str]) -> AppLaunchOptions:
    variable = str(arguments.password_env)
    password = environ.get(variable, "")
    if not password:
        raise OptionsError(f"${variable} (--smart-password-env) is not set: it holds the "
                           "password of --smart-user")
    if not is_absolute_url(arguments.redirect_uri):
        raise OptionsError("--smart-redirect-uri must be an absolute http(s) URL, exactly as "
                           "registered for --smart-client-id")
    return AppLaunchOptions(client_id=str(arguments.client_id),
                            redirect_uri=str(arguments.redirect_uri), user=str(arguments.user),
                            password=password, patient=str(arguments.patient),
                            scope=" ".join(arguments.scope.split()))


def _backend_options(arguments: SmartArguments) -> BackendOptions:
    path = Path(str(arguments.backend_key))
    try:
        key = load_signing_key(path.read_bytes())
    except OSError as error:
        raise OptionsError(f"--smart-backend-key {path} cannot be read: "
                           f"{error.strerror or error}") from error
    except UnusableKey as error:
        raise OptionsError(f"--smart-backend-key {path}: {error}") from error
    return BackendOptions(client_id=str(arguments.backend_client_id), key=key,
                          kid=str(arguments.backend_kid),
                          scope=" ".join(arguments.backend_scope.split()))
