"""The XDS adapter's factory and its signing material: clear refusals of an incomplete or
inconsistent configuration, never echoing key material."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from fhir_server.crypto.keys import ConfigurationError
from fhir_server.dmp.xds.adapter import source_id, xds_adapter
from fhir_server.dmp.xds.signing import load_signing_material
from fhir_server.settings import Settings
from tests.support.dmp_document import PLATFORM

STRUCTURE_ID = str(PLATFORM.id_nat_struct)


def settings(signing_pem: tuple[str, str], **changes: object) -> Settings:
    key_pem, certificate_pem = signing_pem
    values: dict[str, object] = {
        "dmp_export": "xds", "dmp_xds_url": "https://repository.example/xds",
        "dmp_signing_key": SecretStr(key_pem), "dmp_signing_certificate": certificate_pem,
        "dmp_structure_id": STRUCTURE_ID}
    values.update(changes)
    return Settings(**values)  # type: ignore[arg-type]


async def test_a_complete_configuration_gives_the_xds_route(
        signing_pem: tuple[str, str]) -> None:
    adapter = xds_adapter(settings(signing_pem))
    try:
        assert adapter.route == "xds"
    finally:
        await adapter.aclose()


@pytest.mark.parametrize("missing, variable", [
    ("dmp_xds_url", "FHIR_SERVER_DMP_XDS_URL"),
    ("dmp_signing_key", "FHIR_SERVER_DMP_SIGNING_KEY"),
    ("dmp_signing_certificate", "FHIR_SERVER_DMP_SIGNING_CERTIFICATE"),
    ("dmp_structure_id", "FHIR_SERVER_DMP_STRUCTURE_ID"),
])
def test_a_missing_setting_is_named(signing_pem: tuple[str, str], missing: str,
                                    variable: str) -> None:
    with pytest.raises(ConfigurationError, match=variable) as raised:
        xds_adapter(settings(signing_pem, **{missing: None}))
    assert "BEGIN" not in str(raised.value)


def test_a_key_that_does_not_match_its_certificate_is_refused(
        signing_pem: tuple[str, str], other_signing_pem: tuple[str, str]) -> None:
    with pytest.raises(ConfigurationError, match="does not match") as raised:
        xds_adapter(settings(signing_pem, dmp_signing_certificate=other_signing_pem[1]))
    assert signing_pem[0].splitlines()[1] not in str(raised.value)


def test_text_that_is_not_pem_is_refused_without_being_echoed() -> None:
    with pytest.raises(ConfigurationError, match="not an unencrypted PEM") as raised:
        load_signing_material("secret-looking-text", "whatever")
    assert "secret-looking-text" not in str(raised.value)


def test_a_url_that_is_not_http_is_refused(signing_pem: tuple[str, str]) -> None:
    with pytest.raises(ConfigurationError, match="http"):
        xds_adapter(settings(signing_pem, dmp_xds_url="ftp://repository.example"))


def test_the_source_id_is_a_stable_oid_of_the_structure() -> None:
    assert source_id(STRUCTURE_ID) == source_id(STRUCTURE_ID)
    assert source_id(STRUCTURE_ID) != source_id("1750000000")
    assert source_id(STRUCTURE_ID).startswith("2.25.")
    assert source_id(STRUCTURE_ID).replace(".", "").isdigit()
