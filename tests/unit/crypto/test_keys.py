"""Key loading: the environment key, the development key file, refusals that never echo a key."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr

from fhir_server.crypto import ConfigurationError, KeyMaterial, load_keys
from fhir_server.settings import Mode, Settings


def _settings(mode: Mode, data_dir: Path, key: str | None = None) -> Settings:
    return Settings(mode=mode, data_dir=data_dir,
                    encryption_key=None if key is None else SecretStr(key))


def _key_file(data_dir: Path) -> Path:
    return data_dir / "keys" / "encryption.key"


def test_configured_key_is_used_and_no_key_file_is_written(tmp_path: Path) -> None:
    raw = os.urandom(32)
    keys = load_keys(_settings(Mode.PRODUCTION, tmp_path, base64.b64encode(raw).decode()))
    assert keys.data_key == raw
    assert not _key_file(tmp_path).exists()


def test_url_safe_base64_key_is_accepted(tmp_path: Path) -> None:
    raw = b"\xfb\xff" * 16  # encodes with '+' and '/' in the standard alphabet
    keys = load_keys(_settings(Mode.PRODUCTION, tmp_path, base64.urlsafe_b64encode(raw).decode()))
    assert keys.data_key == raw


def test_blind_key_is_derived_from_the_data_key_by_hkdf(tmp_path: Path) -> None:
    raw = os.urandom(32)
    expected = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                    info=b"pictaderm blind index v1").derive(raw)
    keys = load_keys(_settings(Mode.DEVELOPMENT, tmp_path, base64.b64encode(raw).decode()))
    assert keys.blind_key == expected
    assert keys.blind_key != keys.data_key


def test_development_creates_a_private_key_file_and_reuses_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = load_keys(_settings(Mode.DEVELOPMENT, data_dir))
    key_file = _key_file(data_dir)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert base64.b64decode(key_file.read_text()) == first.data_key
    assert [p.name for p in key_file.parent.iterdir()] == ["encryption.key"]  # no temp left

    second = load_keys(_settings(Mode.DEVELOPMENT, data_dir))
    assert second == first


def test_development_keys_differ_between_data_dirs(tmp_path: Path) -> None:
    one = load_keys(_settings(Mode.DEVELOPMENT, tmp_path / "one"))
    two = load_keys(_settings(Mode.DEVELOPMENT, tmp_path / "two"))
    assert one.data_key != two.data_key


def test_production_without_a_key_refuses_without_revealing_one(tmp_path: Path) -> None:
    dev_keys = load_keys(_settings(Mode.DEVELOPMENT, tmp_path))
    dev_encoded = _key_file(tmp_path).read_text().strip()

    with pytest.raises(ConfigurationError) as raised:
        load_keys(_settings(Mode.PRODUCTION, tmp_path))

    message = str(raised.value)
    assert message.startswith("FHIR_SERVER_ENCRYPTION_KEY is required in production")
    assert dev_encoded not in message
    assert dev_keys.data_key.hex() not in message


def test_production_with_an_empty_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="required in production"):
        load_keys(_settings(Mode.PRODUCTION, tmp_path, "   "))


@pytest.mark.parametrize("bad_key", [
    "this is not base64 at all!",
    base64.b64encode(b"sixteen byte key").decode(),           # AES-128 length
    base64.b64encode(bytes(range(33))).decode(),
    "é" * 44,
])
def test_malformed_key_is_refused_without_echoing_it(tmp_path: Path, bad_key: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_keys(_settings(Mode.PRODUCTION, tmp_path, bad_key))

    message = str(raised.value)
    assert "FHIR_SERVER_ENCRYPTION_KEY" in message
    assert bad_key not in message
    assert bad_key.strip()[:8] not in message
    error = raised.value
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__  # no chained decoder error


def test_corrupt_development_key_file_is_refused_not_replaced(tmp_path: Path) -> None:
    key_file = _key_file(tmp_path)
    key_file.parent.mkdir(mode=0o700)
    key_file.write_text("c2hvcnQ=\n")  # base64 of b"short"

    with pytest.raises(ConfigurationError) as raised:
        load_keys(_settings(Mode.DEVELOPMENT, tmp_path))

    assert str(key_file) in str(raised.value)
    assert "c2hvcnQ" not in str(raised.value)
    assert key_file.read_text() == "c2hvcnQ=\n"


def test_key_material_repr_hides_the_keys() -> None:
    keys = KeyMaterial.from_data_key(bytes(range(32)))
    assert repr(keys) == "KeyMaterial()"


def test_key_material_rejects_short_keys() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        KeyMaterial(data_key=b"x" * 16, blind_key=b"y" * 32)
