"""The ``smart`` group's discovery checks: ``.well-known/smart-configuration``, the SMART 1
``rest.security`` of the CapabilityStatement, OIDC discovery and the JWKS.

Spec: https://hl7.org/fhir/smart-app-launch/STU2.2/conformance.html and OpenID Connect
Discovery 1.0. Always checked: the document is JSON whatever ``Accept`` says, with CORS; the
required fields; ``S256`` as the only PKCE method; absolute URLs; known capability codes, each
backed by the fields it needs; the recommended fields this server publishes. Backend Services
and app launch each add what they need advertised when their part runs; OIDC discovery and the
JWKS are checked when the app part runs or the document names an ``issuer``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from conformance.checks.metadata import fetch_capability, server_rest
from conformance.client import CheckFailure, Reply, Resource
from conformance.smart.auth_client import JSON, is_absolute_url
from conformance.smart.context import DISCOVERY_PATH, Discovery, SmartRun
from conformance.smart.tokens import json_object

OTHER_ACCEPTS = ("application/fhir+json", "text/html", "application/xml", "*/*")
CORS_ORIGIN = "https://smart-app.conformance.invalid"
REQUIRED = ("token_endpoint", "grant_types_supported", "capabilities",
            "code_challenge_methods_supported")
REQUIRED_LISTS = REQUIRED[1:]
RECOMMENDED = ("scopes_supported", "token_endpoint_auth_methods_supported",
               "token_endpoint_auth_signing_alg_values_supported", "introspection_endpoint",
               "revocation_endpoint")
URL_FIELDS = ("issuer", "jwks_uri", "authorization_endpoint", "token_endpoint",
              "registration_endpoint", "management_endpoint", "introspection_endpoint",
              "revocation_endpoint", "user_access_brand_bundle")
SMART_CAPABILITIES = frozenset({
    "launch-ehr", "launch-standalone", "authorize-post", "client-public",
    "client-confidential-symmetric", "client-confidential-asymmetric", "sso-openid-connect",
    "context-passthrough-banner", "context-passthrough-style", "context-ehr-patient",
    "context-ehr-encounter", "context-standalone-patient", "context-standalone-encounter",
    "permission-offline", "permission-online", "permission-patient", "permission-user",
    "permission-v1", "permission-v2", "smart-app-state"})
"""The capability codes of SMART App Launch 2.2."""
LAUNCH_NEEDS = ("authorization_endpoint", "grant_types_supported=authorization_code")
CAPABILITY_NEEDS: Mapping[str, tuple[str, ...]] = {
    "launch-ehr": LAUNCH_NEEDS,
    "launch-standalone": LAUNCH_NEEDS,
    "authorize-post": ("authorization_endpoint",),
    "client-confidential-asymmetric": ("token_endpoint_auth_methods_supported=private_key_jwt",
                                       "token_endpoint_auth_signing_alg_values_supported"),
    "client-confidential-symmetric": (
        "token_endpoint_auth_methods_supported=client_secret_basic",),
    "sso-openid-connect": ("issuer", "jwks_uri"),
    "context-ehr-patient": ("capabilities=launch-ehr",),
    "context-ehr-encounter": ("capabilities=launch-ehr",),
    "context-standalone-patient": ("capabilities=launch-standalone",),
    "context-standalone-encounter": ("capabilities=launch-standalone",),
}
"""What a claimed capability needs advertised: a field, or ``field=value`` (a list holding it)."""
BACKEND_NEEDS = ("grant_types_supported=client_credentials",
                 "token_endpoint_auth_methods_supported=private_key_jwt",
                 "token_endpoint_auth_signing_alg_values_supported=RS384",
                 "token_endpoint_auth_signing_alg_values_supported=ES384",
                 "capabilities=client-confidential-asymmetric", "capabilities=permission-v1",
                 "capabilities=permission-v2")
APP_NEEDS = (*LAUNCH_NEEDS, "response_types_supported=code", "issuer", "jwks_uri",
             "token_endpoint_auth_methods_supported=none", "capabilities=launch-standalone",
             "capabilities=client-public", "capabilities=sso-openid-connect",
             "capabilities=context-standalone-patient", "capabilities=permission-offline",
             "capabilities=permission-patient", "capabilities=permission-user")
APP_RECOMMENDED = ("response_types_supported", "management_endpoint")
OIDC_PATH = "/.well-known/openid-configuration"
ID_TOKEN_ALGORITHM = "RS256"
PRIVATE_KEY_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
SMART_SERVICE = ("http://terminology.hl7.org/CodeSystem/restful-security-service",
                 "SMART-on-FHIR")
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
OAUTH_URI_ENDPOINTS = {"authorize": "authorization_endpoint", "token": "token_endpoint",
                       "introspect": "introspection_endpoint",
                       "revoke": "revocation_endpoint", "manage": "management_endpoint"}
"""oauth-uris sub-extension -> the discovery field that must give the same URL."""


def media_type(reply: Reply) -> str:
    return (reply.header("content-type") or "").split(";")[0].strip().lower()


def fetch_document(run: SmartRun) -> dict[str, Any]:
    """The discovery document, asked for as ``application/json``."""
    reply = run.kit.client.get(DISCOVERY_PATH, headers={"Accept": JSON}).expect(200)
    if media_type(reply) != JSON:
        raise CheckFailure(f"GET {DISCOVERY_PATH}: Content-Type is "
                           f"{reply.header('content-type')!r}, expected {JSON}")
    return json_object(reply)


def missing(document: Mapping[str, Any], needs: Sequence[str]) -> list[str]:
    """The needs (``field`` or ``field=value``) that ``document`` does not meet."""
    unmet = []
    for need in needs:
        name, _, value = need.partition("=")
        found = document.get(name)
        if value:
            if not isinstance(found, list) or value not in found:
                unmet.append(f"{name} ∋ {value}")
        elif found in (None, "", [], {}):
            unmet.append(name)
    return unmet


def expect_all(document: Mapping[str, Any], needs: Sequence[str]) -> None:
    unmet = missing(document, needs)
    if unmet:
        raise CheckFailure(f"the document lacks {', '.join(unmet)}")


def _same_whatever_accept(run: SmartRun, document: Mapping[str, Any]) -> None:
    wrong = []
    for accept in OTHER_ACCEPTS:
        reply = run.kit.client.get(DISCOVERY_PATH, headers={"Accept": accept})
        if reply.status != 200 or media_type(reply) != JSON or reply.body != document:
            wrong.append(f"Accept {accept}: {reply.status} {reply.header('content-type')!r}")
    if wrong:
        raise CheckFailure(f"expected 200 and the same {JSON} document, got "
                           f"{'; '.join(wrong)}")


def _cors(run: SmartRun) -> None:
    wrong = []
    for path in (DISCOVERY_PATH, "metadata"):
        reply = run.kit.client.get(path, headers={"Origin": CORS_ORIGIN})
        allowed = reply.header("access-control-allow-origin")
        if reply.status != 200 or allowed not in ("*", CORS_ORIGIN):
            wrong.append(f"{path}: {reply.status}, Access-Control-Allow-Origin {allowed!r}")
    if wrong:
        raise CheckFailure("; ".join(wrong))


def _required_types(document: Mapping[str, Any]) -> None:
    expect_all(document, REQUIRED)
    lists = [name for name in REQUIRED_LISTS if not isinstance(document[name], list)
             or not all(isinstance(item, str) for item in document[name])]
    if lists:
        raise CheckFailure(f"{', '.join(lists)} must be arrays of strings")


def _s256_only(document: Mapping[str, Any]) -> None:
    methods = document.get("code_challenge_methods_supported")
    if methods != ["S256"]:
        raise CheckFailure(f"code_challenge_methods_supported is {methods!r}, expected "
                           "[\"S256\"] (plain is not allowed)")


def _absolute_urls(document: Mapping[str, Any]) -> None:
    wrong = [f"{name} {document[name]!r}" for name in URL_FIELDS
             if name in document and not is_absolute_url(document[name])]
    if wrong:
        raise CheckFailure(f"not absolute http(s) URLs: {', '.join(wrong)}")


def _known_capabilities(discovery: Discovery) -> None:
    unknown = sorted(set(discovery.strings("capabilities")) - SMART_CAPABILITIES)
    if unknown:
        raise CheckFailure(f"not SMART 2.2 capabilities: {', '.join(unknown)}")


def _capabilities_backed(discovery: Discovery) -> None:
    problems = [f"{capability} needs {', '.join(unmet)}"
                for capability in discovery.strings("capabilities")
                if (unmet := missing(discovery.document, CAPABILITY_NEEDS.get(capability, ())))]
    if problems:
        raise CheckFailure("; ".join(problems))


def oauth_uris(rest: Resource) -> dict[str, str]:
    """The ``oauth-uris`` sub-extensions of ``rest.security`` by name."""
    security = rest.get("security") or {}
    found = [e for e in security.get("extension", []) if e.get("url") == OAUTH_URIS]
    if len(found) != 1:
        raise CheckFailure(f"rest.security has {len(found)} oauth-uris extensions, expected one")
    return {str(e.get("url")): str(e.get("valueUri")) for e in found[0].get("extension", [])}


def _security_advertised(run: SmartRun, discovery: Discovery) -> None:
    rest = server_rest(fetch_capability(run.kit))
    codings = {(c.get("system"), c.get("code")) for service in
               (rest.get("security") or {}).get("service", []) for c in service.get("coding", [])}
    if SMART_SERVICE not in codings:
        raise CheckFailure("rest.security.service has no SMART-on-FHIR coding")
    uris = oauth_uris(rest)
    wrong = [f"{name}: {uris.get(name)!r} where discovery has {discovery.document[field]!r}"
             for name, field in OAUTH_URI_ENDPOINTS.items()
             if field in discovery.document and uris.get(name) != discovery.document[field]]
    if wrong:
        raise CheckFailure(f"oauth-uris disagree with discovery: {'; '.join(wrong)}")


def _openid_configuration(run: SmartRun, discovery: Discovery) -> dict[str, Any]:
    issuer = discovery.endpoint("issuer")
    reply = run.auth.get(issuer.rstrip("/") + OIDC_PATH).expect(200)
    configuration = json_object(reply)
    if configuration.get("issuer") != issuer:
        raise CheckFailure(f"the OIDC issuer is {configuration.get('issuer')!r}, discovery "
                           f"says {issuer!r}")
    if configuration.get("jwks_uri") != discovery.document.get("jwks_uri"):
        raise CheckFailure(f"the OIDC jwks_uri {configuration.get('jwks_uri')!r} is not "
                           f"discovery's {discovery.document.get('jwks_uri')!r}")
    algorithms = configuration.get("id_token_signing_alg_values_supported")
    if not isinstance(algorithms, list) or ID_TOKEN_ALGORITHM not in algorithms:
        raise CheckFailure(f"id_token_signing_alg_values_supported is {algorithms!r}, expected "
                           f"a list with {ID_TOKEN_ALGORITHM}")
    return configuration


def _bare_rsa_jwks(run: SmartRun, discovery: Discovery) -> dict[str, Any]:
    jwks = json_object(run.auth.get(discovery.endpoint("jwks_uri")).expect(200))
    keys = jwks.get("keys")
    if not isinstance(keys, list) or not keys:
        raise CheckFailure("the JWKS has no keys")
    problems = []
    for index, key in enumerate(keys):
        if not isinstance(key, dict):
            problems.append(f"key {index} is not an object")
            continue
        name = key.get("kid", index)
        if key.get("kty") != "RSA" or not key.get("n") or not key.get("e"):
            problems.append(f"key {name} is not an RSA key with n and e")
        if PRIVATE_KEY_MEMBERS & key.keys():
            problems.append(f"key {name} publishes private members")
    if problems:
        raise CheckFailure("; ".join(problems))
    return jwks


def run_discovery(run: SmartRun, *, backend: bool, app: bool) -> Discovery:
    """The discovery checks; the document (with the JWKS when checked). GroupStopped when the
    document cannot be had."""
    document = run.require(f"discovery: GET {DISCOVERY_PATH} answers 200 with a JSON object",
                           lambda: fetch_document(run))
    discovery = Discovery(document)
    run.check("discovery: the same JSON document whatever Accept says",
              lambda: _same_whatever_accept(run, document))
    run.check("discovery: CORS Access-Control-Allow-Origin on the document and on metadata",
              lambda: _cors(run))
    run.check(f"discovery: required fields {', '.join(REQUIRED)}",
              lambda: _required_types(document))
    run.check("discovery: code_challenge_methods_supported is [\"S256\"], no plain",
              lambda: _s256_only(document))
    run.check("discovery: endpoint, issuer and JWKS URLs are absolute",
              lambda: _absolute_urls(document))
    run.check("discovery: capabilities are SMART 2.2 capability codes",
              lambda: _known_capabilities(discovery))
    run.check("discovery: each capability claimed has the fields it needs",
              lambda: _capabilities_backed(discovery))
    run.check(f"discovery: recommended fields {', '.join(RECOMMENDED)}",
              lambda: expect_all(document, RECOMMENDED))
    run.check("discovery: metadata rest.security has the SMART-on-FHIR service and oauth-uris "
              "matching the document", lambda: _security_advertised(run, discovery))
    if backend:
        run.check("discovery: Backend Services advertised (client_credentials, private_key_jwt "
                  "with RS384 and ES384, client-confidential-asymmetric, permission-v1/v2)",
                  lambda: expect_all(document, BACKEND_NEEDS))
    if app:
        run.check("discovery: app launch advertised (authorization_endpoint, authorization_code, "
                  "code, issuer, jwks_uri, public clients, launch-standalone, "
                  "context-standalone-patient, sso-openid-connect, permission-offline/patient/"
                  "user)", lambda: expect_all(document, APP_NEEDS))
        run.check(f"discovery: recommended for apps {', '.join(APP_RECOMMENDED)}",
                  lambda: expect_all(document, APP_RECOMMENDED))
    if app or "issuer" in document:
        return _with_jwks(run, discovery)
    return discovery


def _with_jwks(run: SmartRun, discovery: Discovery) -> Discovery:
    run.check(f"OIDC: {OIDC_PATH} under the issuer names it, the jwks_uri and "
              f"{ID_TOKEN_ALGORITHM}", lambda: _openid_configuration(run, discovery))
    found: list[dict[str, Any]] = []
    run.check("OIDC: the JWKS holds bare RSA public keys",
              lambda: found.append(_bare_rsa_jwks(run, discovery)))
    return Discovery(discovery.document, found[0] if found else None)

