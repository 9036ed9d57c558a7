"""The account service's flows: verification, sign-in and lock-out, password reset, deletion
request, warnings, suspensions that end by themselves, terminations, operators' accounts."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from argon2 import PasswordHasher

from fhir_server.accounts.model import AccountError
from fhir_server.accounts.passwords import Passwords
from fhir_server.accounts.service import NewUser
from fhir_server.auth.users import SignInRefused, UserDirectory
from tests.unit.accounts.conftest import (
    PASSWORD,
    PHARMACY_FINESS,
    RPPS,
    Harness,
    HarnessFactory,
    doctor,
    pharmacist,
    token_in,
    verified,
)

ADDRESS = "203.0.113.9"
EMAIL = "claire@pharmacie.example"


async def refusal(harness: Harness, password: str = PASSWORD, *, email: str = EMAIL,
                  address: str = ADDRESS) -> SignInRefused:
    with pytest.raises(SignInRefused) as refused:
        await harness.service.sign_in(email, password, address=address)
    return refused.value


def test_the_service_is_a_user_directory(harness: Harness) -> None:
    directory: UserDirectory = harness.service
    assert directory is harness.service


async def test_an_account_signs_in_once_its_email_is_verified(harness: Harness) -> None:
    account = await harness.service.register(pharmacist())
    assert (await refusal(harness)).code == "unverified"
    assert await harness.service.principal_of(account.account_id) is None
    active = await harness.service.verify_email(token_in(await harness.last_email()))
    assert active.status == "active" and active.email_verified_at is not None
    user = await harness.service.sign_in(" Claire@Pharmacie.example", PASSWORD,
                                         address=ADDRESS)
    assert user.account_id == account.account_id and user.email == EMAIL
    assert user.principal.role == "pharmacist"
    assert user.principal.organization == account.organization
    assert user.principal.practitioner_role == account.practitioner_role
    assert (await harness.last_email()).kind == "email-verified"


async def test_a_verification_link_works_once_and_expires(
        make_harness: HarnessFactory) -> None:
    harness = await make_harness(email_verification_seconds=3600)
    await harness.service.register(pharmacist())
    token = token_in(await harness.last_email())
    await harness.service.verify_email(token)
    with pytest.raises(AccountError) as refused:
        await harness.service.verify_email(token)
    assert (refused.value.code, refused.value.status) == ("invalid-token", 400)
    await harness.service.register(doctor())
    late = token_in(await harness.last_email())
    harness.clock.advance(hours=1)
    with pytest.raises(AccountError):
        await harness.service.verify_email(late)


async def test_unknown_email_and_wrong_password_get_the_same_refusal(harness: Harness) -> None:
    await verified(harness, pharmacist())
    unknown = await refusal(harness, email="nobody@pharmacie.example")
    wrong = await refusal(harness, "wrong password!!", address="198.51.100.7")
    assert (unknown.code, unknown.message_en, unknown.message_fr) == (
        wrong.code, wrong.message_en, wrong.message_fr)
    assert wrong.code == "invalid-credentials" and wrong.retry_after is None


async def test_repeated_failures_lock_the_account_then_the_lock_ends(harness: Harness) -> None:
    await verified(harness, pharmacist())
    for attempt in range(3):
        await refusal(harness, "wrong password!!", address=f"198.51.100.{attempt}")
    locked = await refusal(harness, address="198.51.100.99")
    assert locked.code == "locked" and locked.retry_after == 300
    assert "5 minute" in locked.message_en and "5 minute" in locked.message_fr
    harness.clock.advance(seconds=120)
    assert (await refusal(harness)).retry_after == 180
    other_process = harness.service_again()
    with pytest.raises(SignInRefused):
        await other_process.sign_in(EMAIL, PASSWORD, address=ADDRESS)
    harness.clock.advance(seconds=180)
    user = await harness.service.sign_in(EMAIL, PASSWORD, address=ADDRESS)
    assert user.email == EMAIL


async def test_one_address_failing_on_many_accounts_is_locked_out(harness: Harness) -> None:
    await verified(harness, pharmacist())
    for index in range(3):
        await refusal(harness, email=f"guess{index}@pharmacie.example")
    assert (await refusal(harness)).code == "locked"
    user = await harness.service.sign_in(EMAIL, PASSWORD, address="198.51.100.1")
    assert user.email == EMAIL


async def test_a_success_forgets_the_account_failures(harness: Harness) -> None:
    await verified(harness, pharmacist())
    for attempt in range(2):
        await refusal(harness, "wrong password!!", address=f"198.51.100.{attempt}")
    await harness.service.sign_in(EMAIL, PASSWORD, address="198.51.100.50")
    for attempt in range(2):
        await refusal(harness, "wrong password!!", address=f"198.51.100.{10 + attempt}")
    assert (await harness.service.sign_in(EMAIL, PASSWORD, address="198.51.100.51")).email


async def test_a_hash_with_old_costs_is_renewed_at_sign_in(harness: Harness) -> None:
    account_id = await verified(harness, pharmacist())
    old = Passwords(PasswordHasher(time_cost=1, memory_cost=2048, parallelism=1))
    account = await harness.accounts.get(account_id)
    assert account is not None
    await harness.accounts.replace(replace(account, password_hash=await old.hash(PASSWORD),
                                           version=account.version + 1))
    await harness.service.sign_in(EMAIL, PASSWORD, address=ADDRESS)
    renewed = await harness.accounts.get(account_id)
    assert renewed is not None and "m=1024" in renewed.password_hash


async def test_a_password_reset_link_sets_a_new_password_once(harness: Harness) -> None:
    await verified(harness, pharmacist())
    await harness.service.request_password_reset(EMAIL, address=ADDRESS)
    email = await harness.last_email()
    assert email.kind == "reset-password"
    assert "https://pictaderm.example/accounts/reset-password?token=" in email.text
    token = token_in(email)
    await harness.service.reset_password(token, "a brand new passphrase")
    assert (await harness.last_email()).kind == "password-changed"
    assert (await refusal(harness)).code == "invalid-credentials"
    user = await harness.service.sign_in(EMAIL, "a brand new passphrase", address="198.51.100.3")
    assert user.email == EMAIL
    with pytest.raises(AccountError) as refused:
        await harness.service.reset_password(token, "yet another passphrase")
    assert refused.value.code == "invalid-token"


async def test_a_weak_new_password_does_not_spend_the_link(harness: Harness) -> None:
    await verified(harness, pharmacist())
    await harness.service.request_password_reset(EMAIL, address=ADDRESS)
    token = token_in(await harness.last_email())
    with pytest.raises(AccountError) as refused:
        await harness.service.reset_password(token, EMAIL)
    assert (refused.value.code, refused.value.status) == ("weak-password", 422)
    with pytest.raises(AccountError):
        await harness.service.reset_password(token, "short")
    await harness.service.reset_password(token, "a brand new passphrase")


async def test_a_reset_link_expires_and_a_newer_one_replaces_it(
        make_harness: HarnessFactory) -> None:
    harness = await make_harness(password_reset_seconds=600)
    await verified(harness, pharmacist())
    await harness.service.request_password_reset(EMAIL, address=ADDRESS)
    first = token_in(await harness.last_email())
    await harness.service.request_password_reset(EMAIL, address=ADDRESS)
    second = token_in(await harness.last_email())
    with pytest.raises(AccountError):
        await harness.service.reset_password(first, "a brand new passphrase")
    harness.clock.advance(seconds=600)
    with pytest.raises(AccountError):
        await harness.service.reset_password(second, "a brand new passphrase")


async def test_a_reset_for_an_unknown_email_answers_the_same_and_sends_nothing(
        harness: Harness) -> None:
    await verified(harness, pharmacist())
    before = len(await harness.emails())
    await harness.service.request_password_reset("nobody@pharmacie.example", address=ADDRESS)
    assert len(await harness.emails()) == before
    await harness.service.request_password_reset(EMAIL, address="198.51.100.4")
    assert len(await harness.emails()) == before + 1


async def test_a_reset_confirms_an_unverified_email_and_lifts_the_lock_out(
        harness: Harness) -> None:
    await harness.service.register(pharmacist())
    for attempt in range(3):
        await refusal(harness, "wrong password!!", address=f"198.51.100.{attempt}")
    await harness.service.request_password_reset(EMAIL, address=ADDRESS)
    account = await harness.service.reset_password(token_in(await harness.last_email()),
                                                   "a brand new passphrase")
    assert account.status == "active"
    assert (await harness.service.sign_in(EMAIL, "a brand new passphrase",
                                          address="198.51.100.60")).email == EMAIL


async def test_reset_requests_are_throttled(harness: Harness) -> None:
    for _ in range(3):
        await harness.service.request_password_reset("nobody@pharmacie.example",
                                                     address=ADDRESS)
    with pytest.raises(AccountError) as refused:
        await harness.service.request_password_reset("someone@pharmacie.example",
                                                     address=ADDRESS)
    assert (refused.value.status, refused.value.retry_after) == (429, 300)


async def test_a_suspension_stops_the_account_until_its_end(harness: Harness) -> None:
    account_id = await verified(harness, pharmacist())
    until = harness.clock.now + timedelta(days=3)
    account = await harness.service.suspend(account_id, until, "Photos hors sujet")
    assert account.status == "suspended" and harness.disabled == [account_id]
    assert await harness.service.principal_of(account_id) is None
    refused = await refusal(harness)
    assert refused.code == "suspended"
    assert until.strftime("%Y-%m-%d") in refused.message_en
    assert until.strftime("%d/%m/%Y") in refused.message_fr
    email = await harness.last_email()
    assert email.kind == "suspended" and "Photos hors sujet" in email.text
    harness.clock.advance(days=3)
    assert await harness.service.principal_of(account_id) is not None
    assert (await harness.service.sign_in(EMAIL, PASSWORD, address=ADDRESS)).email == EMAIL


async def test_a_suspension_ends_in_the_future_and_needs_a_reason(harness: Harness) -> None:
    account_id = await verified(harness, pharmacist())
    with pytest.raises(AccountError) as refused:
        await harness.service.suspend(account_id, harness.clock.now, "late")
    assert (refused.value.code, refused.value.status) == ("suspension-in-past", 422)
    with pytest.raises(AccountError) as refused:
        await harness.service.suspend(account_id, harness.clock.now + timedelta(days=1), "  ")
    assert refused.value.code == "reason-required"
    assert harness.disabled == []


async def test_a_termination_is_final(harness: Harness) -> None:
    account_id = await verified(harness, pharmacist())
    await harness.service.terminate(account_id, "Usage frauduleux")
    assert harness.disabled == [account_id]
    assert await harness.service.principal_of(account_id) is None
    assert (await refusal(harness)).code == "terminated"
    email = await harness.last_email()
    assert email.kind == "terminated" and "Usage frauduleux" in email.text
    with pytest.raises(AccountError) as refused:
        await harness.service.terminate(account_id, "again")
    assert refused.value.status == 409
    with pytest.raises(AccountError) as refused:
        await harness.service.suspend(account_id, harness.clock.now + timedelta(days=1), "x")
    assert refused.value.code == "cannot-suspend"
    await harness.service.request_password_reset(EMAIL, address=ADDRESS)
    assert (await harness.last_email()).kind == "terminated"


async def test_warnings_are_counted_and_emailed(harness: Harness) -> None:
    account_id = await verified(harness, pharmacist())
    await harness.service.warn(account_id, "Demande incomplète")
    account = await harness.service.warn(account_id, "Photos floues")
    assert account.warnings == 2 and account.last_warning_reason == "Photos floues"
    assert account.last_warning_at == harness.clock.now
    assert account.status == "active" and harness.disabled == []
    email = await harness.last_email()
    assert email.kind == "warning" and "Photos floues" in email.text
    with pytest.raises(AccountError) as refused:
        await harness.service.warn("unknown", "x")
    assert refused.value.status == 404


async def test_a_deletion_request_disables_the_account(harness: Harness) -> None:
    account_id = await verified(harness, doctor())
    account = await harness.service.request_deletion(account_id)
    assert account.status == "deletion-requested" and harness.disabled == [account_id]
    assert await harness.service.principal_of(account_id) is None
    assert (await refusal(harness, email="julien@cabinet.example")).code == "deletion-requested"
    assert (await harness.last_email()).kind == "deletion-requested"
    with pytest.raises(AccountError):
        await harness.service.request_deletion(account_id)


async def test_every_state_change_is_emailed(harness: Harness) -> None:
    account_id = await verified(harness, pharmacist())
    await harness.service.warn(account_id, "x")
    await harness.service.suspend(account_id, harness.clock.now + timedelta(days=1), "y")
    await harness.service.terminate(account_id, "z")
    kinds = [email.kind for email in await harness.emails()]
    assert kinds == ["verify-email", "email-verified", "warning", "suspended", "terminated"]
    assert {email.to for email in await harness.emails()} == {EMAIL}


async def test_operators_create_verified_accounts(harness: Harness) -> None:
    assert await harness.service.has_admin() is False
    admin = await harness.service.create_user(NewUser(email="ops@pictaderm.example",
                                                      role="admin", password=PASSWORD))
    assert admin.status == "active" and admin.practitioner is None
    assert await harness.service.has_admin() is True
    user = await harness.service.sign_in("ops@pictaderm.example", PASSWORD, address=ADDRESS)
    assert user.principal.role == "admin"
    assert (await harness.last_email()).kind == "account-created"


async def test_an_operator_made_medical_director_signs_in_by_rpps(harness: Harness) -> None:
    director = await harness.service.create_user(NewUser(
        email="direction@pictaderm.example", role="medical-director", password=PASSWORD,
        rpps=RPPS, family_name="Laurent", given_names=("Sophie",)))
    assert director.practitioner is not None and director.practitioner_role is None
    user = await harness.service.by_rpps(RPPS)
    assert user is not None and user.account_id == director.account_id
    assert await harness.service.by_rpps("10987654324") is None


async def test_an_operator_made_pharmacist_joins_a_pharmacy(harness: Harness) -> None:
    account = await harness.service.create_user(NewUser(
        email=EMAIL, role="pharmacist", password=PASSWORD, family_name="Dubois",
        organization_finess=PHARMACY_FINESS, pharmacy_name="Pharmacie du Centre"))
    assert account.organization is not None and account.status == "active"


@pytest.mark.parametrize(("user", "code"), [
    (NewUser(email="a@pictaderm.example", role="admin", password=PASSWORD, rpps=RPPS),
     "not-for-role"),
    (NewUser(email="a@pictaderm.example", role="doctor", password=PASSWORD,
             family_name="Moreau"), "rpps-required"),
    (NewUser(email="a@pictaderm.example", role="pharmacist", password=PASSWORD,
             family_name="Dubois"), "finess-required"),
    (NewUser(email="a@pictaderm.example", role="system", password=PASSWORD), "unknown-role"),
    (NewUser(email="not an email", role="admin", password=PASSWORD), "invalid-email"),
    (NewUser(email="a@pictaderm.example", role="admin", password="short"), "weak-password"),
])
async def test_operators_give_what_the_role_needs(harness: Harness, user: NewUser,
                                                  code: str) -> None:
    with pytest.raises(AccountError) as refused:
        await harness.service.create_user(user)
    assert (refused.value.code, refused.value.status) == (code, 422)
    assert await harness.accounts.by_email("a@pictaderm.example") is None
