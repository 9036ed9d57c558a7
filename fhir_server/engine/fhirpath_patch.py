"""FHIRPath Patch (https://hl7.org/fhir/R4/fhirpatch.html): read a Parameters patch, apply it.

``read_operations`` checks the shape of the document (a malformed document is a 400);
``apply_operation`` applies one operation to a working copy of the resource (an operation that
cannot be applied to this resource is a 422); ``without_empty_elements`` tidies the result.

Elements are found with ``fhirpathpy``. The objects it returns for complex elements are the very
dicts of the working copy, so they are located by identity. A primitive is located through the
path fhirpathpy records for it (``Patient.name[0].given[1]``), checked against the copy, or, when
that path does not start at the resource (after ``extension('…')`` for instance), through the
element that holds it. Whether an element repeats, and the type a value built from parts must
have, come from the R4 StructureDefinitions.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import fhirpathpy
from antlr4 import CommonTokenStream, InputStream
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

from fhir_server.definitions import structure_definitions
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.types import ResourceDict

PARTS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "add": ("type", "path", "name", "value"),
    "insert": ("type", "path", "value", "index"),
    "delete": ("type", "path"),
    "replace": ("type", "path", "value"),
    "move": ("type", "path", "source", "destination"),
}
"""The parts each operation type takes, all of them required (FHIR R4 fhirpatch.html)."""

_R4_MODEL: dict[str, Any] = models["r4"]
_LOCATION_KEEPING_FUNCTIONS = frozenset(
    {"where", "first", "last", "single", "tail", "skip", "take", "ofType"})
_PROPERTY_STEP = re.compile(r"([A-Za-z][A-Za-z0-9]*)(?:\[(\d+)\])?")
_INTEGER_KEYS = ("valueInteger", "valueUnsignedInt", "valuePositiveInt")


# --- The operations, as read from the Parameters resource -------------------------------------

@dataclass(frozen=True, slots=True)
class ValuePart:
    """One named part of a value given as parts (``Parameters.parameter.part.part``)."""

    name: str
    value: PatchValue


@dataclass(frozen=True, slots=True)
class PatchValue:
    """An operation's value: a ``value[x]`` (``type_suffix`` "Quantity", …) or nested parts."""

    type_suffix: str | None
    content: Any
    parts: tuple[ValuePart, ...] | None


@dataclass(frozen=True, slots=True)
class MemberPath:
    """A path ending with an element name: the path of the element holding it, and the name."""

    holder: str | None
    """FHIRPath of the holding element; None when the holder is the resource itself."""
    name: str


@dataclass(frozen=True, slots=True)
class FhirPathOperation:
    """One ``operation`` parameter of a FHIRPath Patch."""

    position: int
    type: str
    path: str
    collection: MemberPath | None
    """The path read as ``holder.name``, as insert and move need it."""
    element: MemberPath | None
    """The same after trailing filters (``where``, ``first``, ``[n]``…), to locate primitives."""
    name: str | None = None
    value: PatchValue | None = None
    index: int | None = None
    source: int | None = None
    destination: int | None = None

    @property
    def label(self) -> str:
        return f"FHIRPath Patch operation at index {self.position} ({self.type} {self.path})"

    @property
    def expression(self) -> str:
        return f"Parameters.parameter[{self.position}]"


def read_operations(parameters: object) -> tuple[FhirPathOperation, ...]:
    """The operations of a FHIRPath Patch document, refusing a malformed one with a 400."""
    if not isinstance(parameters, dict) or parameters.get("resourceType") != "Parameters":
        raise FhirError(ErrorCode.BAD_REQUEST,
                        "A FHIRPath Patch document must be a Parameters resource")
    entries = parameters.get("parameter")
    if not isinstance(entries, list) or not entries:
        raise FhirError(ErrorCode.BAD_REQUEST,
                        "The FHIRPath Patch has no 'operation' parameter",
                        expression=("Parameters.parameter",))
    return tuple(_read_operation(entry, position) for position, entry in enumerate(entries))


def _malformed(position: int, message: str) -> FhirError:
    return FhirError(ErrorCode.BAD_REQUEST,
                     f"FHIRPath Patch operation at index {position}: {message}",
                     expression=(f"Parameters.parameter[{position}]",))


def _read_operation(entry: object, position: int) -> FhirPathOperation:
    if not isinstance(entry, dict) or entry.get("name") != "operation":
        raise _malformed(position, "every parameter of a FHIRPath Patch must be an 'operation'")
    parts = _read_parts(entry.get("part"), position)
    if "type" not in parts:
        raise _malformed(position, "the operation has no 'type' part")
    kind = _read_text(parts["type"], position)
    if kind not in PARTS_BY_TYPE:
        raise _malformed(position, f"unknown operation type {kind!r}; expected one of "
                                   f"{', '.join(PARTS_BY_TYPE)}")
    expected = PARTS_BY_TYPE[kind]
    if missing := [name for name in expected if name not in parts]:
        raise _malformed(position, f"'{kind}' needs the part(s) {', '.join(missing)}")
    if extra := sorted(set(parts) - set(expected)):
        raise _malformed(position, f"'{kind}' takes no part(s) {', '.join(extra)}")
    path = _read_text(parts["path"], position)
    tree = _parse_path(path, position)
    collection = _member_path(tree, path)
    if kind in ("insert", "move") and collection is None:
        raise _malformed(position, f"the path of '{kind}' must end with the name of a list "
                                   "element, e.g. Patient.identifier")
    return FhirPathOperation(
        position=position, type=kind, path=path, collection=collection,
        element=_member_path(_without_filters(tree), path),
        name=_read_text(parts["name"], position) if "name" in parts else None,
        value=_read_value(parts["value"], position) if "value" in parts else None,
        index=_read_count(parts.get("index"), position),
        source=_read_count(parts.get("source"), position),
        destination=_read_count(parts.get("destination"), position),
    )


def _read_parts(parts: object, position: int) -> dict[str, dict[str, Any]]:
    if not isinstance(parts, list) or not parts:
        raise _malformed(position, "the operation has no parts")
    found: dict[str, dict[str, Any]] = {}
    for part in parts:
        if not isinstance(part, dict) or not isinstance(part.get("name"), str):
            raise _malformed(position, "every part needs a 'name'")
        if part["name"] in found:
            raise _malformed(position, f"the part '{part['name']}' is given twice")
        found[part["name"]] = part
    return found


def _read_text(part: dict[str, Any], position: int) -> str:
    text = part.get("valueString", part.get("valueCode"))
    if not isinstance(text, str) or not text.strip():
        raise _malformed(position, f"the part '{part['name']}' needs a valueString or valueCode")
    return text


def _read_count(part: dict[str, Any] | None, position: int) -> int | None:
    if part is None:
        return None
    values = [part[key] for key in _INTEGER_KEYS if key in part]
    if len(values) != 1 or type(values[0]) is not int or values[0] < 0:
        raise _malformed(position,
                         f"the part '{part['name']}' needs a valueInteger of 0 or more")
    count: int = values[0]
    return count


def _is_value_key(key: str) -> bool:
    return key.startswith("value") and key[5:6].isupper()


def _read_value(part: dict[str, Any], position: int) -> PatchValue:
    value_keys = [key for key in part if _is_value_key(key)]
    nested = part.get("part")
    if len(value_keys) + (nested is not None) != 1:
        raise _malformed(position, f"the part '{part['name']}' needs exactly one value[x] "
                                   "or a list of parts")
    if value_keys:
        key = value_keys[0]
        return PatchValue(type_suffix=key[5:], content=part[key], parts=None)
    if not isinstance(nested, list) or not nested:
        raise _malformed(position, f"the parts of '{part['name']}' must be a non-empty list")
    children: list[ValuePart] = []
    for child in nested:
        if not isinstance(child, dict) or not isinstance(child.get("name"), str):
            raise _malformed(position, f"every part within '{part['name']}' needs a 'name'")
        children.append(ValuePart(name=child["name"], value=_read_value(child, position)))
    return PatchValue(type_suffix=None, content=None, parts=tuple(children))


# --- Paths ------------------------------------------------------------------------------------

class _PathSyntaxError(Exception):
    """A FHIRPath expression that does not parse."""


class _RaisingErrorListener:
    """An ANTLR error listener that stops at the first syntax error (fhirpathpy ignores them)."""

    def syntaxError(self, recognizer: Any, offending: Any, line: int, column: int,
                    message: str, error: Any) -> None:
        reason = message.split(" expecting ")[0]
        raise _PathSyntaxError(f"column {column + 1}: {reason}")

    def reportAmbiguity(self, *args: Any) -> None:
        """Ambiguities are resolved by the parser; nothing to report."""

    def reportAttemptingFullContext(self, *args: Any) -> None:
        """Full-context prediction is normal parser work; nothing to report."""

    def reportContextSensitivity(self, *args: Any) -> None:
        """Context sensitivity is normal parser work; nothing to report."""


def _parse_path(path: str, position: int) -> Any:
    """The ANTLR parse tree of ``path`` (an ``expression`` context), refusing bad syntax."""
    listener = _RaisingErrorListener()
    lexer: Any = FHIRPathLexer(InputStream(path))
    lexer.removeErrorListeners()
    lexer.addErrorListener(listener)
    parser: Any = FHIRPathParser(CommonTokenStream(lexer))
    parser.removeErrorListeners()
    parser.addErrorListener(listener)
    try:
        return parser.entireExpression().expression()
    except _PathSyntaxError as exc:
        raise _malformed(position, f"the path {path!r} is not valid FHIRPath ({exc})") from None


def _kind(context: Any) -> str:
    """The grammar rule of a parse-tree node, e.g. ``InvocationExpression``.

    Compared by name so that the untyped ANTLR contexts stay ``Any`` for the type checker.
    """
    return type(context).__name__.removesuffix("Context")


def _without_filters(tree: Any) -> Any:
    """``tree`` without trailing steps that only pick among items (``where``, ``[n]``…)."""
    while True:
        if _kind(tree) == "IndexerExpression":
            tree = tree.expression(0)
        elif (_kind(tree) == "InvocationExpression"
              and _kind(tree.invocation()) == "FunctionInvocation"
              and _identifier(tree.invocation().functn().identifier())
              in _LOCATION_KEEPING_FUNCTIONS):
            tree = tree.expression()
        else:
            return tree


def _member_path(tree: Any, path: str) -> MemberPath | None:
    """``tree`` read as ``holder.name``; None when it does not end with an element name."""
    if _kind(tree) == "InvocationExpression" and _kind(tree.invocation()) == "MemberInvocation":
        holder = tree.expression()
        return MemberPath(holder=path[holder.start.start:holder.stop.stop + 1],
                          name=_identifier(tree.invocation().identifier()))
    if (_kind(tree) == "TermExpression" and _kind(tree.term()) == "InvocationTerm"
            and _kind(tree.term().invocation()) == "MemberInvocation"):
        return MemberPath(holder=None, name=_identifier(tree.term().invocation().identifier()))
    return None


def _identifier(context: Any) -> str:
    text: str = context.getText()
    return text.strip("`")


# --- What the R4 definitions say of elements --------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Definition:
    repeats: bool
    types: tuple[str, ...]
    content_reference: str | None


@dataclass(frozen=True, slots=True)
class _Element:
    """One named child of a type, per the R4 definitions."""

    repeats: bool
    value_type: str | None
    """Type path of its values (``HumanName``, ``Patient.contact``…), to build them from parts."""
    choice_base: str | None = None
    """``value`` for a ``value[x]`` element, whether named ``value`` or ``valueQuantity``."""
    choice_types: tuple[str, ...] = ()
    """When named by its base (``value``): the types its value may have."""


@cache
def _definitions() -> dict[str, _Definition]:
    """Every element of the core StructureDefinition snapshots, by path."""
    found: dict[str, _Definition] = {}
    for structure in structure_definitions().values():
        for element in structure.get("snapshot", {}).get("element", []):
            found.setdefault(element["path"], _Definition(
                repeats=element.get("max") not in ("0", "1"),
                types=tuple(_type_code(kind) for kind in element.get("type", [])),
                content_reference=element.get("contentReference"),
            ))
    return found


@cache
def _type_suffixes() -> frozenset[str]:
    """Every R4 type name as it ends a choice element's key (``Quantity``, ``String``…)."""
    return frozenset(code[:1].upper() + code[1:]
                     for definition in _definitions().values() for code in definition.types)


def _type_code(kind: dict[str, Any]) -> str:
    code: str = kind["code"]
    if code.startswith("http://hl7.org/fhirpath/System."):
        return "string"
    return code


def _element(type_path: str | None, name: str) -> _Element | None:
    """What ``type_path`` (``Patient``, ``HumanName``, ``Patient.contact``) says of ``name``."""
    if type_path is None:
        return None
    definitions = _definitions()
    if (found := definitions.get(f"{type_path}.{name}")) is not None:
        return _Element(repeats=found.repeats,
                        value_type=_value_type(f"{type_path}.{name}", found))
    if (found := definitions.get(f"{type_path}.{name}[x]")) is not None:
        return _Element(repeats=False, value_type=None, choice_base=name,
                        choice_types=found.types)
    for cut in range(1, len(name)):
        if not name[cut].isupper():
            continue
        found = definitions.get(f"{type_path}.{name[:cut]}[x]")
        code = _type_for_suffix(found.types, name[cut:]) if found else None
        if code is not None:
            return _Element(repeats=False, value_type=code, choice_base=name[:cut])
    return None


def _value_type(path: str, definition: _Definition) -> str | None:
    if definition.content_reference:
        return definition.content_reference.lstrip("#")
    if definition.types in (("BackboneElement",), ("Element",)):
        return path
    return definition.types[0] if len(definition.types) == 1 else None


def _type_for_suffix(types: tuple[str, ...], suffix: str) -> str | None:
    return next((code for code in types if code[:1].upper() + code[1:] == suffix), None)


# --- Values -----------------------------------------------------------------------------------

class _Refusal(Exception):
    """An operation that cannot be applied; ``apply_operation`` names the operation."""

    def __init__(self, message: str, error: ErrorCode = ErrorCode.INVALID_RESOURCE) -> None:
        super().__init__(message)
        self.error = error


def _placement(element: _Element | None, name: str, value: PatchValue) -> tuple[str, str | None]:
    """The JSON key a value goes under (``valueQuantity`` for ``value``), and its type path."""
    if element is None:
        return name, None
    if element.choice_types:
        suffix = value.type_suffix
        code = _type_for_suffix(element.choice_types, suffix) if suffix else None
        if suffix is None or code is None:
            allowed = ", ".join(f"value{kind[:1].upper()}{kind[1:]}"
                                for kind in element.choice_types)
            raise _Refusal(f"'{name}' is a choice element; give its value as one of {allowed}")
        return name + suffix, code
    return name, element.value_type


def _materialise(value: PatchValue, type_path: str | None) -> Any:
    """The JSON of a value: a copy of its value[x], or the object its parts describe."""
    if value.parts is None:
        return copy.deepcopy(value.content)
    items: dict[str, list[Any]] = {}
    repeats: dict[str, bool | None] = {}
    for part in value.parts:
        element = _element(type_path, part.name)
        key, part_type = _placement(element, part.name, part.value)
        items.setdefault(key, []).append(_materialise(part.value, part_type))
        repeats[key] = element.repeats if element else None
    return {key: _collapse(key, found, repeats[key]) for key, found in items.items()}


def _collapse(key: str, items: list[Any], repeats: bool | None) -> Any:
    if repeats:
        return items
    if len(items) == 1:
        return items[0]
    if repeats is False:
        raise _Refusal(f"the value gives '{key}' {len(items)} times but it does not repeat")
    return items


# --- Locating what a path selects -------------------------------------------------------------

@dataclass(frozen=True, slots=True, eq=False)
class _Slot:
    """Where an element sits: ``holder[key]`` or ``holder[key][index]``."""

    holder: dict[str, Any]
    key: str
    index: int | None
    name: str
    """Its FHIRPath name: ``value`` for the key ``valueQuantity``."""

    @property
    def identity(self) -> tuple[int, str, int | None]:
        return id(self.holder), self.key, self.index

    def value(self, key: str | None = None) -> Any:
        found = self.holder.get(self.key if key is None else key)
        if self.index is None:
            return found
        return found[self.index] if isinstance(found, list) and self.index < len(found) else None


@dataclass(frozen=True, slots=True, eq=False)
class _Match:
    """An element a path selected: where it sits (None for the resource itself), its type path."""

    slot: _Slot | None
    data: Any
    type_path: str | None

    @property
    def identity(self) -> tuple[int, str, int | None] | None:
        return None if self.slot is None else self.slot.identity


def _select(document: ResourceDict, path: str) -> list[Any]:
    try:
        return fhirpathpy.evaluate(
            document, path, context={"resource": document, "rootResource": document},
            model=_R4_MODEL, options={"returnRawData": True})
    except Exception as exc:  # fhirpathpy raises plain exceptions for evaluation errors
        raise _Refusal(f"the path {path!r} cannot be evaluated: {exc}",
                       ErrorCode.BAD_REQUEST) from None


def _slots_by_identity(document: ResourceDict) -> dict[int, _Slot]:
    """Where each object within ``document`` sits, by ``id()`` (``_given`` items as ``given``)."""
    return {id(item): slot for item, slot in _objects_within(document)}


def _objects_within(holder: dict[str, Any]) -> Iterator[tuple[dict[str, Any], _Slot]]:
    for key, found in holder.items():
        name = key.removeprefix("_")
        entries = enumerate(found) if isinstance(found, list) else [(None, found)]
        for index, item in entries:
            if isinstance(item, dict):
                yield item, _Slot(holder=holder, key=name, index=index, name=name)
                yield from _objects_within(item)


def _matches(document: ResourceDict, operation: FhirPathOperation) -> list[_Match]:
    """The distinct elements ``operation.path`` selects in ``document``."""
    slots = _slots_by_identity(document)
    holders: list[dict[str, Any]] | None = None

    def element_holders() -> list[dict[str, Any]]:
        nonlocal holders
        if holders is None:
            holders = _holders(document, operation.element, slots)
        return holders

    found: dict[tuple[int, str, int | None] | None, _Match] = {}
    for node in _select(document, operation.path):
        if isinstance(node, ResourceNode) and node.data is None:
            continue  # the null placeholder of a ``_given``-style list; its item comes separately
        match = _locate(node, document, slots, operation.element, element_holders)
        found.setdefault(match.identity, match)
    return list(found.values())


def _locate(node: Any, document: ResourceDict, slots: dict[int, _Slot],
            element: MemberPath | None,
            element_holders: Callable[[], list[dict[str, Any]]]) -> _Match:
    if not isinstance(node, ResourceNode):
        raise _Refusal(f"the path gives a {type(node).__name__} value, not an element of the "
                       "resource")
    data = node.data
    if data is document:
        return _Match(slot=None, data=data, type_path=node.path)
    if isinstance(data, dict):
        slot = slots.get(id(data))
        if slot is None:
            raise _Refusal("the path selects an element outside the resource being patched")
        steps = _property_steps(node.propName or "")
        name = steps[-1][0] if steps else slot.name
        return _Match(slot=_Slot(slot.holder, slot.key, slot.index, name), data=data,
                      type_path=node.path)
    slot = (_slot_from_property_path(node, document)
            or _slot_within_holders(node, element, element_holders))
    if slot is None:
        raise _Refusal(f"cannot tell where the value it selects ({node.propName}) sits in the "
                       "resource")
    return _Match(slot=slot, data=data, type_path=node.path)


def _property_steps(property_path: str) -> list[tuple[str, int | None]]:
    """``Patient.name[0].given`` as ``[("Patient", None), ("name", 0), ("given", None)]``."""
    steps: list[tuple[str, int | None]] = []
    for step in property_path.split("."):
        matched = _PROPERTY_STEP.fullmatch(step)
        if matched is None:
            return []
        steps.append((matched[1], int(matched[2]) if matched[2] is not None else None))
    return steps


def _json_key(holder: dict[str, Any], name: str) -> str | None:
    """The key ``name`` has in ``holder``: itself, or ``valueQuantity`` for a choice ``value``."""
    if name in holder or f"_{name}" in holder:
        return name
    variants = {key.removeprefix("_") for key in holder
                if key.removeprefix("_").startswith(name)
                and key.removeprefix("_")[len(name):] in _type_suffixes()}
    return variants.pop() if len(variants) == 1 else None


def _slot_from_property_path(node: Any, document: ResourceDict) -> _Slot | None:
    """The slot fhirpathpy's recorded path (``Patient.name[0].given[1]``) leads to, if it holds
    the node's value."""
    steps = _property_steps(node.propName or "")
    if len(steps) < 2 or steps[0] != (document.get("resourceType"), None):
        return None
    holder: dict[str, Any] | None = document
    for name, index in steps[1:-1]:
        holder = _child_object(holder, name, index) if holder is not None else None
    name, index = steps[-1]
    key = _json_key(holder, name) if holder is not None else None
    if holder is None or key is None:
        return None
    slot = _Slot(holder=holder, key=key, index=index, name=name)
    return slot if _holds(slot, node.data) else None


def _child_object(holder: dict[str, Any], name: str, index: int | None) -> dict[str, Any] | None:
    key = _json_key(holder, name)
    if key is None:
        return None
    slot = _Slot(holder=holder, key=key, index=index, name=name)
    for found in (slot.value(), slot.value(f"_{key}")):
        if isinstance(found, dict):
            return found
    return None


def _holds(slot: _Slot, data: Any) -> bool:
    return bool(slot.value() == data)


def _holders(document: ResourceDict, element: MemberPath | None,
             slots: dict[int, _Slot]) -> list[dict[str, Any]]:
    """The objects within ``document`` that the holder part of ``element`` selects."""
    if element is None:
        return []
    if element.holder is None:
        return [document]
    return [node.data for node in _select(document, element.holder)
            if isinstance(node, ResourceNode) and isinstance(node.data, dict)
            and (node.data is document or id(node.data) in slots)]


def _slot_within_holders(node: Any, element: MemberPath | None,
                         element_holders: Callable[[], list[dict[str, Any]]]) -> _Slot | None:
    """The one slot, among the children named like the path's last element, holding the value."""
    if element is None:
        return None
    candidates: dict[tuple[int, str, int | None], _Slot] = {}
    for holder in element_holders():
        key = _json_key(holder, element.name)
        if key is None:
            continue
        slot = _Slot(holder=holder, key=key, index=node.index, name=element.name)
        if _holds(slot, node.data):
            candidates[slot.identity] = slot
    return next(iter(candidates.values())) if len(candidates) == 1 else None


def _single_match(document: ResourceDict, operation: FhirPathOperation) -> _Match:
    found = _matches(document, operation)
    if not found:
        raise _Refusal("the path matches nothing")
    if len(found) > 1:
        raise _Refusal(f"the path matches {len(found)} elements; it must select exactly one")
    return found[0]


def _single_holder(document: ResourceDict,
                   collection: MemberPath) -> tuple[dict[str, Any], str | None]:
    """The one object holding the list an insert or move works on, and its type path."""
    if collection.holder is None:
        return document, document.get("resourceType")
    slots = _slots_by_identity(document)
    found = {id(node.data): node for node in _select(document, collection.holder)
             if isinstance(node, ResourceNode) and isinstance(node.data, dict)
             and (node.data is document or id(node.data) in slots)}
    if len(found) != 1:
        raise _Refusal(f"'{collection.holder}' matches {len(found)} elements that can hold "
                       f"'{collection.name}'; it must match exactly one")
    node = next(iter(found.values()))
    holder: dict[str, Any] = node.data
    return holder, node.path


# --- The five operations ----------------------------------------------------------------------

def apply_operation(document: ResourceDict, operation: FhirPathOperation) -> None:
    """Apply one operation to ``document`` in place (a working copy, never the caller's input).

    An operation that cannot be applied is a 422 naming the operation and its path.
    """
    try:
        _APPLIERS[operation.type](document, operation)
    except _Refusal as refusal:
        raise FhirError(refusal.error, f"{operation.label}: {refusal}",
                        expression=(operation.expression,)) from None


def _add(document: ResourceDict, operation: FhirPathOperation) -> None:
    assert operation.name is not None and operation.value is not None
    target = _single_match(document, operation)
    if not isinstance(target.data, dict):
        raise _Refusal(f"the path selects a primitive value, which cannot hold "
                       f"'{operation.name}'")
    element = _element(target.type_path, operation.name)
    if element is None:
        raise _Refusal(f"{target.type_path or 'the selected element'} has no element "
                       f"'{operation.name}'")
    key, value_type = _placement(element, operation.name, operation.value)
    content = _materialise(operation.value, value_type)
    holder: dict[str, Any] = target.data
    if element.repeats:
        _append(holder, key, content)
    elif _is_present(holder, key, element):
        raise _Refusal(f"'{element.choice_base or key}' does not repeat and is already "
                       "present; use replace")
    else:
        holder[key] = content


def _is_present(holder: dict[str, Any], key: str, element: _Element) -> bool:
    if element.choice_base is not None:
        return _json_key(holder, element.choice_base) is not None
    return key in holder or f"_{key}" in holder


def _append(holder: dict[str, Any], key: str, content: Any) -> None:
    items = holder.setdefault(key, [])
    if not isinstance(items, list):
        raise _Refusal(f"'{key}' should be a list but holds a single value")
    items.append(content)
    companion = holder.get(f"_{key}")
    if isinstance(companion, list):
        companion.extend([None] * (len(items) - len(companion)))


def _insert(document: ResourceDict, operation: FhirPathOperation) -> None:
    assert operation.collection is not None and operation.value is not None
    assert operation.index is not None
    holder, type_path = _single_holder(document, operation.collection)
    name = operation.collection.name
    element = _element(type_path, name)
    if element is None:
        raise _Refusal(f"{type_path or 'the selected element'} has no element '{name}'")
    if not element.repeats:
        raise _Refusal(f"'{name}' is not a list")
    items = holder.get(name, [])
    if not isinstance(items, list):
        raise _Refusal(f"'{name}' should be a list but holds a single value")
    if operation.index > len(items):
        raise _Refusal(f"index {operation.index} is beyond the end of the list "
                       f"({len(items)} items)")
    items.insert(operation.index, _materialise(operation.value, element.value_type))
    holder[name] = items
    companion = holder.get(f"_{name}")
    if isinstance(companion, list) and len(companion) >= operation.index:
        companion.insert(operation.index, None)


def _delete(document: ResourceDict, operation: FhirPathOperation) -> None:
    found = _matches(document, operation)
    if not found:
        return
    if len(found) > 1:
        raise _Refusal(f"the path matches {len(found)} elements; only one can be deleted")
    slot = found[0].slot
    if slot is None:
        raise _Refusal("the resource itself cannot be deleted by a patch")
    _remove(slot)


def _remove(slot: _Slot) -> None:
    holder, key = slot.holder, slot.key
    if slot.index is None:
        holder.pop(key, None)
        holder.pop(f"_{key}", None)
        return
    for member in (key, f"_{key}"):
        items = holder.get(member)
        if isinstance(items, list) and slot.index < len(items):
            del items[slot.index]
    _drop_emptied_lists(holder, key)


def _drop_emptied_lists(holder: dict[str, Any], key: str) -> None:
    if holder.get(key) == []:
        del holder[key]
    companion = holder.get(f"_{key}")
    if isinstance(companion, list) and all(entry is None for entry in companion):
        del holder[f"_{key}"]


def _replace(document: ResourceDict, operation: FhirPathOperation) -> None:
    assert operation.value is not None
    target = _single_match(document, operation)
    slot = target.slot
    if slot is None:
        raise _Refusal("the resource itself cannot be replaced by a patch; use update")
    content = _materialise(operation.value, target.type_path)
    holder = slot.holder
    if slot.index is not None:
        _put_item(slot, content)
        return
    key = slot.key
    if slot.name != slot.key and operation.value.type_suffix:
        key = slot.name + operation.value.type_suffix
    holder.pop(f"_{slot.key}", None)
    _rename_key(holder, slot.key, key)
    holder[key] = content


def _rename_key(holder: dict[str, Any], old: str, new: str) -> None:
    """Rename ``old`` to ``new`` in place, keeping the order of the keys."""
    if old == new or old not in holder:
        return
    entries = [(new if key == old else key, found) for key, found in holder.items()]
    holder.clear()
    holder.update(entries)


def _put_item(slot: _Slot, content: Any) -> None:
    """Put ``content`` at a list slot, dropping the replaced item's ``_key`` companion entry."""
    assert slot.index is not None
    holder, key = slot.holder, slot.key
    companion = holder.get(f"_{key}")
    items = holder.get(key)
    if not isinstance(items, list):
        items = holder[key] = [None] * len(companion or [])
    items[slot.index] = content
    if isinstance(companion, list) and slot.index < len(companion):
        companion[slot.index] = None
    _drop_emptied_lists(holder, key)


def _move(document: ResourceDict, operation: FhirPathOperation) -> None:
    assert operation.collection is not None
    assert operation.source is not None and operation.destination is not None
    holder, _ = _single_holder(document, operation.collection)
    name = operation.collection.name
    items = holder.get(name)
    if not isinstance(items, list):
        raise _Refusal(f"there is no list '{name}' to move items within")
    for role, index in (("source", operation.source), ("destination", operation.destination)):
        if index >= len(items):
            raise _Refusal(f"{role} index {index} is out of range ({len(items)} items)")
    for member in (name, f"_{name}"):
        found = holder.get(member)
        if isinstance(found, list) and len(found) == len(items):
            found.insert(operation.destination, found.pop(operation.source))


_APPLIERS: dict[str, Callable[[ResourceDict, FhirPathOperation], None]] = {
    "add": _add, "insert": _insert, "delete": _delete, "replace": _replace, "move": _move,
}


# --- Tidying ----------------------------------------------------------------------------------

def without_empty_elements(document: ResourceDict) -> ResourceDict:
    """``document`` without empty objects, empty lists or nulls left behind by deletions
    (FHIR JSON has none); the null placeholders of ``_given``-style lists are kept."""
    tidied = _tidied(document, companion=False)
    return tidied if isinstance(tidied, dict) else {}


def _tidied(value: Any, *, companion: bool) -> Any:
    if isinstance(value, dict):
        kept = {key: _tidied(item, companion=key.startswith("_")) for key, item in value.items()}
        return {key: item for key, item in kept.items() if item not in (None, {}, [])}
    if not isinstance(value, list):
        return value
    items = [_tidied(item, companion=False) for item in value]
    if companion:
        entries = [None if item == {} else item for item in items]
        return [] if all(entry is None for entry in entries) else entries
    return [item for item in items if item != {}]
