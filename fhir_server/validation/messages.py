"""Validation messages in French and English, and the issues that carry both.

``Issue`` (``fhir_server/errors.py``) has one message, ``diagnostics``. A validation issue adds
the French one (``ValidationIssue.message_fr``) and the rule that produced it. In an
OperationOutcome (``issue_json``) the French message is ``details.text``, the text a French
pharmacy's software shows its user, with the English one attached to it by the standard
``translation`` extension, and ``diagnostics`` keeps the English one for developers and for
clients that read no extension: every client finds a message it can show, and a client that
knows the extension finds both languages in one place.

Every message is one ``Text`` of this catalogue, so the two languages cannot drift apart. The
structure layer (``structure.py``) writes English only: ``translated`` gives its issues their
French message from the table of its sentences below.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from fhir_server.errors import Issue, IssueType
from fhir_server.types import ResourceDict

TRANSLATION_EXTENSION: Final = "http://hl7.org/fhir/StructureDefinition/translation"


@dataclass(frozen=True, slots=True)
class Text:
    """One message in both languages, with ``{placeholders}``."""

    en: str
    fr: str

    def render(self, **params: Any) -> tuple[str, str]:
        return self.en.format(**params), self.fr.format(**params)


@dataclass(frozen=True, slots=True)
class ValidationIssue(Issue):
    """An Issue with its French message and the rule that raised it (``ele-1``, ``binding``…)."""

    message_fr: str = ""
    rule: str | None = None


def make_issue(text: Text, location: str, *, severity: str = "error",
               issue_type: IssueType = IssueType.INVALID, rule: str | None = None,
               french: Mapping[str, Any] | None = None, **params: Any) -> ValidationIssue:
    """An issue at ``location`` (a FHIRPath such as ``Patient.identifier[0].value``);
    ``french`` replaces some ``params`` in the French message (e.g. a translated sentence)."""
    english = text.en.format(**params)
    french_text = text.fr.format(**{**params, **(french or {})})
    return located_issue(location, english, french_text, severity=severity,
                         issue_type=issue_type, rule=rule)


def located_issue(location: str, english: str, french: str, *, severity: str,
                  issue_type: IssueType, rule: str | None) -> ValidationIssue:
    """An issue at ``location`` with its message already rendered in both languages (by
    ``make_issue``, or once for all the issues of one rule)."""
    return ValidationIssue(diagnostics=f"{location}: {english}", issue_type=issue_type,
                           severity=severity, expression=(location,),
                           message_fr=f"{location} : {french}", rule=rule)


def issue_json(issue: Issue) -> ResourceDict:
    """One OperationOutcome.issue: French ``details.text`` with its English translation, and
    English ``diagnostics``. A plain ``Issue`` has its English message only."""
    out: ResourceDict = {"severity": issue.severity, "code": issue.issue_type.value,
                         "diagnostics": issue.diagnostics}
    french = issue.message_fr if isinstance(issue, ValidationIssue) else ""
    if french:
        out["details"] = {"text": french, "_text": {"extension": [{
            "url": TRANSLATION_EXTENSION,
            "extension": [{"url": "lang", "valueCode": "en"},
                          {"url": "content", "valueString": issue.diagnostics}],
        }]}}
    if issue.expression:
        out["expression"] = list(issue.expression)
    return out


# --- the catalogue ------------------------------------------------------------------------------

STRUCTURE_FALLBACK = Text(en="{message}", fr="erreur de structure : {message}")

NOT_IN_VALUE_SET = Text(
    en="{code} is not in the value set {value_set} (required binding)",
    fr="{code} n'appartient pas au jeu de valeurs {value_set} (liaison obligatoire)")
NO_CODING_IN_VALUE_SET = Text(
    en="none of the codes {codes} is in the value set {value_set} (required binding)",
    fr="aucun des codes {codes} n'appartient au jeu de valeurs {value_set} "
       "(liaison obligatoire)")
CODE_REQUIRED = Text(
    en="a code from the value set {value_set} is required (required binding), "
       "text alone is not enough",
    fr="un code du jeu de valeurs {value_set} est obligatoire (liaison obligatoire), "
       "un texte seul ne suffit pas")
CODE_NOT_CHECKED = Text(
    en="{code} was not checked against the value set {value_set}: this server does not "
       "hold its code system",
    fr="{code} n'a pas été vérifié dans le jeu de valeurs {value_set} : ce serveur ne "
       "détient pas son système de codes")
VALUE_SET_UNKNOWN = Text(
    en="the value set {value_set} is not known to this server: the code was not checked",
    fr="le jeu de valeurs {value_set} est inconnu de ce serveur : le code n'a pas été vérifié")

INVARIANT_FAILED = Text(
    en="constraint {key} is not met: {human}",
    fr="la contrainte {key} n'est pas respectée : {human}")
INVARIANT_NOT_EVALUATED = Text(
    en="constraint {key} could not be evaluated ({reason})",
    fr="la contrainte {key} n'a pas pu être évaluée ({reason})")

PROFILE_UNKNOWN = Text(
    en="the profile {profile} is not known to this server",
    fr="le profil {profile} est inconnu de ce serveur")
PROFILE_UNUSABLE = Text(
    en="the profile {profile} cannot be used: {reason}",
    fr="le profil {profile} est inutilisable : {reason}")
PROFILE_OTHER_TYPE = Text(
    en="the profile {profile} applies to {expected}, not to {actual}",
    fr="le profil {profile} s'applique à {expected}, pas à {actual}")
ELEMENT_MISSING = Text(
    en="is required by the profile {profile} (at least {min})",
    fr="est obligatoire selon le profil {profile} (au moins {min})")
TOO_FEW = Text(
    en="has {count} item(s), the profile {profile} requires at least {min}",
    fr="compte {count} élément(s), le profil {profile} en exige au moins {min}")
TOO_MANY = Text(
    en="has {count} item(s), the profile {profile} allows at most {max}",
    fr="compte {count} élément(s), le profil {profile} en permet au plus {max}")
NOT_ALLOWED = Text(
    en="is not allowed by the profile {profile}",
    fr="n'est pas permis par le profil {profile}")
SLICE_TOO_FEW = Text(
    en="slice {slice} has {count} item(s), the profile {profile} requires at least {min}",
    fr="la slice {slice} compte {count} élément(s), le profil {profile} en exige au moins "
       "{min}")
SLICE_TOO_MANY = Text(
    en="slice {slice} has {count} item(s), the profile {profile} allows at most {max}",
    fr="la slice {slice} compte {count} élément(s), le profil {profile} en permet au plus "
       "{max}")
SLICE_NOT_ALLOWED = Text(
    en="belongs to slice {slice}, which the profile {profile} does not allow",
    fr="relève de la slice {slice}, que le profil {profile} n'autorise pas")
NO_SLICE_MATCHED = Text(
    en="matches none of the slices {slices} and the profile {profile} allows no other item",
    fr="ne correspond à aucune des slices {slices} et le profil {profile} n'admet pas "
       "d'autre élément")
UNSLICED_NOT_AT_END = Text(
    en="an item outside the slices must come after the sliced items (profile {profile})",
    fr="un élément hors des slices doit venir après les éléments des slices "
       "(profil {profile})")
SLICES_OUT_OF_ORDER = Text(
    en="the items must follow the order of the slices {slices} (profile {profile})",
    fr="les éléments doivent suivre l'ordre des slices {slices} (profil {profile})")
PROFILE_PART_NOT_APPLIED = Text(
    en="{element} of the profile {profile} cannot be applied: {reason}",
    fr="{element} du profil {profile} ne peut pas être appliqué : {reason}")
FIXED_VALUE = Text(
    en="must be exactly {expected} (fixed by the profile {profile}), found {actual}",
    fr="doit valoir exactement {expected} (valeur fixée par le profil {profile}), "
       "trouvé {actual}")
PATTERN_VALUE = Text(
    en="must contain {expected} (pattern of the profile {profile}), found {actual}",
    fr="doit contenir {expected} (motif imposé par le profil {profile}), trouvé {actual}")
TYPE_NOT_ALLOWED = Text(
    en="type {type} is not allowed by the profile {profile} (allowed: {allowed})",
    fr="le type {type} n'est pas permis par le profil {profile} (permis : {allowed})")

REFERENCE_TARGET = Text(
    en="refers to a {type}, but only {allowed} may be referred to here",
    fr="désigne une ressource {type}, or seules les ressources {allowed} sont permises ici")

NIR_FORMAT = Text(
    en="is not a NIR: 15 characters expected, 13 digits (2A or 2B allowed for Corsica in "
       "positions 6-7) then a 2-digit key",
    fr="n'est pas un NIR : 15 caractères attendus, 13 chiffres (2A ou 2B permis pour la Corse "
       "en positions 6-7) puis une clé de 2 chiffres")
NIR_KEY = Text(
    en="the NIR key is wrong (the key is 97 minus the first 13 digits modulo 97)",
    fr="la clé du NIR est fausse (la clé vaut 97 moins les 13 premiers chiffres modulo 97)")
NIR_NOT_DEFINITIVE = Text(
    en="the NIR is not definitive (first digit {digit}: {kind}); a definitive NIR, "
       "starting with 1 or 2, is required here",
    fr="le NIR n'est pas définitif (premier chiffre {digit} : {kind}) ; un NIR définitif, "
       "commençant par 1 ou 2, est exigé ici")
NIR_KIND_PROVISIONAL = Text(en="a provisional number", fr="numéro provisoire")
NIR_KIND_OTHER = Text(en="not a definitive number", fr="numéro non définitif")
RPPS_FORMAT = Text(
    en="is not an RPPS number: 11 digits expected",
    fr="n'est pas un numéro RPPS : 11 chiffres attendus")
RPPS_KEY = Text(
    en="the RPPS check digit (Luhn) is wrong",
    fr="la clé de contrôle du numéro RPPS (Luhn) est fausse")
FINESS_FORMAT = Text(
    en="is not a FINESS number: 9 characters expected, digits (2A or 2B allowed first for "
       "Corsica)",
    fr="n'est pas un numéro FINESS : 9 caractères attendus, des chiffres (2A ou 2B permis en "
       "tête pour la Corse)")
FINESS_KEY = Text(
    en="the FINESS check digit (Luhn) is wrong",
    fr="la clé de contrôle du numéro FINESS (Luhn) est fausse")
BUSINESS_CHECK_UNKNOWN = Text(
    en="the profile {profile} names an unknown business check {check}",
    fr="le profil {profile} désigne un contrôle métier inconnu, {check}")


# --- the structure layer's sentences ------------------------------------------------------------

_JSON_KINDS_FR: Final = {
    "JSON true or false": "true ou false JSON",
    "a JSON integer": "un entier JSON",
    "a JSON number": "un nombre JSON",
    "a JSON string": "une chaîne JSON",
}

_STRUCTURE_FR: Final[tuple[tuple[re.Pattern[str], str], ...]] = tuple(
    (re.compile(pattern, re.DOTALL), french) for pattern, french in (
        (r"the resource is nested too deeply to validate",
         "la ressource est trop profondément imbriquée pour être validée"),
        (r"(?P<v>.+) is not a resource \(expected a JSON object with a resourceType\)",
         "{v} n'est pas une ressource (un objet JSON avec un resourceType est attendu)"),
        (r"resourceType is missing", "resourceType est absent"),
        (r"(?P<v>.+) is not a known FHIR R4 resource type",
         "{v} n'est pas un type de ressource FHIR R4 connu"),
        (r"expected a resource of type (?P<e>\S+), found (?P<f>\S+)",
         "une ressource de type {e} est attendue, {f} trouvée"),
        (r"required element '(?P<n>[^']+)' is missing",
         "l'élément obligatoire « {n} » est absent"),
        (r"unknown element '(?P<n>.+)'", "élément inconnu « {n} »"),
        (r"only one form of '(?P<c>[^']+)' is allowed, found both '(?P<a>[^']+)' and "
         r"'(?P<b>[^']+)'",
         "une seule forme de « {c} » est permise, or « {a} » et « {b} » sont présents"),
        (r"'(?P<c>[^']+)' must be an array aligned with '(?P<k>[^']+)'",
         "« {c} » doit être un tableau aligné sur « {k} »"),
        (r"'(?P<c>[^']+)' has (?P<n>\d+) items but '(?P<k>[^']+)' has (?P<m>\d+); "
         r"they must be aligned",
         "« {c} » compte {n} éléments mais « {k} » en compte {m} ; ils doivent être alignés"),
        (r"null is not allowed here \(nothing to extend\)",
         "null n'est pas permis ici (rien à étendre)"),
        (r"null is not allowed here \(omit the element instead\)",
         "null n'est pas permis ici (omettre plutôt l'élément)"),
        (r"must be a single value, not an array \(maximum cardinality 1\)",
         "doit être une valeur unique, pas un tableau (cardinalité maximale 1)"),
        (r"must be an array \(the element repeats\)",
         "doit être un tableau (l'élément est répétable)"),
        (r"an empty array is not allowed \(omit the element instead\)",
         "un tableau vide n'est pas permis (omettre plutôt l'élément)"),
        (r"has (?P<n>\d+) items, at most (?P<m>\d+) allowed",
         "compte {n} éléments, {m} au plus sont permis"),
        (r"has (?P<n>\d+) items, at least (?P<m>\d+) required",
         "compte {n} éléments, {m} au moins sont exigés"),
        (r"(?P<v>.+) is not a valid (?P<t>\w+) \(expected a JSON object\)",
         "{v} n'est pas un {t} valide (un objet JSON est attendu)"),
        (r"an empty object is not allowed \(omit the element instead\)",
         "un objet vide n'est pas permis (omettre plutôt l'élément)"),
        (r"(?P<v>.+) is not a valid (?P<t>\w+) \(no such day\)",
         "{v} n'est pas un {t} valide (ce jour n'existe pas)"),
        (r"(?P<v>.+) is not a valid (?P<t>\w+) \(outside the 32-bit range\)",
         "{v} n'est pas un {t} valide (hors de l'intervalle des entiers sur 32 bits)"),
        (r"(?P<v>.+) is not a valid (?P<t>\w+) \(expected (?P<kind>[^()]+)\)",
         "{v} n'est pas un {t} valide (attendu : {kind})"),
        (r"an empty string is not a valid (?P<t>\w+)",
         "une chaîne vide n'est pas un {t} valide"),
        (r"the narrative must be XHTML starting with '<div'",
         "le narratif doit être du XHTML commençant par '<div'"),
        (r"(?P<v>.+) is not a valid (?P<t>\w+)", "{v} n'est pas un {t} valide"),
    )
)


def french_structure_message(message: str) -> str | None:
    """The French for one of the structure layer's English sentences; None if not known."""
    for pattern, french in _STRUCTURE_FR:
        match = pattern.fullmatch(message)
        if match is not None:
            params = match.groupdict()
            if "kind" in params:
                params["kind"] = _JSON_KINDS_FR.get(params["kind"], params["kind"])
            return french.format(**params)
    return None


def translated(issue: Issue, *, rule: str = "structure") -> ValidationIssue:
    """A structure-layer issue with its French message (``location: message`` split at the
    first ``: ``, since locations never contain one)."""
    location, separator, message = issue.diagnostics.partition(": ")
    if not separator:
        location, message = "", issue.diagnostics
    french = french_structure_message(message)
    if french is None:
        french = STRUCTURE_FALLBACK.render(message=message)[1]
    prefix = f"{location} : " if location else ""
    return ValidationIssue(diagnostics=issue.diagnostics, issue_type=issue.issue_type,
                           severity=issue.severity, expression=issue.expression,
                           code=issue.code, message_fr=prefix + french, rule=rule)
