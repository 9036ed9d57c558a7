"""Python equivalents of core invariants, keyed by their exact text: the most frequent ones,
and those comparing dates, which fhirpathpy gets wrong.

``fhirpathpy`` takes tens to hundreds of microseconds per evaluation, and some core invariants
apply to every element (``ele-1``), every extension, reference, resource or Bundle entry. Each
function here gives the verdict of the published expression on a structurally valid value (the
validator runs them after the structure layer): True holds, False fails, and None hands the
evaluation to fhirpathpy (e.g. ``dom-3`` when there are contained resources). An empty FHIRPath
result counts as holding. ``tests/unit/validation/test_invariants.py`` checks each against
fhirpathpy on values that hold and values that fail. A profile constraint with another text is
always evaluated by fhirpathpy.

fhirpathpy compares two date/time elements as text (``lastModified >= authoredOn``), so time
zones and precisions are not taken into account: ``per-1`` (Period), ``inv-1`` (Task) and
``mdd-1`` (MedicationDispense) are computed here with FHIRPath's rules
(https://hl7.org/fhirpath/N1/#comparison): instants compared in UTC, and a comparison between
different precisions that the common components do not decide is empty (unknown, so it holds).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

from fhir_server.validation.walk import ELE_1, Visit

FastCheck = Callable[[Visit], bool | None]

DOM_3: Final = (
    "contained.where((('#'+id in (%resource.descendants().reference | "
    "%resource.descendants().as(canonical) | %resource.descendants().as(uri) | "
    "%resource.descendants().as(url))) or descendants().where(reference = '#').exists() or "
    "descendants().where(as(canonical) = '#').exists() or descendants().where(as(canonical) "
    "= '#').exists()).not()).trace('unmatched', id).empty()")
"""The published text of dom-3."""
REF_1: Final = ("reference.startsWith('#').not() or (reference.substring(1).trace('url') in "
                "%rootResource.contained.id.trace('ids'))")
"""The published text of ref-1."""


def has_value_or_children(visit: Visit) -> bool | None:
    """ele-1: ``hasValue() or (children().count() > id.count())``."""
    value = visit.value
    if isinstance(value, dict):  # a key other than these two
        return len(value) > ("id" in value) + ("resourceType" in value)
    if value is not None:
        return True
    companion = visit.companion
    return isinstance(companion, dict) and any(key != "id" for key in companion)


def extensions_or_value(visit: Visit) -> bool | None:
    """ext-1: ``extension.exists() != value.exists()``."""
    value = visit.value
    if not isinstance(value, dict):
        return True
    has_extensions = bool(value.get("extension"))
    has_value = any(key.startswith("value") and key[5:6].isupper() for key in value)
    return has_extensions != has_value


def _contained(visit: Visit) -> Iterator[Mapping[str, Any]]:
    value = visit.value
    items = value.get("contained") if isinstance(value, dict) else None
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict):
            yield item


def _meta(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = resource.get("meta")
    return meta if isinstance(meta, dict) else {}


def no_nested_contained(visit: Visit) -> bool | None:
    """dom-2: ``contained.contained.empty()``."""
    return not any(item.get("contained") for item in _contained(visit))


def contained_referenced(visit: Visit) -> bool | None:
    """dom-3 without contained resources (with some, fhirpathpy decides)."""
    return None if any(True for _ in _contained(visit)) else True


def contained_without_version(visit: Visit) -> bool | None:
    """dom-4: ``contained.meta.versionId.empty() and contained.meta.lastUpdated.empty()``."""
    return not any("versionId" in _meta(item) or "lastUpdated" in _meta(item)
                   for item in _contained(visit))


def contained_without_security(visit: Visit) -> bool | None:
    """dom-5: ``contained.meta.security.empty()``."""
    return not any(_meta(item).get("security") for item in _contained(visit))


def has_narrative(visit: Visit) -> bool | None:
    """dom-6: ``text.`div`.exists()``."""
    value = visit.value
    text = value.get("text") if isinstance(value, dict) else None
    return isinstance(text, dict) and "div" in text


def local_reference_contained(visit: Visit) -> bool | None:
    """ref-1 as R5 corrected it (``REF_1``): a local reference ``#id`` names a contained
    resource of the root resource; ``#`` (the container) passes."""
    value = visit.value
    reference = value.get("reference") if isinstance(value, dict) else None
    if not isinstance(reference, str) or not reference.startswith("#") or reference == "#":
        return True
    return reference[1:] in visit.frame.contained


def entry_has_content(visit: Visit) -> bool | None:
    """bdl-5: ``resource.exists() or request.exists() or response.exists()``."""
    value = visit.value
    return isinstance(value, dict) and any(k in value for k in ("resource", "request",
                                                                "response"))


def full_url_without_version(visit: Visit) -> bool | None:
    """bdl-8: ``fullUrl.exists() implies fullUrl.contains('/_history/').not()``."""
    value = visit.value
    full_url = value.get("fullUrl") if isinstance(value, dict) else None
    return not isinstance(full_url, str) or "/_history/" not in full_url


def answer_or_items(visit: Visit) -> bool | None:
    """qrs-1: ``(answer.exists() and item.exists()).not()``."""
    value = visit.value
    return not (isinstance(value, dict) and value.get("answer") and value.get("item"))


_DATE_TIME: Final = re.compile(
    r"(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})(?:T(?P<hour>\d{2}):(?P<minute>\d{2})"
    r"(?::(?P<second>\d{2}(?:\.\d+)?))?(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?")


def _components(text: str, *, in_utc: bool) -> tuple[float, ...] | None:
    """A date/time's components from the year down to the precision given (seconds with their
    fraction), the time moved to UTC when ``in_utc`` and a zone is given."""
    match = _DATE_TIME.fullmatch(text)
    if match is None:
        return None
    parts = match.groupdict()
    if parts["hour"] is not None and in_utc and parts["zone"] is not None:
        moment = datetime(int(parts["year"]), int(parts["month"]), int(parts["day"]),
                          int(parts["hour"]), int(parts["minute"]), tzinfo=_zone(parts["zone"]))
        moment = moment.astimezone(UTC)
        found: list[float] = [moment.year, moment.month, moment.day, moment.hour, moment.minute]
        if parts["second"] is not None:
            found.append(float(parts["second"]))  # zone offsets are whole minutes
        return tuple(found)
    names = ("year", "month", "day", "hour", "minute", "second")
    return tuple(float(parts[name]) for name in names if parts[name] is not None)


def _zone(text: str) -> timezone:
    if text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    return timezone(sign * timedelta(hours=int(text[1:3]), minutes=int(text[4:6])))


def compare_date_times(left: str, right: str) -> int | None:
    """-1, 0 or 1 as ``left`` is before, the same as or after ``right``; None when unknown (a
    value unreadable, or different precisions the common components do not decide)."""
    both_timed = "T" in left and "T" in right
    first = _components(left, in_utc=both_timed)
    second = _components(right, in_utc=both_timed)
    if first is None or second is None:
        return None
    for a, b in zip(first, second, strict=False):
        if a != b:
            return -1 if a < b else 1
    return 0 if len(first) == len(second) else None


def _ordered(visit: Visit, earlier: str, later: str) -> bool | None:
    """``earlier`` is not after ``later`` (either absent, or unknown: holds)."""
    value = visit.value
    if not isinstance(value, dict):
        return True
    first, second = value.get(earlier), value.get(later)
    if not isinstance(first, str) or not isinstance(second, str):
        return True
    order = compare_date_times(first, second)
    return order is None or order <= 0


def period_in_order(visit: Visit) -> bool | None:
    """per-1: ``start.hasValue().not() or end.hasValue().not() or (start <= end)``."""
    return _ordered(visit, "start", "end")


def task_modified_after_authored(visit: Visit) -> bool | None:
    """inv-1 of Task: ``… or lastModified >= authoredOn``."""
    return _ordered(visit, "authoredOn", "lastModified")


def handed_over_after_prepared(visit: Visit) -> bool | None:
    """mdd-1: ``… or whenHandedOver >= whenPrepared``."""
    return _ordered(visit, "whenPrepared", "whenHandedOver")


def _entries(visit: Visit) -> list[Mapping[str, Any]]:
    value = visit.value
    entries = value.get("entry") if isinstance(value, dict) else None
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _bundle_type(visit: Visit) -> Any:
    return visit.value.get("type") if isinstance(visit.value, dict) else None


def total_only_in_searches(visit: Visit) -> bool | None:
    """bdl-1: ``total.empty() or (type = 'searchset') or (type = 'history')``."""
    value = visit.value
    return not (isinstance(value, dict) and "total" in value) or _bundle_type(visit) in (
        "searchset", "history")


def search_only_in_searchsets(visit: Visit) -> bool | None:
    """bdl-2: ``entry.search.empty() or (type = 'searchset')``."""
    return (not any("search" in entry for entry in _entries(visit))
            or _bundle_type(visit) == "searchset")


def _each_entry_has(visit: Visit, key: str, types: tuple[str, ...]) -> bool | None:
    kind = visit.frame.resource.get("type")
    if not isinstance(kind, str):
        return None
    expected = kind in types
    return all((key in entry) == expected for entry in _entries(visit))


def requests_match_type(visit: Visit) -> bool | None:
    """bdl-3: every entry has a request exactly when the Bundle is a batch, a transaction or a
    history."""
    return _each_entry_has(visit, "request", ("batch", "transaction", "history"))


def responses_match_type(visit: Visit) -> bool | None:
    """bdl-4: every entry has a response exactly when the Bundle is a batch-response, a
    transaction-response or a history."""
    return _each_entry_has(visit, "response",
                           ("batch-response", "transaction-response", "history"))


def distinct_full_urls(visit: Visit) -> bool | None:
    """bdl-7: ``(type = 'history') or entry.where(fullUrl.exists())
    .select(fullUrl&resource.meta.versionId).isDistinct()``."""
    if _bundle_type(visit) == "history":
        return True
    keys: list[str] = []
    for entry in _entries(visit):
        full_url = entry.get("fullUrl")
        if not isinstance(full_url, str):
            continue
        inner = entry.get("resource")
        version = _meta(inner).get("versionId") if isinstance(inner, dict) else None
        keys.append(full_url + (version if isinstance(version, str) else ""))
    return len(keys) == len(set(keys))


def _unless_type(kind: str) -> FastCheck:
    """``type = 'kind' implies …``: holds for any other type (fhirpathpy decides for it)."""
    def holds_for_other_types(visit: Visit) -> bool | None:
        return True if _bundle_type(visit) != kind else None
    return holds_for_other_types


FAST_CHECKS: Final[Mapping[str, FastCheck]] = {
    ELE_1: has_value_or_children,
    "extension.exists() != value.exists()": extensions_or_value,
    "contained.contained.empty()": no_nested_contained,
    DOM_3: contained_referenced,
    "contained.meta.versionId.empty() and contained.meta.lastUpdated.empty()":
        contained_without_version,
    "contained.meta.security.empty()": contained_without_security,
    "text.`div`.exists()": has_narrative,
    REF_1: local_reference_contained,
    "resource.exists() or request.exists() or response.exists()": entry_has_content,
    "fullUrl.exists() implies fullUrl.contains('/_history/').not()": full_url_without_version,
    "(answer.exists() and item.exists()).not()": answer_or_items,
    "total.empty() or (type = 'searchset') or (type = 'history')": total_only_in_searches,
    "entry.search.empty() or (type = 'searchset')": search_only_in_searchsets,
    "entry.all(request.exists() = (%resource.type = 'batch' or %resource.type = 'transaction' "
    "or %resource.type = 'history'))": requests_match_type,
    "entry.all(response.exists() = (%resource.type = 'batch-response' or %resource.type = "
    "'transaction-response' or %resource.type = 'history'))": responses_match_type,
    "(type = 'history') or entry.where(fullUrl.exists()).select(fullUrl&resource.meta.versionId)"
    ".isDistinct()": distinct_full_urls,
    "type = 'document' implies (identifier.system.exists() and identifier.value.exists())":
        _unless_type("document"),
    "type = 'document' implies (timestamp.hasValue())": _unless_type("document"),
    "type = 'document' implies entry.first().resource.is(Composition)": _unless_type("document"),
    "type = 'message' implies entry.first().resource.is(MessageHeader)": _unless_type("message"),
    "start.hasValue().not() or end.hasValue().not() or (start <= end)": period_in_order,
    "lastModified.exists().not() or authoredOn.exists().not() or lastModified >= authoredOn":
        task_modified_after_authored,
    "whenHandedOver.empty() or whenPrepared.empty() or whenHandedOver >= whenPrepared":
        handed_over_after_prepared,
}
"""Expression text -> its Python equivalent."""


_NAME: Final = r"[a-z][A-Za-z0-9]*"
_EMPTY_OR_EXISTS: Final = re.compile(rf"({_NAME})\.empty\(\) or ({_NAME})\.exists\(\)")
_ANY_EXISTS: Final = re.compile(rf"{_NAME}\.exists\(\)(?: or {_NAME}\.exists\(\))+")


def fast_check(expression: str) -> FastCheck | None:
    """The Python form of an invariant: from ``FAST_CHECKS``, or for the two shapes that many
    core invariants take on plain child elements, ``a.empty() or b.exists()`` (cpt-2, qty-3,
    att-1…) and ``a.exists() or b.exists() or …`` (pat-1…). None: fhirpathpy decides."""
    known = FAST_CHECKS.get(expression)
    if known is not None:
        return known
    if (pair := _EMPTY_OR_EXISTS.fullmatch(expression)) is not None:
        return _absent_or_present(pair.group(1), pair.group(2))
    if _ANY_EXISTS.fullmatch(expression) is not None:
        return _any_present(tuple(part.removesuffix(".exists()")
                                  for part in expression.split(" or ")))
    return None


def _present(value: Any, name: str) -> bool:
    """FHIRPath ``name.exists()`` on a JSON object: a value, or a ``_name`` companion (a
    primitive with only an id or extensions exists too)."""
    return isinstance(value, dict) and (
        value.get(name) not in (None, [], {}) or value.get(f"_{name}") not in (None, [], {}))


def _absent_or_present(absent: str, present: str) -> FastCheck:
    def check(visit: Visit) -> bool | None:
        return not _present(visit.value, absent) or _present(visit.value, present)
    return check


def _any_present(names: tuple[str, ...]) -> FastCheck:
    def check(visit: Visit) -> bool | None:
        return any(_present(visit.value, name) for name in names)
    return check

