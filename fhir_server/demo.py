"""``fhir-server demo --base URL [--token T]``: seed a pharmacy, its pharmacist, a medical
director and doctors of the three tiers on a running server, sign each person in through the
SMART authorization-code flow (sign-in form, PKCE), and run one tele-expertise case through
the public API with each person's own token, printing its timeline and the ``$stats`` figures.

The scenario: the pharmacist sends a skin case as one intake transaction (a small real JPEG);
a tier-1 doctor declines it; another tier-1 doctor claims it and asks for new photos; the
pharmacist's unchanged ``$resubmit`` is refused (422); the pharmacist adds a photo and
resubmits; the doctor completes with a DiagnosticReport. The server then files the PDF report,
which the pharmacist downloads (its size and SHA-1 checked against the DocumentReference), and
the DMP export records its status (skipped when the export is off). Accounts are created
verified by the operator (``POST /admin/accounts``); the doctors are then verified in their
tier by the medical director (``POST /admin/doctors/{id}/verify``). Emails, FINESS and RPPS
numbers are new on every run, so the demo may run again on the same server. Exit code 0 when
every step got the expected HTTP status, 1 otherwise, 2 for a usage error.

The building blocks (``seed``, ``send_intake``, ``add_photo``, ``Scenario``…) take an
``httpx.AsyncClient``, so tests drive them against the app in-process too.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import secrets
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TextIO
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
from stdnum import luhn

from conformance.content import attachment_hash, tiny_jpeg
from conformance.fresh import as_new, fresh_patient
from conformance.smart.forms import sign_in_form
from conformance.smart.pkce import new_pkce

Resource = dict[str, Any]

CALLBACK: Final = "http://127.0.0.1/pictaderm-demo/callback"
"""The demo app's redirect URI: never followed, the code is read from the redirect."""
APP_SCOPE: Final = "openid fhirUser user/*.cruds"
USER_SCOPE: Final = "openid fhirUser user/*.cruds"
TIER_SYSTEM: Final = "https://fhir.pictaderm.com/CodeSystem/expertise-tier"
BUSINESS_STATUS_SYSTEM: Final = "https://fhir.pictaderm.com/CodeSystem/task-business-status"
DEFAULT_DOCTORS: Final[Mapping[str, int]] = {"tier-1": 2, "tier-2": 1, "tier-3": 1}
TIMEOUT_SECONDS: Final = 30.0
REPORT_WAIT_SECONDS: Final = 30.0
"""How long the demo waits for the server to file the report (an outbox consumer)."""
USAGE_ERROR: Final = 2
EXAMPLE_PATIENT: Final = "Patient/camille-martin"
EXAMPLE_PHARMACIST: Final = "PractitionerRole/pharmacist-claire-dubois"
EXAMPLE_PHARMACY: Final = "Organization/pharmacie-du-centre"


class DemoError(Exception):
    """A preparation step (seeding, signing in, sending the case) got an unexpected answer."""


@dataclass(frozen=True, slots=True)
class Person:
    """A seeded person: the account, its FHIR role and pharmacy, and the access token of
    their sign-in (empty until signed in)."""

    label: str
    email: str
    password: str = field(repr=False)
    account_id: str
    practitioner_role: str | None = None
    organization: str | None = None
    token: str = field(default="", repr=False)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True, slots=True)
class Cast:
    """Everybody the demo seeded, signed in, and the public app they signed in through."""

    pharmacist: Person
    director: Person
    doctors: Mapping[str, tuple[Person, ...]]
    client_id: str


@dataclass(frozen=True, slots=True)
class SentCase:
    """The ids the intake transaction's resources got."""

    task: str
    service_request: str
    patient: str


@dataclass(frozen=True, slots=True)
class Step:
    """One step of the timeline: who did what, the HTTP status got and expected, and the
    Task's status and business status after it."""

    at: datetime
    actor: str
    action: str
    status: int
    expected: int
    task_status: str
    business_status: str
    note: str = ""
    """What a refusal said (its OperationOutcome's first diagnostics), shortened."""

    @property
    def ok(self) -> bool:
        return self.status == self.expected

    def line(self) -> str:
        verdict = "ok" if self.ok else f"UNEXPECTED (expected {self.expected})"
        return (f"{self.at.strftime('%H:%M:%S.%f')[:-3]}  {self.actor:<18} {self.action:<34} "
                f"HTTP {self.status}  Task {self.task_status}/{self.business_status}  "
                f"{verdict}{f'  ({self.note})' if self.note else ''}")


@dataclass(frozen=True, slots=True)
class Server:
    """Where the server is: its FHIR base (``…/fhir``), its root, and the operator token."""

    fhir_base: str
    operator_token: str = field(repr=False)

    @property
    def root(self) -> str:
        return self.fhir_base.rstrip("/").removesuffix("/fhir")

    @property
    def operator(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.operator_token}"}


# --- seeding --------------------------------------------------------------------------------


def run_tag() -> str:
    """A short random tag making this run's emails and numbers new."""
    return secrets.token_hex(4)


def new_finess() -> str:
    """A made-up FINESS number (9 digits, valid Luhn key)."""
    body = "99" + "".join(str(secrets.randbelow(10)) for _ in range(6))
    return body + luhn.calc_check_digit(body)


def new_rpps() -> str:
    """A made-up RPPS number (11 digits, valid Luhn key)."""
    body = "19" + "".join(str(secrets.randbelow(10)) for _ in range(8))
    return body + luhn.calc_check_digit(body)


def new_password() -> str:
    return secrets.token_urlsafe(18)


async def create_account(http: httpx.AsyncClient, server: Server, label: str,
                         account: Mapping[str, Any]) -> Person:
    """An account made by the operator through ``POST /admin/accounts``."""
    password = new_password()
    answer = await http.post(f"{server.root}/admin/accounts", headers=server.operator,
                             json={**account, "password": password})
    body = _expected_json(answer, 201, f"create the account of {label}")
    return Person(label=label, email=str(account["email"]), password=password,
                  account_id=str(body["account_id"]),
                  practitioner_role=body.get("practitioner_role"),
                  organization=body.get("organization"))


async def register_app(http: httpx.AsyncClient, server: Server, tag: str) -> str:
    """A public app (PKCE, no credentials) registered through ``POST /admin/clients``."""
    answer = await http.post(f"{server.root}/admin/clients", headers=server.operator, json={
        "name": f"Pictaderm demo {tag}", "scope": APP_SCOPE, "public": True,
        "redirect_uris": [CALLBACK]})
    return str(_expected_json(answer, 201, "register the demo app")["client_id"])


async def sign_in(http: httpx.AsyncClient, server: Server, person: Person, client_id: str,
                  scope: str = USER_SCOPE) -> Person:
    """``person`` with the access token of a sign-in through the authorization endpoint's
    form, the code exchanged with its PKCE verifier."""
    pkce = new_pkce()
    state = secrets.token_urlsafe(16)
    page_url = f"{server.root}/auth/authorize?" + urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": CALLBACK,
        "scope": scope, "state": state, "aud": server.fhir_base, "nonce": secrets.token_hex(8),
        "code_challenge": pkce.challenge, "code_challenge_method": pkce.method})
    page = await http.get(page_url)
    form = sign_in_form(page.text) if page.status_code == 200 else None
    if form is None:
        raise DemoError(f"sign in {person.label}: no sign-in form (HTTP {page.status_code})")
    fields = form.submission({"email": person.email, "password": person.password})
    answer = await http.post(urljoin(page_url, form.action or page_url),
                             content=urlencode(fields),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    query = parse_qs(urlsplit(answer.headers.get("location", "")).query)
    if answer.status_code not in (302, 303) or query.get("state") != [state] \
            or "code" not in query:
        raise DemoError(f"sign in {person.label}: expected a redirect with a code, got "
                        f"HTTP {answer.status_code}")
    tokens = await http.post(f"{server.root}/auth/token", data={
        "grant_type": "authorization_code", "code": query["code"][0],
        "redirect_uri": CALLBACK, "code_verifier": pkce.verifier, "client_id": client_id})
    body = _expected_json(tokens, 200, f"exchange the code of {person.label}")
    return Person(label=person.label, email=person.email, password=person.password,
                  account_id=person.account_id, practitioner_role=person.practitioner_role,
                  organization=person.organization, token=str(body["access_token"]))


async def verify_doctor(http: httpx.AsyncClient, server: Server, director: Person,
                        doctor: Person, tier: str) -> None:
    """The medical director verifies ``doctor`` in ``tier``."""
    answer = await http.post(f"{server.root}/admin/doctors/{doctor.account_id}/verify",
                             headers=director.headers, json={"tier": tier})
    _expected_json(answer, 200, f"verify {doctor.label} in {tier}")


async def seed(http: httpx.AsyncClient, server: Server,
               doctors: Mapping[str, int] = DEFAULT_DOCTORS, tag: str | None = None) -> Cast:
    """A pharmacy and its pharmacist, a medical director, ``doctors`` (count per tier)
    verified by the director, the demo app; everyone signed in."""
    tag = tag or run_tag()
    pharmacist = await create_account(http, server, "pharmacist", {
        "email": f"pharmacien.{tag}@demo.pictaderm.example", "role": "pharmacist",
        "family_name": "Lefèvre", "given_names": ["Agnès"], "organization_finess": new_finess(),
        "organization_name": f"Pharmacie de la Démo {tag}"})
    director = await create_account(http, server, "medical director", {
        "email": f"direction.{tag}@demo.pictaderm.example", "role": "medical-director"})
    client_id = await register_app(http, server, tag)
    director = await sign_in(http, server, director, client_id)
    seeded: dict[str, tuple[Person, ...]] = {}
    for tier, count in doctors.items():
        made = []
        for index in range(count):
            label = f"{tier} doctor {chr(ord('A') + index)}"
            doctor = await create_account(http, server, label, {
                "email": f"medecin.{tier}.{index}.{tag}@demo.pictaderm.example",
                "role": "doctor", "family_name": f"Docteur{chr(ord('A') + index)}",
                "given_names": ["Camille"], "rpps": new_rpps()})
            await verify_doctor(http, server, director, doctor, tier)
            made.append(await sign_in(http, server, doctor, client_id))
        seeded[tier] = tuple(made)
    pharmacist = await sign_in(http, server, pharmacist, client_id)
    return Cast(pharmacist=pharmacist, director=director, doctors=seeded, client_id=client_id)


# --- the case -------------------------------------------------------------------------------


def _example(name: str) -> Resource:
    from fhir_server.ig import load_guide

    wanted = f"/{name}.json"
    for example in load_guide().examples:
        if example.valid and example.filename.endswith(wanted):
            return as_new(example.resource)
    raise DemoError(f"the guide has no valid example {name}")


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _pointed(value: Any, targets: Mapping[str, str]) -> Any:
    """``value`` with every ``reference`` named in ``targets`` replaced."""
    if isinstance(value, dict):
        return {key: (targets.get(item, item) if key == "reference" and isinstance(item, str)
                      else _pointed(item, targets)) for key, item in value.items()}
    if isinstance(value, list):
        return [_pointed(item, targets) for item in value]
    return value


def _post(full_url: str, resource: Resource) -> Resource:
    return {"fullUrl": full_url, "resource": resource,
            "request": {"method": "POST", "url": resource["resourceType"]}}


def _photo_entries(media_template: Resource, targets: Mapping[str, str],
                   media_url: str) -> list[Resource]:
    """A real JPEG as a Binary (following its Media's access) and its Media."""
    photo = tiny_jpeg()
    binary_url = _urn()
    media = _pointed(media_template, targets)
    media["content"] = {"contentType": "image/jpeg", "url": binary_url, "size": len(photo),
                        "hash": attachment_hash(photo), "title": "Photo clinique"}
    media["createdDateTime"] = _now_instant()
    binary = {"resourceType": "Binary", "contentType": "image/jpeg",
              "securityContext": {"reference": media_url},
              "data": base64.b64encode(photo).decode("ascii")}
    return [_post(binary_url, binary), _post(media_url, media)]


def intake_bundle(pharmacist: Person, *, family: str, tier: str = "tier-1") -> Resource:
    """The intake transaction of a new skin case (the guide's example made new: a fresh NIR
    and ``family``) requested by ``pharmacist``, offered to ``tier``."""
    if pharmacist.practitioner_role is None or pharmacist.organization is None:
        raise DemoError("the pharmacist has no PractitionerRole or pharmacy")
    patient, nir = fresh_patient(_example("Patient-camille-martin"), family=family)
    urls = {kind: _urn() for kind in ("Patient", "Coverage", "Consent", "Media",
                                      "QuestionnaireResponse", "ServiceRequest", "Task")}
    targets = {EXAMPLE_PATIENT: urls["Patient"], "Coverage/camille-martin": urls["Coverage"],
               EXAMPLE_PHARMACIST: pharmacist.practitioner_role,
               EXAMPLE_PHARMACY: pharmacist.organization,
               "ServiceRequest/skin-camille-martin": urls["ServiceRequest"],
               "QuestionnaireResponse/skin-camille-martin": urls["QuestionnaireResponse"],
               "Media/skin-camille-martin-1": urls["Media"]}
    coverage = {**_example("Coverage-camille-martin"), "subscriberId": nir}
    request = {**_example("ServiceRequest-skin-camille-martin"), "status": "active"}
    task = _example("Task-skin-camille-martin")
    for key in ("owner", "output", "statusReason", "lastModified"):
        task.pop(key, None)
    task.update({"status": "requested",
                 "businessStatus": {"coding": [{"system": BUSINESS_STATUS_SYSTEM,
                                                "code": "awaiting-claim"}]},
                 "performerType": [{"coding": [{"system": TIER_SYSTEM, "code": tier}]}]})
    entries = [_post(urls["Patient"], patient),
               _post(urls["Coverage"], _pointed(coverage, targets)),
               _post(urls["Consent"], _pointed(_example("Consent-exchange-camille-martin"),
                                               targets)),
               *_photo_entries(_example("Media-skin-camille-martin-1"), targets, urls["Media"]),
               _post(urls["QuestionnaireResponse"], _pointed(
                   _example("QuestionnaireResponse-skin-camille-martin"), targets)),
               _post(urls["ServiceRequest"], _pointed(request, targets)),
               _post(urls["Task"], _pointed(task, targets))]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def created_ids(response: Resource) -> dict[str, str]:
    """The first id each resource type got, from a transaction-response."""
    ids: dict[str, str] = {}
    for entry in response.get("entry", []):
        location = str(entry.get("response", {}).get("location", ""))
        parts = location.split("/_history/")[0].split("/")
        if len(parts) >= 2:
            ids.setdefault(parts[-2], parts[-1])
    return ids


async def send_intake(http: httpx.AsyncClient, server: Server, pharmacist: Person, *,
                      family: str, tier: str = "tier-1") -> tuple[httpx.Response, SentCase]:
    """The intake transaction sent with the pharmacist's token: the answer and the ids."""
    answer = await http.post(server.fhir_base, headers=pharmacist.headers,
                             json=intake_bundle(pharmacist, family=family, tier=tier))
    body = _expected_json(answer, 200, "send the intake transaction")
    ids = created_ids(body)
    return answer, SentCase(task=ids["Task"], service_request=ids["ServiceRequest"],
                            patient=ids["Patient"])


async def add_photo(http: httpx.AsyncClient, server: Server, pharmacist: Person,
                    case: SentCase) -> httpx.Response:
    """A new photo of the case (Binary and Media, one transaction) with the pharmacist's
    token."""
    media = _example("Media-skin-camille-martin-1")
    targets = {EXAMPLE_PATIENT: f"Patient/{case.patient}",
               "ServiceRequest/skin-camille-martin": f"ServiceRequest/{case.service_request}",
               EXAMPLE_PHARMACIST: pharmacist.practitioner_role or ""}
    bundle = {"resourceType": "Bundle", "type": "transaction",
              "entry": _photo_entries(media, targets, _urn())}
    return await http.post(server.fhir_base, headers=pharmacist.headers, json=bundle)


def final_report() -> Resource:
    """The doctor's DiagnosticReport for ``$complete`` (the guide's example's conclusion)."""
    report = _example("DiagnosticReport-skin-camille-martin")
    for key in ("presentedForm", "media", "basedOn", "subject", "performer", "issued"):
        report.pop(key, None)
    return report


def parameters(*parts: Resource) -> Resource:
    return {"resourceType": "Parameters", "parameter": list(parts)}


async def invoke(http: httpx.AsyncClient, server: Server, person: Person, task: str,
                 operation: str, *parts: Resource) -> httpx.Response:
    """``POST Task/{task}/$operation`` with ``person``'s token."""
    return await http.post(f"{server.fhir_base}/Task/{task}/${operation}",
                           headers=person.headers, json=parameters(*parts))


async def task_state(http: httpx.AsyncClient, server: Server, task: str) -> tuple[str, str]:
    """The Task's status and business status (read by the operator, who sees every case)."""
    answer = await http.get(f"{server.fhir_base}/Task/{task}", headers=server.operator)
    if answer.status_code != 200:
        return "?", "?"
    body = answer.json()
    codes = [coding.get("code", "?") for coding in
             body.get("businessStatus", {}).get("coding", [])]
    return str(body.get("status", "?")), (codes[0] if codes else "-")


# --- the scenario ---------------------------------------------------------------------------


@dataclass
class Scenario:
    """The demo's case run step by step; ``steps`` is the timeline so far."""

    http: httpx.AsyncClient
    server: Server
    cast: Cast
    steps: list[Step] = field(default_factory=list)
    task: str | None = None
    """The case's Task id, once sent."""

    async def record(self, actor: Person | str, action: str, answer: httpx.Response,
                     expected: int, task: str) -> Step:
        status, business = await task_state(self.http, self.server, task)
        step = Step(at=datetime.now(UTC), actor=actor if isinstance(actor, str) else actor.label,
                    action=action, status=answer.status_code, expected=expected,
                    task_status=status, business_status=business, note=refusal_note(answer))
        self.steps.append(step)
        return step

    async def run(self) -> list[Step]:
        """The whole scenario (see the module doc); the timeline."""
        pharmacist = self.cast.pharmacist
        declining, owner = self.cast.doctors["tier-1"][:2]
        answer, case = await send_intake(self.http, self.server, pharmacist,
                                         family=f"Demo{run_tag()}".upper())
        self.task = case.task
        await self.record(pharmacist, "sends the case (transaction)", answer, 200, case.task)
        await self.step(declining, case, "decline", 200, _string("reason", "hors de mon champ"))
        await self.step(owner, case, "claim", 200)
        await self.step(owner, case, "request-clarification", 200,
                        _code("reason", "new-photos"),
                        _string("text", "Pouvez-vous envoyer une photo plus nette ?"))
        await self.step(pharmacist, case, "resubmit", 422, _string("answer", "Sans changement"),
                        label="$resubmit unchanged (refused)")
        photo = await add_photo(self.http, self.server, pharmacist, case)
        await self.record(pharmacist, "adds a photo (transaction)", photo, 200, case.task)
        await self.step(pharmacist, case, "resubmit", 200,
                        _string("answer", "Nouvelle photo ajoutée"))
        await self.step(owner, case, "complete", 200,
                        {"name": "report", "resource": final_report()})
        return self.steps

    async def step(self, person: Person, case: SentCase, operation: str, expected: int,
                   *parts: Resource, label: str | None = None) -> Step:
        answer = await invoke(self.http, self.server, person, case.task, operation, *parts)
        return await self.record(person, label or f"${operation}", answer, expected, case.task)


def refusal_note(answer: httpx.Response, limit: int = 90) -> str:
    """The first diagnostics of a refusal's OperationOutcome, shortened; empty for a
    success."""
    if answer.status_code < 400:
        return ""
    try:
        body = answer.json()
    except ValueError:
        return ""
    issues = body.get("issue", []) if isinstance(body, dict) else []
    text = next((str(issue.get("diagnostics")) for issue in issues
                 if isinstance(issue, dict) and issue.get("diagnostics")), "")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _string(name: str, value: str) -> Resource:
    return {"name": name, "valueString": value}


def _code(name: str, value: str) -> Resource:
    return {"name": name, "valueCode": value}


async def stats(http: httpx.AsyncClient, server: Server) -> Resource:
    """``GET $stats`` as the operator."""
    return _expected_json(await http.get(f"{server.fhir_base}/$stats",
                                         headers=server.operator), 200, "read $stats")


def overall_figures(report: Resource) -> list[str]:
    """One line per part of the ``overall`` group of ``$stats``: its name and values."""
    overall: Resource = next((part for part in report.get("parameter", [])
                              if part.get("name") == "overall"), {})
    lines = []
    for part in overall.get("part", []):
        if part.get("name") == "status":
            continue
        lines.append(f"{part.get('name')}: {_figure(part)}")
    statuses = [_figure(part).split() for part in overall.get("part", [])
                if part.get("name") == "status"]
    counted = " ".join(f"{code[5:]}={count[6:]}" for code, count in statuses
                       if count != "count=0")
    return [*lines[:1], f"status: {counted or 'none'}", *lines[1:]]


def _figure(part: Resource) -> str:
    values = [_value(part)] if _value(part) is not None else []
    values += [f"{sub.get('name')}={_figure(sub)}" for sub in part.get("part", [])]
    return " ".join(str(value) for value in values) or "-"


def _value(part: Resource) -> str | None:
    for key, value in part.items():
        if key.startswith("value"):
            if isinstance(value, dict) and "value" in value:
                return f"{value['value']} {value.get('unit', value.get('code', ''))}".strip()
            if isinstance(value, dict):
                return str(value.get("code") or value.get("reference") or "-")
            return str(value)
    return None


# --- the command ----------------------------------------------------------------------------


async def run(base: str, token: str, out: TextIO) -> int:
    """The whole demo against the server at ``base``; prints to ``out``; the exit code."""
    server = Server(fhir_base=base.rstrip("/"), operator_token=token)
    async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as http:
        try:
            cast = await seed(http, server)
            doctors = ", ".join(f"{len(people)} {tier}" for tier, people in cast.doctors.items())
            print(f"Seeded: {cast.pharmacist.email} ({cast.pharmacist.organization}), "
                  f"{cast.director.email}, doctors {doctors}; app {cast.client_id}", file=out)
            scenario = Scenario(http, server, cast)
            steps = await scenario.run()
            print("Timeline:", file=out)
            for step in steps:
                print(step.line(), file=out)
            if scenario.task is not None:
                for line in (await filed_report(http, server, cast.pharmacist,
                                                scenario.task)).lines():
                    print(line, file=out)
            print("$stats (overall):", file=out)
            for line in overall_figures(await stats(http, server)):
                print(f"  {line}", file=out)
        except (DemoError, httpx.HTTPError) as error:
            print(f"fhir-server demo: {error}", file=out)
            return 1
    failed = [step for step in steps if not step.ok]
    print(f"{len(steps) - len(failed)} of {len(steps)} steps as expected", file=out)
    return 1 if failed else 0


@dataclass(frozen=True, slots=True)
class FiledReport:
    """The case's report as its pharmacist finds it once the server filed it."""

    document: str
    pdf_bytes: int
    matches_document: bool
    """The downloaded PDF's size and SHA-1 are those the DocumentReference states."""
    dmp_status: str | None

    def lines(self) -> list[str]:
        check = "size and SHA-1 as stated" if self.matches_document else "MISMATCH"
        return [f"Report filed: {self.document}, PDF of {self.pdf_bytes} bytes downloaded by "
                f"the pharmacist ({check})",
                f"DMP export: {self.dmp_status or 'not recorded yet'}"]


async def filed_report(http: httpx.AsyncClient, server: Server, person: Person, task: str,
                       *, wait_seconds: float = REPORT_WAIT_SECONDS) -> FiledReport:
    """Wait for the report of ``Task/task`` to be filed (and its DMP export to settle), then
    download its PDF as ``person``. Raises DemoError when nothing is filed in time."""
    deadline = asyncio.get_running_loop().time() + wait_seconds
    document: Resource | None = None
    while True:
        found = _expected_json(await http.get(f"{server.fhir_base}/Task/{task}",
                                              headers=person.headers), 200, "read the Task")
        key = next((output["valueReference"]["reference"] for output in found.get("output", [])
                    if output.get("valueReference", {}).get("reference", "")
                    .startswith("DocumentReference/")), None)
        if key is not None:
            document = _expected_json(await http.get(f"{server.fhir_base}/{key}",
                                                     headers=person.headers), 200,
                                      "read the report's DocumentReference")
            if _dmp_status(document) not in (None, "dmp-pending"):
                break
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.2)
    if document is None:
        raise DemoError(f"the report of Task/{task} was not filed within {wait_seconds:g} s")
    attachment = document["content"][0]["attachment"]
    pdf = await http.get(f"{server.fhir_base}/{attachment['url']}", headers=person.headers)
    if pdf.status_code != 200:
        raise DemoError(f"download the report: expected HTTP 200, got {pdf.status_code}")
    digest = base64.b64encode(hashlib.sha1(pdf.content, usedforsecurity=False).digest()).decode()
    return FiledReport(document=f"DocumentReference/{document['id']}",
                       pdf_bytes=len(pdf.content),
                       matches_document=(attachment.get("size") == len(pdf.content)
                                         and attachment.get("hash") == digest),
                       dmp_status=_dmp_status(document))


def _dmp_status(document: Resource) -> str | None:
    for extension in document.get("extension", []):
        if extension.get("url", "").endswith("/pictaderm-dmp-export"):
            for part in extension.get("extension", []):
                if part.get("url") == "status":
                    return str(part["valueCoding"]["code"])
    return None


def run_demo(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Run ``fhir-server demo``; the exit code."""
    token = args.token or os.environ.get("FHIR_SERVER_API_TOKEN", "")
    if not token:
        print("fhir-server demo: give the operator token (--token or FHIR_SERVER_API_TOKEN)",
              file=sys.stderr)
        return USAGE_ERROR
    return asyncio.run(run(args.base, token, out))


def _now_instant() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _expected_json(answer: httpx.Response, status: int, what: str) -> Resource:
    if answer.status_code != status:
        raise DemoError(f"{what}: expected HTTP {status}, got {answer.status_code}: "
                        f"{answer.text[:300]}")
    body = answer.json()
    if not isinstance(body, dict):
        raise DemoError(f"{what}: the answer is not a JSON object")
    return body

