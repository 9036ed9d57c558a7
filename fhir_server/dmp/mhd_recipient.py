"""This server as an MHD Document Recipient: a Provide Document Bundle (ITI-65) is checked
whole before anything of it is stored.

A Bundle that declares the guide's ``pictaderm-pdsm-provide-bundle`` profile must be a
transaction holding exactly one SubmissionSet ``List`` (``MHDlistTypes#submissionset``); each
of its entries names a DocumentReference of the Bundle, and each DocumentReference of the
Bundle is listed by it, has a ``masterIdentifier`` (system and value), and each of its
attachments points (``url`` = a fullUrl) at a Binary of the Bundle whose decoded bytes have the
attachment's ``size`` and base64 SHA-1 ``hash``. What a FHIRPath invariant cannot say (the
size and hash of the bytes) is why this check exists; the profile's invariants say the rest
again for validators of the guide. Otherwise: 422, one issue per problem, each naming the
entry (``Bundle.entry[2].resource.content[0].attachment.hash``), nothing stored.

Registered as an engine bundle check (``Hooks.before_bundle``) in ``fhir_server/runtime.py``.
Issues name entries and elements, never what the documents hold.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from fhir_server.errors import ErrorCode, FhirError, IssueType
from fhir_server.types import ResourceDict
from fhir_server.validation.messages import Text, ValidationIssue, make_issue
from mappers.mhd_bundle import BUNDLE_PROFILE, MHD_LIST_TYPES

if TYPE_CHECKING:
    from fhir_server.engine.context import EngineContext

RULE: Final = "mhd-recipient"

NOT_TRANSACTION = Text(
    en="a Provide Document Bundle (ITI-65) is a transaction, not a '{kind}'",
    fr="une transaction de versement (ITI-65) est de type transaction, pas « {kind} »")
SUBMISSION_SETS = Text(
    en="the Bundle must hold exactly one SubmissionSet List (List.code "
       "MHDlistTypes#submissionset); it holds {count}",
    fr="la transaction doit contenir un et un seul lot de soumission (List de code "
       "MHDlistTypes#submissionset) ; elle en contient {count}")
DANGLING_ITEM = Text(
    en="this entry of the SubmissionSet names no DocumentReference of the Bundle",
    fr="cette entrée du lot de soumission ne désigne aucune DocumentReference de la transaction")
NOT_LISTED = Text(
    en="this DocumentReference is not an entry of the SubmissionSet",
    fr="cette DocumentReference n'est pas une entrée du lot de soumission")
NO_MASTER_IDENTIFIER = Text(
    en="the DocumentReference needs a masterIdentifier (system and value): the document's "
       "uniqueId",
    fr="la DocumentReference doit porter un masterIdentifier (system et value) : "
       "l'identifiant unique du document")
NO_CONTENT = Text(en="the DocumentReference has no content",
                  fr="la DocumentReference n'a pas de contenu")
NO_BINARY = Text(
    en="the attachment's url names no Binary of the Bundle (it must be a Binary entry's "
       "fullUrl)",
    fr="l'url de la pièce jointe ne désigne aucune ressource Binary de la transaction (elle "
       "doit être le fullUrl d'une entrée Binary)")
BAD_DATA = Text(en="the Binary's data is not valid base64",
                fr="les données de la ressource Binary ne sont pas en base64 valide")
MISSING_CHECK = Text(
    en="the attachment needs its {element}: the recipient checks it against the Binary",
    fr="la pièce jointe doit porter son {element} : le destinataire le vérifie sur la "
       "ressource Binary")
WRONG_SIZE = Text(
    en="the attachment's size ({stated}) is not the size of the Binary's bytes ({actual})",
    fr="la taille indiquée ({stated}) n'est pas celle des octets de la ressource Binary "
       "({actual})")
WRONG_HASH = Text(
    en="the attachment's hash is not the SHA-1 of the Binary's bytes",
    fr="l'empreinte (hash) indiquée n'est pas le SHA-1 des octets de la ressource Binary")


@dataclass(frozen=True, slots=True)
class Entry:
    """A Bundle entry's resource, where it sits and its fullUrl."""

    index: int
    full_url: str | None
    resource: Mapping[str, Any]

    @property
    def location(self) -> str:
        return f"Bundle.entry[{self.index}].resource"

    @property
    def resource_type(self) -> Any:
        return self.resource.get("resourceType")


def declares_provide_bundle(bundle: Mapping[str, Any]) -> bool:
    """Whether the Bundle declares the guide's PDSm-shaped Provide Document Bundle profile."""
    meta = bundle.get("meta")
    profiles = meta.get("profile") if isinstance(meta, dict) else None
    return isinstance(profiles, list) and any(
        isinstance(p, str) and p.split("|", 1)[0] == BUNDLE_PROFILE for p in profiles)


async def check_provide_bundle(bundle: ResourceDict, ctx: EngineContext) -> None:
    """The engine's bundle check: refuse (422) a declared Provide Document Bundle whose
    shape is not the one a document recipient can file."""
    if not declares_provide_bundle(bundle):
        return
    problems = provide_bundle_problems(bundle)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise FhirError(ErrorCode.INVALID_RESOURCE,
                        f"The Provide Document Bundle is refused: {first.diagnostics}{more}",
                        expression=first.expression, issues=tuple(problems))


def provide_bundle_problems(bundle: Mapping[str, Any]) -> list[ValidationIssue]:
    """Every problem of a Provide Document Bundle's shape (empty: it can be filed)."""
    if bundle.get("type") != "transaction":
        return [_issue(NOT_TRANSACTION, "Bundle.type", IssueType.VALUE,
                       kind=str(bundle.get("type"))[:40])]
    entries = list(_entries(bundle))
    by_url = {entry.full_url: entry for entry in entries if entry.full_url}
    sets = [entry for entry in entries if _is_submission_set(entry.resource)]
    if len(sets) != 1:
        return [_issue(SUBMISSION_SETS, "Bundle.entry", IssueType.INVARIANT, count=len(sets))]
    problems: list[ValidationIssue] = []
    listed: set[str] = set()
    for position, item in _items(sets[0]):
        target = by_url.get(item) if item is not None else None
        if item is None or target is None or target.resource_type != "DocumentReference":
            problems.append(_issue(DANGLING_ITEM,
                                   f"{sets[0].location}.entry[{position}].item",
                                   IssueType.INVARIANT))
        else:
            listed.add(item)
    for entry in entries:
        if entry.resource_type == "DocumentReference":
            problems += _document_problems(entry, by_url, listed)
    return problems


def _entries(bundle: Mapping[str, Any]) -> Iterator[Entry]:
    entries = bundle.get("entry")
    for index, entry in enumerate(entries if isinstance(entries, list) else ()):
        if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
            full_url = entry.get("fullUrl")
            yield Entry(index, full_url if isinstance(full_url, str) else None,
                        entry["resource"])


def _is_submission_set(resource: Mapping[str, Any]) -> bool:
    if resource.get("resourceType") != "List":
        return False
    code = resource.get("code")
    codings = code.get("coding") if isinstance(code, dict) else None
    return any(isinstance(c, dict) and c.get("system") == MHD_LIST_TYPES
               and c.get("code") == "submissionset" for c in codings or ())


def _items(submission_set: Entry) -> Iterator[tuple[int, str | None]]:
    """(position, reference) of each entry of the SubmissionSet."""
    items = submission_set.resource.get("entry")
    for position, item in enumerate(items if isinstance(items, list) else ()):
        reference = item.get("item", {}).get("reference") if isinstance(item, dict) else None
        yield position, reference if isinstance(reference, str) else None


def _document_problems(entry: Entry, by_url: Mapping[str, Entry],
                       listed: set[str]) -> list[ValidationIssue]:
    document = entry.resource
    problems: list[ValidationIssue] = []
    if entry.full_url not in listed:
        problems.append(_issue(NOT_LISTED, entry.location, IssueType.INVARIANT))
    master = document.get("masterIdentifier")
    if not (isinstance(master, dict) and master.get("system") and master.get("value")):
        problems.append(_issue(NO_MASTER_IDENTIFIER, f"{entry.location}.masterIdentifier",
                               IssueType.REQUIRED))
    contents = document.get("content")
    if not isinstance(contents, list) or not contents:
        problems.append(_issue(NO_CONTENT, f"{entry.location}.content", IssueType.REQUIRED))
        return problems
    for position, content in enumerate(contents):
        attachment = content.get("attachment") if isinstance(content, dict) else None
        where = f"{entry.location}.content[{position}].attachment"
        problems += _attachment_problems(attachment if isinstance(attachment, dict) else {},
                                         where, by_url)
    return problems


def _attachment_problems(attachment: Mapping[str, Any], where: str,
                         by_url: Mapping[str, Entry]) -> list[ValidationIssue]:
    url = attachment.get("url")
    binary = by_url.get(url) if isinstance(url, str) else None
    if binary is None or binary.resource_type != "Binary":
        return [_issue(NO_BINARY, f"{where}.url", IssueType.INVARIANT)]
    data = binary.resource.get("data", "")
    try:
        content = base64.b64decode(data if isinstance(data, str) else "", validate=True)
    except (binascii.Error, ValueError):
        return [_issue(BAD_DATA, f"{binary.location}.data", IssueType.VALUE)]
    problems: list[ValidationIssue] = []
    size, stated_hash = attachment.get("size"), attachment.get("hash")
    if size is None:
        problems.append(_issue(MISSING_CHECK, f"{where}.size", IssueType.REQUIRED,
                               element="size"))
    elif size != len(content):
        problems.append(_issue(WRONG_SIZE, f"{where}.size", IssueType.VALUE,
                               stated=str(size)[:20], actual=len(content)))
    if stated_hash is None:
        problems.append(_issue(MISSING_CHECK, f"{where}.hash", IssueType.REQUIRED,
                               element="hash"))
    elif stated_hash != base64.b64encode(hashlib.sha1(content).digest()).decode("ascii"):
        problems.append(_issue(WRONG_HASH, f"{where}.hash", IssueType.VALUE))
    return problems


def _issue(text: Text, location: str, issue_type: IssueType, **params: Any) -> ValidationIssue:
    return make_issue(text, location, issue_type=issue_type, rule=RULE, **params)
