"""Pro Santé Connect sign-in against a loopback PSC stand-in: the full round trip, the sealed
pending sign-in, and every refusal (state, nonce, expired or forged ID token, audience, acr,
PKCE, unknown or unverified practitioner)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc.jwk import RSAKey
from pydantic import SecretStr

from fhir_server.access.principal import Principal
from fhir_server.auth.pkce import s256_challenge
from fhir_server.auth.pro_sante_connect import (
    PendingSignIn,
    ProSanteConnect,
    PscClientConfig,
    PscSignInRefused,
    basic_authorization,
    rpps_of,
    safe_return_path,
)
from fhir_server.auth.psc_pending import open_pending, seal_pending
from fhir_server.auth.users import SignedInUser, SignInRefused
from fhir_server.settings import Settings
from tests.support.psc_provider import (
    DISCOVERY_PATH,
    JWKS_PATH,
    TOKEN_PATH,
    USERINFO_PATH,
    PscBehaviour,
    PscPractitioner,
    PscProvider,
    authorize,
    psc_signing_key,
    running_psc_provider,
)

CLIENT_ID = "pictaderm-test"
CLIENT_SECRET = "s3cret:with/odd chars"
CALLBACK = "http://127.0.0.1:8000/auth/psc/callback"
COOKIE_KEY = b"k" * 32
DOCTOR_RPPS = "10101010103"
DIRECTOR_RPPS = "10000000016"
UNVERIFIED_RPPS = "10000000024"
PHARMACIST_RPPS = "10000000032"

DOCTOR = SignedInUser(account_id="acc-doctor", email="dr.martin@example.org",
                      principal=Principal(role="doctor", subject="acc-doctor",
                                          practitioner="Practitioner/7",
                                          practitioner_role="PractitionerRole/8", tier="tier-2"))
DIRECTOR = SignedInUser(account_id="acc-director", email="direction@example.org",
                        principal=Principal(role="medical-director", subject="acc-director",
                                            practitioner="Practitioner/9"))
UNVERIFIED = SignedInUser(account_id="acc-new", email="dr.new@example.org",
                          principal=Principal(role="doctor", subject="acc-new",
                                              practitioner="Practitioner/10"))
PHARMACIST = SignedInUser(account_id="acc-pharma", email="officine@example.org",
                          principal=Principal(role="pharmacist", subject="acc-pharma",
                                              organization="Organization/3"))
ACCOUNTS = {DOCTOR_RPPS: DOCTOR, DIRECTOR_RPPS: DIRECTOR, UNVERIFIED_RPPS: UNVERIFIED,
            PHARMACIST_RPPS: PHARMACIST}


async def find_by_rpps(rpps: str) -> SignedInUser | None:
    return ACCOUNTS.get(rpps)


def practitioner(rpps: str = DOCTOR_RPPS) -> PscPractitioner:
    return PscPractitioner(id_nat_ps="8" + rpps, given_name="CLAIRE", family_name="MARTIN",
                           organization="CABINET DU DR MARTIN", profession="10",
                           specialty="SM15", subject=f"f:0d4e-test:8{rpps}")


@pytest.fixture(scope="module")
def psc_key() -> RSAKey:
    return psc_signing_key("psc-1")


@pytest.fixture(scope="module")
def forger_key() -> RSAKey:
    return psc_signing_key("psc-1")


@pytest.fixture
def provider(psc_key: RSAKey) -> Iterator[PscProvider]:
    behaviour = PscBehaviour(client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                             redirect_uris=frozenset({CALLBACK}), practitioner=practitioner(),
                             signing_key=psc_key)
    with running_psc_provider(behaviour) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """One client for every call: a new httpx client per call costs a TLS context each."""
    async with httpx.AsyncClient(follow_redirects=False) as client:
        yield client


@pytest.fixture
def psc(provider: PscProvider, http: httpx.AsyncClient) -> ProSanteConnect:
    return ProSanteConnect(PscClientConfig(issuer=provider.issuer, client_id=CLIENT_ID,
                                           client_secret=CLIENT_SECRET), http=http)


async def go_through_psc(psc: ProSanteConnect,
                         return_to: str = "/") -> tuple[PendingSignIn, dict[str, str]]:
    """Start a sign-in and let the browser visit PSC: the pending sign-in and the callback."""
    start = await psc.begin(redirect_uri=CALLBACK, return_to=return_to)
    return start.pending, await authorize(start.authorization_url)


async def refusal_of(psc: ProSanteConnect, pending: PendingSignIn,
                     callback: dict[str, str]) -> PscSignInRefused:
    with pytest.raises(PscSignInRefused) as caught:
        await psc.sign_in(pending, callback, find_by_rpps=find_by_rpps)
    assert caught.value.message_fr and caught.value.message_en
    return caught.value


# --- the round trip -------------------------------------------------------------------------------

async def test_round_trip_signs_the_verified_doctor_in(psc: ProSanteConnect,
                                                       provider: PscProvider) -> None:
    pending, callback = await go_through_psc(psc, return_to="/cases?status=open")
    user = await psc.sign_in(pending, callback, find_by_rpps=find_by_rpps)
    assert user == DOCTOR
    assert pending.return_to == "/cases?status=open"
    assert provider.requests(TOKEN_PATH) == 1 and provider.requests(USERINFO_PATH) == 1


async def test_authorization_url_asks_what_psc_needs(psc: ProSanteConnect,
                                                     provider: PscProvider) -> None:
    start = await psc.begin(redirect_uri=CALLBACK)
    url = urlsplit(start.authorization_url)
    query = {name: values[0] for name, values in parse_qs(url.query).items()}
    assert f"{url.scheme}://{url.netloc}{url.path}" == provider.discovery()[
        "authorization_endpoint"]
    assert query == {
        "response_type": "code", "client_id": CLIENT_ID, "redirect_uri": CALLBACK,
        "scope": "openid scope_all", "acr_values": "eidas1", "state": start.pending.state,
        "nonce": start.pending.nonce, "code_challenge_method": "S256",
        "code_challenge": s256_challenge(start.pending.code_verifier),
    }
    assert len(start.pending.code_verifier) >= 43
    again = await psc.begin(redirect_uri=CALLBACK)
    assert again.pending.state != start.pending.state
    assert again.pending.nonce != start.pending.nonce


async def test_identity_carries_psc_claims(psc: ProSanteConnect) -> None:
    pending, callback = await go_through_psc(psc)
    identity = await psc.identify(pending, callback)
    assert identity.id_nat_ps == "8" + DOCTOR_RPPS and identity.rpps == DOCTOR_RPPS
    assert identity.subject == f"f:0d4e-test:8{DOCTOR_RPPS}"
    assert (identity.given_name, identity.family_name) == ("CLAIRE", "MARTIN")
    assert identity.organization == "CABINET DU DR MARTIN"
    assert identity.professions == ("10",) and identity.specialties == ("SM15",)
    assert identity.acr == "eidas1"


async def test_medical_director_signs_in(psc: ProSanteConnect, provider: PscProvider) -> None:
    provider.behaviour.practitioner = practitioner(DIRECTOR_RPPS)
    pending, callback = await go_through_psc(psc)
    assert await psc.sign_in(pending, callback, find_by_rpps=find_by_rpps) == DIRECTOR


async def test_signed_userinfo_is_verified_and_used(psc: ProSanteConnect,
                                                    provider: PscProvider) -> None:
    provider.behaviour.signed_userinfo = True
    pending, callback = await go_through_psc(psc)
    identity = await psc.identify(pending, callback)
    assert identity.organization == "CABINET DU DR MARTIN"


async def test_discovery_and_keys_are_fetched_once(psc: ProSanteConnect,
                                                   provider: PscProvider) -> None:
    for _ in range(3):
        pending, callback = await go_through_psc(psc)
        await psc.sign_in(pending, callback, find_by_rpps=find_by_rpps)
    assert provider.requests(DISCOVERY_PATH) == 1 and psc.discovery_count == 1
    assert provider.requests(JWKS_PATH) == 1
    assert provider.requests(TOKEN_PATH) == 3


async def test_pending_sign_in_survives_a_sealed_cookie(psc: ProSanteConnect) -> None:
    pending, callback = await go_through_psc(psc, return_to="/cases/12")
    cookie = seal_pending(pending, key=COOKIE_KEY)
    assert pending.code_verifier not in cookie and pending.nonce not in cookie
    reopened = open_pending(cookie, key=COOKIE_KEY)
    assert reopened == pending
    assert await psc.sign_in(reopened, callback, find_by_rpps=find_by_rpps) == DOCTOR


# --- protocol refusals ----------------------------------------------------------------------------

async def test_wrong_state_is_refused_before_the_code_is_spent(
        psc: ProSanteConnect, provider: PscProvider) -> None:
    pending, callback = await go_through_psc(psc)
    refused = await refusal_of(psc, pending, {**callback, "state": "someone-elses"})
    assert refused.code == "psc-session-expired"
    missing = await refusal_of(psc, pending, {"code": callback["code"]})
    assert missing.code == "psc-session-expired"
    assert provider.requests(TOKEN_PATH) == 0


async def test_callback_of_another_sign_in_is_refused(psc: ProSanteConnect) -> None:
    first, _ = await go_through_psc(psc)
    _, second_callback = await go_through_psc(psc)
    assert (await refusal_of(psc, first, second_callback)).code == "psc-session-expired"


async def test_wrong_nonce_is_refused(psc: ProSanteConnect, provider: PscProvider) -> None:
    provider.behaviour.id_token_claims = {"nonce": "replayed-nonce"}
    pending, callback = await go_through_psc(psc)
    refused = await refusal_of(psc, pending, callback)
    assert refused.code == "psc-invalid-response" and "nonce" in refused.reason


async def test_missing_nonce_is_refused(psc: ProSanteConnect, provider: PscProvider) -> None:
    provider.behaviour.id_token_claims = {"nonce": None}
    pending, callback = await go_through_psc(psc)
    assert "nonce" in (await refusal_of(psc, pending, callback)).reason


async def test_expired_id_token_is_refused(psc: ProSanteConnect, provider: PscProvider) -> None:
    provider.behaviour.id_token_seconds = -600
    pending, callback = await go_through_psc(psc)
    refused = await refusal_of(psc, pending, callback)
    assert refused.code == "psc-invalid-response" and "expired" in refused.reason


async def test_id_token_signed_by_another_key_is_refused(
        psc: ProSanteConnect, provider: PscProvider, forger_key: RSAKey) -> None:
    provider.behaviour.id_token_key = forger_key
    pending, callback = await go_through_psc(psc)
    refused = await refusal_of(psc, pending, callback)
    assert refused.code == "psc-invalid-response" and "signature" in refused.reason
    assert provider.requests(USERINFO_PATH) == 0


async def test_id_token_with_an_unknown_kid_is_refused(psc: ProSanteConnect,
                                                       provider: PscProvider) -> None:
    provider.behaviour.id_token_key = psc_signing_key("not-published")
    pending, callback = await go_through_psc(psc)
    refused = await refusal_of(psc, pending, callback)
    assert refused.code == "psc-invalid-response" and "kid" in refused.reason


async def test_id_token_for_another_client_is_refused(psc: ProSanteConnect,
                                                      provider: PscProvider) -> None:
    provider.behaviour.id_token_claims = {"aud": "another-client", "azp": "another-client"}
    pending, callback = await go_through_psc(psc)
    refused = await refusal_of(psc, pending, callback)
    assert refused.code == "psc-invalid-response" and "aud" in refused.reason


async def test_audience_list_needs_us_as_authorized_party(psc: ProSanteConnect,
                                                          provider: PscProvider) -> None:
    provider.behaviour.id_token_claims = {"aud": [CLIENT_ID, "other"], "azp": "other"}
    pending, callback = await go_through_psc(psc)
    assert "azp" in (await refusal_of(psc, pending, callback)).reason


async def test_id_token_from_another_issuer_is_refused(psc: ProSanteConnect,
                                                       provider: PscProvider) -> None:
    provider.behaviour.id_token_claims = {"iss": "https://idp.example.org"}
    pending, callback = await go_through_psc(psc)
    assert "iss" in (await refusal_of(psc, pending, callback)).reason


async def test_weaker_authentication_level_is_refused(psc: ProSanteConnect,
                                                      provider: PscProvider) -> None:
    provider.behaviour.id_token_claims = {"acr": "password"}
    pending, callback = await go_through_psc(psc)
    assert "acr" in (await refusal_of(psc, pending, callback)).reason


async def test_userinfo_about_someone_else_is_refused(psc: ProSanteConnect,
                                                      provider: PscProvider) -> None:
    provider.behaviour.userinfo_claims = {"sub": "f:someone-else"}
    pending, callback = await go_through_psc(psc)
    assert "sub" in (await refusal_of(psc, pending, callback)).reason


async def test_code_is_single_use(psc: ProSanteConnect) -> None:
    pending, callback = await go_through_psc(psc)
    await psc.sign_in(pending, callback, find_by_rpps=find_by_rpps)
    refused = await refusal_of(psc, pending, callback)
    assert "invalid_grant" in refused.reason


async def test_code_needs_the_pkce_verifier(psc: ProSanteConnect) -> None:
    pending, callback = await go_through_psc(psc)
    stolen = PendingSignIn(state=pending.state, nonce=pending.nonce,
                           code_verifier="x" * 64, redirect_uri=pending.redirect_uri,
                           return_to="/", expires_at=pending.expires_at)
    assert "invalid_grant" in (await refusal_of(psc, stolen, callback)).reason


async def test_wrong_client_secret_is_refused(provider: PscProvider) -> None:
    psc = ProSanteConnect(PscClientConfig(issuer=provider.issuer, client_id=CLIENT_ID,
                                          client_secret="wrong"))
    pending, callback = await go_through_psc(psc)
    assert "HTTP 401" in (await refusal_of(psc, pending, callback)).reason


async def test_cancel_at_psc_is_reported(psc: ProSanteConnect, provider: PscProvider) -> None:
    provider.behaviour.deny = True
    pending, callback = await go_through_psc(psc)
    assert callback["state"] == pending.state and "code" not in callback
    assert (await refusal_of(psc, pending, callback)).code == "psc-cancelled"


async def test_expired_pending_sign_in_is_refused(provider: PscProvider) -> None:
    now = [time.time()]
    psc = ProSanteConnect(PscClientConfig(issuer=provider.issuer, client_id=CLIENT_ID,
                                          client_secret=CLIENT_SECRET), clock=lambda: now[0])
    pending, callback = await go_through_psc(psc)
    now[0] += 601
    assert (await refusal_of(psc, pending, callback)).code == "psc-session-expired"
    assert provider.requests(TOKEN_PATH) == 0


async def test_discovery_for_another_issuer_is_refused(provider: PscProvider) -> None:
    psc = ProSanteConnect(PscClientConfig(
        issuer="https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet", client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET, discovery_url=provider.root + DISCOVERY_PATH))
    with pytest.raises(PscSignInRefused) as caught:
        await psc.begin(redirect_uri=CALLBACK)
    assert caught.value.code == "psc-unavailable" and "issuer" in caught.value.reason


async def test_unreachable_psc_is_unavailable(psc_key: RSAKey) -> None:
    behaviour = PscBehaviour(client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                             redirect_uris=frozenset({CALLBACK}), practitioner=practitioner(),
                             signing_key=psc_key)
    with running_psc_provider(behaviour) as stopped_after:
        issuer = stopped_after.issuer
    psc = ProSanteConnect(PscClientConfig(issuer=issuer, client_id=CLIENT_ID,
                                          client_secret=CLIENT_SECRET, timeout=1.0))
    with pytest.raises(PscSignInRefused) as caught:
        await psc.begin(redirect_uri=CALLBACK)
    assert caught.value.code == "psc-unavailable"


# --- who may sign in ------------------------------------------------------------------------------

async def test_unknown_rpps_is_refused(psc: ProSanteConnect, provider: PscProvider) -> None:
    provider.behaviour.practitioner = practitioner("19999999998")
    pending, callback = await go_through_psc(psc)
    refused = await refusal_of(psc, pending, callback)
    assert refused.code == "psc-unknown-practitioner"
    assert "19999999998" in refused.message_fr and "19999999998" in refused.message_en
    assert isinstance(refused, SignInRefused)


async def test_unverified_doctor_is_refused(psc: ProSanteConnect,
                                            provider: PscProvider) -> None:
    provider.behaviour.practitioner = practitioner(UNVERIFIED_RPPS)
    pending, callback = await go_through_psc(psc)
    assert (await refusal_of(psc, pending, callback)).code == "psc-unverified"


async def test_pharmacist_account_is_refused(psc: ProSanteConnect,
                                             provider: PscProvider) -> None:
    provider.behaviour.practitioner = practitioner(PHARMACIST_RPPS)
    pending, callback = await go_through_psc(psc)
    assert (await refusal_of(psc, pending, callback)).code == "psc-role-not-allowed"


async def test_identifier_without_rpps_is_refused(psc: ProSanteConnect,
                                                  provider: PscProvider) -> None:
    provider.behaviour.practitioner = PscPractitioner(id_nat_ps="0751234567",
                                                      given_name="A", family_name="B")
    pending, callback = await go_through_psc(psc)
    assert (await refusal_of(psc, pending, callback)).code == "psc-no-rpps"


def test_rpps_of_id_nat_ps() -> None:
    assert rpps_of("810101010103") == "10101010103"
    for other in ("10101010103", "8101010101", "8101010101034", "81010101010x", "ANS20200101",
                  "8１0101010103"):
        with pytest.raises(PscSignInRefused):
            rpps_of(other)


# --- helpers the HTTP layer uses ------------------------------------------------------------------

def _pending(expires_at: float) -> PendingSignIn:
    return PendingSignIn(state="st", nonce="no", code_verifier="v" * 43, redirect_uri=CALLBACK,
                         return_to="/", expires_at=expires_at)


def test_sealed_pending_refuses_another_key_tampering_and_age() -> None:
    pending = _pending(time.time() + 60)
    cookie = seal_pending(pending, key=COOKIE_KEY)
    with pytest.raises(PscSignInRefused, match="expired"):
        open_pending(cookie, key=b"z" * 32)
    flipped = cookie[:-3] + ("A" if cookie[-3] != "A" else "B") + cookie[-2:]
    with pytest.raises(PscSignInRefused):
        open_pending(flipped, key=COOKIE_KEY)
    with pytest.raises(PscSignInRefused):
        open_pending("v1.not-base64!", key=COOKIE_KEY)
    with pytest.raises(PscSignInRefused):
        open_pending(cookie, key=COOKIE_KEY, now=pending.expires_at + 1)
    with pytest.raises(ValueError):
        seal_pending(pending, key=b"short")


def test_safe_return_path_keeps_local_paths_only() -> None:
    assert safe_return_path("/cases/3?tab=photos#top") == "/cases/3?tab=photos#top"
    for unsafe in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "cases",
                   "", "/ok\r\nSet-Cookie: x=1", "javascript:alert(1)"):
        assert safe_return_path(unsafe) == "/"


def test_basic_authorization_form_encodes_before_base64() -> None:
    assert basic_authorization("a b", "p:w") == "Basic YSUyMGI6cCUzQXc="


def test_config_from_settings() -> None:
    assert PscClientConfig.from_settings(Settings()) is None
    config = PscClientConfig.from_settings(Settings(
        psc_issuer="https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet",
        psc_client_id="pictaderm", psc_client_secret=SecretStr("s")))
    assert config is not None and config.client_secret == "s"
    assert "client_secret" not in repr(config)
    assert config.resolved_discovery_url() == ("https://auth.esw.esante.gouv.fr/auth/realms/"
                                               "esante-wallet/.well-known/openid-configuration")
    with pytest.raises(ValueError):
        PscClientConfig.from_settings(Settings(psc_issuer="https://psc.example"))
