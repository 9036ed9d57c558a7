"""The ``smart`` group's options: each part whole or absent, the password from the environment,
the key file read and checked at start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import ECKey

from conformance.smart.options import (
    DEFAULT_APP_SCOPE,
    OptionsError,
    SmartArguments,
    smart_options,
)

APP: dict[str, Any] = {"client_id": "app-1", "redirect_uri": "https://app.example/cb",
                       "user": "a@b.fr", "password_env": "SMART_PW", "patient": "p-1"}
ENVIRONMENT = {"SMART_PW": "pass-word-1"}


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "backend.pem"
    path.write_bytes(ECKey.generate_key("P-384").as_pem(private=True))
    return path


def backend(key_file: Path) -> dict[str, Any]:
    return {"backend_client_id": "sys-1", "backend_key": key_file, "backend_kid": "k1"}


def test_no_smart_option_means_no_smart_group() -> None:
    assert smart_options(SmartArguments(), environ=ENVIRONMENT) is None


def test_both_parts_from_complete_options(key_file: Path) -> None:
    options = smart_options(SmartArguments(**APP, **backend(key_file),
                                           scope="  openid   launch/patient "),
                            environ=ENVIRONMENT)
    assert options is not None and options.app is not None and options.backend is not None
    assert options.app.password == "pass-word-1" and options.app.scope == "openid launch/patient"
    assert options.backend.key.algorithm == "ES384" and options.backend.kid == "k1"
    assert options.secrets == ("pass-word-1",)
    assert "pass-word-1" not in repr(options)


def test_the_backend_part_alone(key_file: Path) -> None:
    options = smart_options(SmartArguments(**backend(key_file)),
                            environ={})
    assert options is not None and options.app is None and options.secrets == ()
    assert options.backend is not None and options.backend.scope == "system/Patient.rs"
    assert SmartArguments().scope == DEFAULT_APP_SCOPE


@pytest.mark.parametrize(("given", "message"), [
    ({"client_id": "app-1"}, "--smart-redirect-uri, --smart-user, --smart-password-env, "
                             "--smart-patient missing"),
    ({"backend_client_id": "sys-1"}, "--smart-backend-key, --smart-backend-kid missing"),
    ({**APP, "password_env": "UNSET_VARIABLE"}, r"\$UNSET_VARIABLE"),
    ({**APP, "redirect_uri": "/callback"}, "absolute"),
    ({"backend_client_id": "s", "backend_key": Path("/nonexistent/key.pem"),
      "backend_kid": "k"}, "cannot be read"),
])
def test_unusable_options_are_named(given: dict[str, Any], message: str) -> None:
    with pytest.raises(OptionsError, match=message):
        smart_options(SmartArguments(**given), environ=ENVIRONMENT)


def test_a_file_that_is_not_a_private_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text('{"keys": []}')
    with pytest.raises(OptionsError, match=r"jwks\.json: the file is not a PEM"):
        smart_options(SmartArguments(backend_client_id="s", backend_key=path, backend_kid="k"),
                      environ={})
