"""The FHIR side of accounts: the Practitioner, PractitionerRole and pharmacy Organization a
registration creates, and a doctor's verification, all written through the Engine so that they
pass the server's own validation and the guide's profiles.

- A pharmacist works at a pharmacy found by its FINESS (``Organization.identifier``), created
  when missing (profile ``pictaderm-pharmacy``: FINESS, sector SA33, a name); the role has the
  code ``pharmacist``, names the pharmacy and is active.
- A doctor has a Practitioner with the RPPS and idNatPs identifiers (``interop-fr.md``), reused
  when one with that RPPS exists already, and a role that stays inactive, without a tier code,
  until a medical director verifies it: the guide's role profile (a code is required) applies
  from then on.
- RPPS and FINESS numbers are checked with the validation layer's business rules (format and
  Luhn key) before anything is written.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any, Final

from fhir_server.access.principal import TIERS
from fhir_server.accounts.model import AccountError
from fhir_server.engine.engine import Engine
from fhir_server.engine.results import ResourceResult
from fhir_server.ig.package import load_guide
from fhir_server.types import ResourceDict
from fhir_server.validation.business import finess_problems, rpps_problems
from fhir_server.validation.messages import Text

RPPS_SYSTEM: Final = "https://rpps.esante.gouv.fr"
IDNPS_SYSTEM: Final = "urn:oid:1.2.250.1.71.4.2.1"
FINESS_SYSTEM: Final = "https://finess.esante.gouv.fr"
IDENTIFIER_TYPES: Final = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
PROFESSIONS: Final = ("https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/"
                      "TRE-G15-ProfessionSante")
SECTORS: Final = ("https://mos.esante.gouv.fr/NOS/TRE_R02-SecteurActivite/FHIR/"
                  "TRE-R02-SecteurActivite")
TIER_SYSTEM: Final = "https://fhir.pictaderm.com/CodeSystem/expertise-tier"
PROFILES: Final = "https://fhir.pictaderm.com/StructureDefinition/"
PHARMACIST_CODE: Final = "pharmacist"
DOCTOR_PROFESSION: Final = "10"
PHARMACIST_PROFESSION: Final = "21"
PHARMACY_SECTOR: Final = "SA33"
SEARCH_BASE: Final = "http://localhost/fhir"
"""The base URL given to the engine's searches: only the matched resources are used."""

INVALID_RPPS: Final = Text(
    en="The RPPS number is not valid: 11 digits are expected, the last one a check digit.",
    fr="Le numéro RPPS n'est pas valide : 11 chiffres sont attendus, le dernier étant une clé "
       "de contrôle.")
INVALID_FINESS: Final = Text(
    en="The FINESS number is not valid: 9 characters are expected (the département, then "
       "digits, the last one a check digit).",
    fr="Le numéro FINESS n'est pas valide : 9 caractères sont attendus (le département, puis "
       "des chiffres, le dernier étant une clé de contrôle).")
PHARMACY_NAME_NEEDED: Final = Text(
    en="No pharmacy with this FINESS number is known yet: give the pharmacy's name.",
    fr="Aucune pharmacie de ce numéro FINESS n'est encore connue : indiquez son nom.")
UNKNOWN_TIER: Final = Text(
    en="Unknown expertise tier {tier}: expected one of {tiers}.",
    fr="Niveau d'expertise inconnu, {tier} : valeurs attendues {tiers}.")
NO_ROLE: Final = Text(
    en="This account has no practitioner role to verify.",
    fr="Ce compte n'a pas de rôle de professionnel à vérifier.")


@dataclass(frozen=True, slots=True)
class PersonName:
    """A practitioner's name as registered."""

    family: str
    given: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return " ".join((*self.given, self.family))


@dataclass(frozen=True, slots=True)
class Pharmacy:
    """The pharmacy a pharmacist registers with: its FINESS, and its name (needed only when the
    pharmacy is not known yet)."""

    finess: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Anchors:
    """The FHIR records an account acts through (relative references)."""

    practitioner: str | None = None
    practitioner_role: str | None = None
    organization: str | None = None


def check_rpps(rpps: str) -> None:
    """Raise AccountError (422) unless ``rpps`` is an RPPS number with a valid key."""
    if rpps_problems(rpps):
        raise AccountError("invalid-rpps", 422, INVALID_RPPS)


def check_finess(finess: str) -> None:
    """Raise AccountError (422) unless ``finess`` is a FINESS number with a valid key."""
    if finess_problems(finess):
        raise AccountError("invalid-finess", 422, INVALID_FINESS)


def check_tier(tier: str) -> None:
    """Raise AccountError (422) unless ``tier`` is a code of the expertise tiers."""
    if tier not in TIERS:
        raise AccountError("invalid-tier", 422, UNKNOWN_TIER, tier=tier, tiers=", ".join(TIERS))


def tier_names() -> dict[str, tuple[str, str]]:
    """Each tier code's name in French and in English, from the guide's CodeSystem."""
    system = load_guide().code_systems.get(TIER_SYSTEM, {})
    names: dict[str, tuple[str, str]] = {}
    for concept in system.get("concept", ()):
        english = next((d.get("value") for d in concept.get("designation", ())
                        if d.get("language") == "en"), concept.get("display"))
        names[str(concept.get("code"))] = (str(concept.get("display")), str(english))
    return names


class PractitionerDirectory:
    """Registration's FHIR records, written through ``engine`` (validated like any write)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def find_pharmacy(self, finess: str) -> str | None:
        """The reference of the Organization carrying this FINESS, or None."""
        return await self._find("Organization", FINESS_SYSTEM, finess)

    async def find_practitioner(self, rpps: str) -> str | None:
        """The reference of the Practitioner carrying this RPPS number, or None."""
        return await self._find("Practitioner", RPPS_SYSTEM, rpps)

    async def register_pharmacist(self, name: PersonName, *, email: str, pharmacy: Pharmacy,
                                  rpps: str | None = None) -> Anchors:
        """The pharmacy (found or created), the pharmacist's Practitioner and active role."""
        check_finess(pharmacy.finess)
        if rpps is not None:
            check_rpps(rpps)
        organization = await self._pharmacy(pharmacy)
        practitioner = await self._practitioner(name, email=email, rpps=rpps,
                                                profession=PHARMACIST_PROFESSION)
        role = await self._create("PractitionerRole", {
            "resourceType": "PractitionerRole",
            "meta": {"profile": [PROFILES + "pictaderm-practitioner-role"]},
            "text": _narrative(f"{name.text}, pharmacien / pharmacist"),
            "active": True,
            "practitioner": {"reference": practitioner, "display": name.text},
            "organization": {"reference": organization},
            "code": [_tier_concept(PHARMACIST_CODE)],
        })
        return Anchors(practitioner=practitioner, practitioner_role=role,
                       organization=organization)

    async def register_doctor(self, name: PersonName, *, email: str, rpps: str) -> Anchors:
        """The doctor's Practitioner (found by RPPS or created) and a role awaiting
        verification: inactive, without a tier."""
        check_rpps(rpps)
        practitioner = await self._practitioner(name, email=email, rpps=rpps,
                                                profession=DOCTOR_PROFESSION)
        role = await self._create("PractitionerRole", {
            "resourceType": "PractitionerRole",
            "text": _narrative(f"{name.text}, médecin en attente de vérification / "
                               "doctor awaiting verification"),
            "active": False,
            "practitioner": {"reference": practitioner, "display": name.text},
        })
        return Anchors(practitioner=practitioner, practitioner_role=role)

    async def register_practitioner(self, name: PersonName, *, email: str,
                                    rpps: str) -> Anchors:
        """A doctor's Practitioner alone (a medical director, who verifies but takes no case)."""
        check_rpps(rpps)
        practitioner = await self._practitioner(name, email=email, rpps=rpps,
                                                profession=DOCTOR_PROFESSION)
        return Anchors(practitioner=practitioner)

    async def verify_doctor(self, role: str, tier: str) -> None:
        """Make a doctor's role active in ``tier`` (the guide's role profile then applies)."""
        check_tier(tier)
        resource_type, _, id = role.partition("/")
        if resource_type != "PractitionerRole" or not id:
            raise AccountError("no-role", 409, NO_ROLE)
        current = await self._engine.read(resource_type, id)
        body = _json(current)
        meta = dict(body.get("meta") or {})
        profiles = [p for p in meta.get("profile", [])
                    if p != PROFILES + "pictaderm-practitioner-role"]
        meta["profile"] = [*profiles, PROFILES + "pictaderm-practitioner-role"]
        body["meta"] = meta
        body["active"] = True
        body["code"] = [_tier_concept(tier)]
        display = body.get("practitioner", {}).get("display", "")
        body["text"] = _narrative(f"{display}, {tier_names().get(tier, (tier,))[0]}")
        await self._engine.update(resource_type, id, body, if_match=current.version)

    async def _pharmacy(self, pharmacy: Pharmacy) -> str:
        found = await self.find_pharmacy(pharmacy.finess)
        if found is not None:
            return found
        if not pharmacy.name or not pharmacy.name.strip():
            raise AccountError("pharmacy-name-required", 422, PHARMACY_NAME_NEEDED)
        name = pharmacy.name.strip()
        return await self._create("Organization", {
            "resourceType": "Organization",
            "meta": {"profile": [PROFILES + "pictaderm-pharmacy"]},
            "text": _narrative(f"{name} (FINESS {pharmacy.finess})"),
            "identifier": [{
                "type": {"coding": [{"system": IDENTIFIER_TYPES, "code": "FINEG"}]},
                "system": FINESS_SYSTEM, "value": pharmacy.finess}],
            "active": True,
            "type": [{"coding": [{"system": SECTORS, "code": PHARMACY_SECTOR,
                                  "display": "Pharmacie d'officine"}]}],
            "name": name,
        }, if_none_exist=f"identifier={FINESS_SYSTEM}|{pharmacy.finess}")

    async def _practitioner(self, name: PersonName, *, email: str, rpps: str | None,
                            profession: str) -> str:
        resource: ResourceDict = {
            "resourceType": "Practitioner",
            "text": _narrative(name.text),
            "active": True,
            "name": [{"family": name.family, **({"given": list(name.given)} if name.given
                                                 else {})}],
            "telecom": [{"system": "email", "value": email, "use": "work"}],
            "qualification": [{"code": {"coding": [{"system": PROFESSIONS,
                                                    "code": profession}]}}],
        }
        if rpps is None:
            return await self._create("Practitioner", resource)
        resource["meta"] = {"profile": [PROFILES + "pictaderm-practitioner"]}
        resource["identifier"] = [
            {"type": {"coding": [{"system": IDENTIFIER_TYPES, "code": "RPPS"}]},
             "system": RPPS_SYSTEM, "value": rpps},
            {"type": {"coding": [{"system": IDENTIFIER_TYPES, "code": "IDNPS"}]},
             "system": IDNPS_SYSTEM, "value": "8" + rpps}]
        return await self._create("Practitioner", resource,
                                  if_none_exist=f"identifier={RPPS_SYSTEM}|{rpps}")

    async def _create(self, resource_type: str, resource: ResourceDict, *,
                      if_none_exist: str | None = None) -> str:
        result = await self._engine.create(resource_type, resource, if_none_exist=if_none_exist,
                                           base_url=SEARCH_BASE)
        return f"{result.resource_type}/{result.id}"

    async def _find(self, resource_type: str, system: str, value: str) -> str | None:
        bundle = await self._engine.search(
            base_url=SEARCH_BASE, resource_type=resource_type,
            params=[("identifier", f"{system}|{value}"), ("_count", "1")])
        for entry in bundle.get("entry", ()):
            resource = entry.get("resource", {})
            return f"{resource_type}/{resource['id']}"
        return None


def _tier_concept(code: str) -> dict[str, Any]:
    display = tier_names().get(code, (code, code))[0]
    return {"coding": [{"system": TIER_SYSTEM, "code": code, "display": display}]}


def _narrative(text: str) -> dict[str, str]:
    return {"status": "generated",
            "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{html.escape(text)}</div>'}


def _json(result: ResourceResult) -> ResourceDict:
    if result.body is None:
        raise AccountError("no-role", 409, NO_ROLE)
    body: ResourceDict = json.loads(result.body)
    return body
