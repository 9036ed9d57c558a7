"""Registration creates valid FHIR records through a real engine, and a medical director's
verification makes a doctor's role active in a tier."""

from __future__ import annotations

import pytest

from fhir_server.access.principal import Principal
from fhir_server.accounts.directory import (
    FINESS_SYSTEM,
    IDNPS_SYSTEM,
    PROFILES,
    RPPS_SYSTEM,
    TIER_SYSTEM,
)
from fhir_server.accounts.model import AccountError
from tests.unit.accounts.conftest import (
    OTHER_FINESS,
    PHARMACY_FINESS,
    RPPS,
    Harness,
    doctor,
    pharmacist,
    token_in,
    verified,
)

DIRECTOR = Principal(role="medical-director", subject="director-1")


def identifier(resource: dict[str, object], system: str) -> str | None:
    for item in resource.get("identifier", []):  # type: ignore[attr-defined]
        if item.get("system") == system:
            return str(item["value"])
    return None


async def test_a_pharmacist_gets_a_pharmacy_a_practitioner_and_an_active_role(
        harness: Harness) -> None:
    account = await harness.service.register(pharmacist())
    assert account.status == "pending-verification"
    assert account.practitioner and account.practitioner_role and account.organization
    pharmacy = await harness.resource(account.organization)
    assert identifier(pharmacy, FINESS_SYSTEM) == PHARMACY_FINESS
    assert pharmacy["name"] == "Pharmacie du Centre"
    assert pharmacy["meta"]["profile"] == [PROFILES + "pictaderm-pharmacy"]
    role = await harness.resource(account.practitioner_role)
    assert role["active"] is True
    assert role["code"][0]["coding"][0]["code"] == "pharmacist"
    assert role["organization"]["reference"] == account.organization
    assert role["practitioner"]["reference"] == account.practitioner
    practitioner = await harness.resource(account.practitioner)
    assert practitioner["name"] == [{"family": "Dubois", "given": ["Claire"]}]


async def test_pharmacists_of_one_pharmacy_share_its_organization(harness: Harness) -> None:
    first = await harness.service.register(pharmacist())
    second = await harness.service.register(pharmacist("marc@pharmacie.example",
                                                       pharmacy_name=None))
    assert second.organization == first.organization
    found = await harness.engine.search(base_url="http://x/fhir", resource_type="Organization",
                                        params=[("identifier",
                                                 f"{FINESS_SYSTEM}|{PHARMACY_FINESS}")])
    assert found["total"] == 1


async def test_a_new_pharmacy_needs_its_name_and_nothing_is_left_behind(
        harness: Harness) -> None:
    with pytest.raises(AccountError) as refused:
        await harness.service.register(pharmacist(finess=OTHER_FINESS, pharmacy_name=None))
    assert (refused.value.code, refused.value.status) == ("pharmacy-name-required", 422)
    assert await harness.accounts.by_email("claire@pharmacie.example") is None
    account = await harness.service.register(pharmacist(finess=OTHER_FINESS,
                                                        pharmacy_name="Pharmacie du Port"))
    assert account.organization is not None


async def test_a_malformed_finess_is_refused_before_anything_is_written(
        harness: Harness) -> None:
    with pytest.raises(AccountError) as refused:
        await harness.service.register(pharmacist(finess="950012345"))
    assert (refused.value.code, refused.value.status) == ("invalid-finess", 422)
    assert "FINESS" in refused.value.message_fr and "FINESS" in refused.value.message_en
    found = await harness.engine.search(base_url="http://x/fhir", resource_type="Organization",
                                        params=[])
    assert found["total"] == 0


async def test_a_doctor_gets_rpps_identifiers_and_a_role_awaiting_verification(
        harness: Harness) -> None:
    account_id = await verified(harness, doctor())
    account = await harness.accounts.get(account_id)
    assert account is not None and account.practitioner and account.practitioner_role
    practitioner = await harness.resource(account.practitioner)
    assert identifier(practitioner, RPPS_SYSTEM) == RPPS
    assert identifier(practitioner, IDNPS_SYSTEM) == "8" + RPPS
    assert practitioner["meta"]["profile"] == [PROFILES + "pictaderm-practitioner"]
    role = await harness.resource(account.practitioner_role)
    assert role["active"] is False
    assert "code" not in role
    principal = await harness.service.principal_of(account_id)
    assert principal is not None and principal.role == "doctor" and principal.tier is None
    assert principal.practitioner_role == account.practitioner_role


@pytest.mark.parametrize("rpps", ["10987654324", "1098765432", "1098765432a"])
async def test_a_malformed_rpps_is_refused(harness: Harness, rpps: str) -> None:
    with pytest.raises(AccountError) as refused:
        await harness.service.register(doctor(rpps=rpps))
    assert (refused.value.code, refused.value.status) == ("invalid-rpps", 422)
    found = await harness.engine.search(base_url="http://x/fhir", resource_type="Practitioner",
                                        params=[])
    assert found["total"] == 0
    assert await harness.accounts.by_email("julien@cabinet.example") is None


async def test_an_rpps_belongs_to_one_account(harness: Harness) -> None:
    await harness.service.register(doctor())
    with pytest.raises(AccountError) as refused:
        await harness.service.register(doctor("other@cabinet.example"))
    assert (refused.value.code, refused.value.status) == ("rpps-taken", 409)


async def test_an_email_belongs_to_one_account_whatever_its_case(harness: Harness) -> None:
    await harness.service.register(pharmacist())
    with pytest.raises(AccountError) as refused:
        await harness.service.register(pharmacist(" Claire@Pharmacie.EXAMPLE "))
    assert (refused.value.code, refused.value.status) == ("email-taken", 409)


async def test_a_medical_director_verifies_a_doctor_in_a_tier(harness: Harness) -> None:
    account_id = await verified(harness, doctor())
    assert await harness.service.by_rpps(RPPS) is None
    account = await harness.service.verify_doctor(account_id, "tier-2", DIRECTOR)
    assert account.tier == "tier-2"
    assert account.practitioner_role is not None
    role = await harness.resource(account.practitioner_role)
    assert role["active"] is True
    assert role["code"] == [{"coding": [{"system": TIER_SYSTEM, "code": "tier-2",
                                         "display": role["code"][0]["coding"][0]["display"]}]}]
    assert PROFILES + "pictaderm-practitioner-role" in role["meta"]["profile"]
    principal = await harness.service.principal_of(account_id)
    assert principal is not None and principal.tier == "tier-2"
    user = await harness.service.by_rpps(RPPS)
    assert user is not None and user.account_id == account_id
    assert user.principal.tier == "tier-2"
    email = await harness.last_email()
    assert email.kind == "doctor-verified" and "Médecin généraliste formé" in email.text


async def test_only_a_medical_director_verifies_and_only_doctors(harness: Harness) -> None:
    doctor_id = await verified(harness, doctor())
    pharmacist_id = await verified(harness, pharmacist())
    admin = Principal(role="admin", subject="admin-1")
    with pytest.raises(AccountError) as refused:
        await harness.service.verify_doctor(doctor_id, "tier-1", admin)
    assert refused.value.status == 403
    with pytest.raises(AccountError) as refused:
        await harness.service.verify_doctor(pharmacist_id, "tier-1", DIRECTOR)
    assert (refused.value.code, refused.value.status) == ("not-a-doctor", 409)
    with pytest.raises(AccountError) as refused:
        await harness.service.verify_doctor(doctor_id, "tier-9", DIRECTOR)
    assert (refused.value.code, refused.value.status) == ("invalid-tier", 422)
    with pytest.raises(AccountError) as refused:
        await harness.service.verify_doctor("unknown", "tier-1", DIRECTOR)
    assert refused.value.status == 404


async def test_registration_emails_a_verification_link_under_the_public_root(
        harness: Harness) -> None:
    await harness.service.register(pharmacist())
    email = await harness.last_email()
    assert email.kind == "verify-email" and email.to == "claire@pharmacie.example"
    assert f"https://pictaderm.example/accounts/verify-email?token={token_in(email)}" in (
        email.text)


async def test_the_configured_root_wins_over_the_request_s(harness: Harness) -> None:
    await harness.service.register(pharmacist(), link_root="http://attacker.example")
    email = await harness.last_email()
    assert "attacker" not in email.text
    assert "https://pictaderm.example/accounts/verify-email?token=" in email.text
