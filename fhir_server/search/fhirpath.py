"""FHIRPath for search parameters: a fast compiled subset, with ``fhirpathpy`` for the rest.

Index extraction runs on every write, and ``fhirpathpy`` costs tens of microseconds per
evaluation. Almost every R4 search expression is a short path, so the subset below is compiled
once per (expression, resource type) into plain Python closures:

- dotted paths from the resource (``Patient.name.given``), a leading ``Resource.`` or
  ``DomainResource.``, or a path with no type in front (``name``, read from the resource);
- unions ``a | b`` and parentheses; indexers ``[n]``;
- ``as T``, ``.as(T)``, ``.ofType(T)``: choice elements become their typed JSON key
  (``Observation.value as Quantity`` reads ``valueQuantity``);
- ``.where(resolve() is T)``: references whose ``reference`` names a resource of type T;
- ``.where(field = 'literal')``: simple equality on a child element;
- ``exists()``, ``=``, ``!=`` against a literal, and ``and`` (``Patient.deceased`` is
  ``Patient.deceased.exists() and Patient.deceased != false``).

Paths are typed with the R4 StructureDefinitions while compiling, so each result strand
(``Branch``) knows the FHIR type of its values: a choice element without ``as`` becomes one
strand per allowed type. Anything outside the subset is compiled once with ``fhirpathpy``, given
a ``resolve()`` that types a reference from its string; its values have no static type.

A union concatenates its operands without removing duplicates (extraction deduplicates the
entries). Type names in ``as``/``is``/``ofType`` match case-insensitively (``as(DateTime)``,
used by some official composite components, means ``dateTime``) and include specialisations
(``Age`` is a ``Quantity``). The ``Resource`` an expression starts from is the resource indexed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeAlias

import fhirpathpy
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models

from fhir_server.definitions import resource_types, structure_definitions
from fhir_server.types import ResourceDict

logger = logging.getLogger(__name__)

Run: TypeAlias = Callable[[Any], list[Any]]
"""Evaluates one strand against a resource; the list returned must not be mutated."""
Op: TypeAlias = Callable[[list[Any]], list[Any]]

ROOT_ALIASES = frozenset({"Resource", "DomainResource"})
_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^'\\]|\\.)*')|(?P<number>\d+(?:\.\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>!=|[.|()\[\]=,])|(?P<other>\S))")
_HISTORY = re.compile(r"/_history/[^/]*$")


class Unsupported(Exception):
    """The expression uses FHIRPath outside the fast subset."""


@dataclass(frozen=True, slots=True)
class Branch:
    """One strand of an expression's result: how to compute it and the FHIR type of its values."""

    run: Run
    value_type: str | None
    """A FHIR type code (``HumanName``, ``dateTime``, ``Reference``…); None when not known."""


@dataclass(frozen=True, slots=True)
class CompiledExpression:
    """An expression compiled for one resource type."""

    expression: str
    resource_type: str
    branches: tuple[Branch, ...]
    fast: bool
    """True when evaluated by the compiled subset, False when ``fhirpathpy`` evaluates it."""

    def evaluate(self, resource: ResourceDict) -> list[Any]:
        """Every value the expression yields for the resource (strands concatenated)."""
        found: list[Any] = []
        for branch in self.branches:
            found.extend(branch.run(resource))
        return found


# --- Splitting an expression into its top-level union branches ---------------------------------

def union_branches(expression: str) -> tuple[str, ...]:
    """The top-level ``|`` operands of an expression, stripped (parentheses, quotes respected)."""
    parts: list[str] = []
    depth = 0
    start = 0
    quoted = False
    index = 0
    while index < len(expression):
        char = expression[index]
        if quoted:
            if char == "\\":
                index += 1
            elif char == "'":
                quoted = False
        elif char == "'":
            quoted = True
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(expression[start:index].strip())
            start = index + 1
        index += 1
    parts.append(expression[start:].strip())
    return tuple(part for part in parts if part)


def branch_root(branch: str) -> str | None:
    """The identifier a union branch starts from: ``(Observation.value as X)`` → Observation."""
    match = re.match(r"[\s(]*([A-Za-z_][A-Za-z0-9_]*)", branch)
    return match.group(1) if match else None


def reference_type(reference: str) -> str | None:
    """The resource type a reference string names: ``Patient/1``, ``http://x/fhir/Patient/1``.

    None for a contained (``#x``), ``urn:`` or otherwise untyped reference.
    """
    if reference.startswith(("#", "urn:")):
        return None
    segments = _HISTORY.sub("", reference).split("/")
    if len(segments) < 2 or not segments[-1]:
        return None
    candidate = segments[-2]
    return candidate if candidate in _resource_type_names() else None


@cache
def _resource_type_names() -> frozenset[str]:
    return frozenset(resource_types())


# --- Parsing (a small AST for the subset) -------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Member:
    base: _Node | None
    name: str


@dataclass(frozen=True, slots=True)
class _Call:
    base: _Node | None
    name: str
    args: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Index:
    base: _Node
    position: int


@dataclass(frozen=True, slots=True)
class _TypeTest:
    base: _Node
    operator: str
    type_name: str


@dataclass(frozen=True, slots=True)
class _Binary:
    operator: str
    left: _Node
    right: _Node


@dataclass(frozen=True, slots=True)
class _Literal:
    value: str | bool | int | float


_Node: TypeAlias = _Member | _Call | _Index | _TypeTest | _Binary | _Literal


def _tokenize(expression: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    for match in _TOKEN.finditer(expression):
        kind = match.lastgroup
        if kind is None:
            continue
        if kind == "other":
            raise Unsupported(f"token {match.group(kind)!r}")
        tokens.append((kind, match.group(kind)))
    return tokens


class _Parser:
    """Recursive descent over the subset, FHIRPath precedence: ``.`` > as > ``|`` > ``=`` > and."""

    def __init__(self, expression: str) -> None:
        self._tokens = _tokenize(expression)
        self._at = 0

    def parse(self) -> _Node:
        node = self._and()
        if self._at != len(self._tokens):
            raise Unsupported(f"unexpected {self._tokens[self._at][1]!r}")
        return node

    def _peek(self) -> tuple[str, str] | None:
        return self._tokens[self._at] if self._at < len(self._tokens) else None

    def _take(self, text: str | None = None) -> tuple[str, str]:
        token = self._peek()
        if token is None or (text is not None and token[1] != text):
            raise Unsupported(f"expected {text or 'more'}")
        self._at += 1
        return token

    def _accept(self, text: str) -> bool:
        token = self._peek()
        if token is not None and token[1] == text and token[0] in ("op", "name"):
            self._at += 1
            return True
        return False

    def _and(self) -> _Node:
        node = self._equality()
        while self._accept("and"):
            node = _Binary("and", node, self._equality())
        return node

    def _equality(self) -> _Node:
        node = self._union()
        token = self._peek()
        if token is not None and token[1] in ("=", "!="):
            self._at += 1
            node = _Binary(token[1], node, self._union())
        return node

    def _union(self) -> _Node:
        node = self._type_test()
        while self._accept("|"):
            node = _Binary("|", node, self._type_test())
        return node

    def _type_test(self) -> _Node:
        node = self._postfix()
        token = self._peek()
        if token in (("name", "as"), ("name", "is")):
            self._at += 1
            node = _TypeTest(node, token[1], self._type_name())
        return node

    def _type_name(self) -> str:
        kind, text = self._take()
        if kind != "name":
            raise Unsupported(f"type name expected, not {text!r}")
        if self._accept("."):
            return self._take()[1] if text in ("FHIR", "System") else f"{text}.{self._take()[1]}"
        return text

    def _postfix(self) -> _Node:
        node = self._term()
        while True:
            if self._accept("."):
                node = self._invocation(node)
            elif self._accept("["):
                kind, text = self._take()
                if kind != "number" or not text.isdigit():
                    raise Unsupported("indexer other than an integer")
                self._take("]")
                node = _Index(node, int(text))
            else:
                return node

    def _term(self) -> _Node:
        token = self._peek()
        if token is None:
            raise Unsupported("empty expression")
        kind, text = token
        if kind == "op" and text == "(":
            self._at += 1
            node = self._and()
            self._take(")")
            return node
        if kind == "string":
            self._at += 1
            return _Literal(_unquote(text))
        if kind == "number":
            self._at += 1
            return _Literal(float(text) if "." in text else int(text))
        if kind == "name" and text in ("true", "false"):
            self._at += 1
            return _Literal(text == "true")
        if kind == "name":
            return self._invocation(None)
        raise Unsupported(f"unexpected {text!r}")

    def _invocation(self, base: _Node | None) -> _Node:
        kind, name = self._take()
        if kind != "name":
            raise Unsupported(f"name expected, not {name!r}")
        if not self._accept("("):
            return _Member(base, name)
        args: list[_Node] = []
        if name in ("as", "is", "ofType"):
            args.append(_Literal(self._type_name()))
            self._take(")")
            return _Call(base, name, tuple(args))
        if not self._accept(")"):
            args.append(self._and())
            while self._accept(","):
                args.append(self._and())
            self._take(")")
        return _Call(base, name, tuple(args))


def _unquote(text: str) -> str:
    inner = text[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1),
                                                                             m.group(1)), inner)


# --- Static types from the StructureDefinitions -------------------------------------------------

@dataclass(frozen=True, slots=True)
class _TypeContext:
    """Where a value sits in the definitions: StructureDefinition, element path, FHIR type."""

    definition: str
    path: str
    type_code: str


@cache
def _element_index(definition: str) -> tuple[dict[str, dict[str, Any]], frozenset[str]]:
    """A definition's snapshot elements by path, and the paths that have children."""
    sd = structure_definitions().get(definition)
    if sd is None:
        return {}, frozenset()
    elements = {el["path"]: el for el in sd.get("snapshot", {}).get("element", [])}
    parents = frozenset(path.rsplit(".", 1)[0] for path in elements if "." in path)
    return elements, parents


def _type_code(type_entry: dict[str, Any]) -> str:
    code = str(type_entry.get("code", ""))
    if code.startswith("http://hl7.org/fhirpath/System."):
        for extension in type_entry.get("extension", []):
            if str(extension.get("url", "")).endswith("structuredefinition-fhir-type"):
                return str(extension.get("valueUrl", "string"))
        return code.rsplit(".", 1)[1].lower()
    return code


@cache
def _children(context: _TypeContext, name: str) -> tuple[tuple[str, _TypeContext], ...]:
    """The JSON keys and type contexts that ``context.name`` reads (several for a choice)."""
    if context.definition in ROOT_ALIASES:
        raise Unsupported(f"the elements of a {context.definition} depend on its runtime type")
    elements, parents = _element_index(context.definition)
    element = elements.get(f"{context.path}.{name}")
    if element is not None:
        reference = element.get("contentReference")
        if isinstance(reference, str):
            target = reference.lstrip("#")
            return ((name, _TypeContext(context.definition, target, "BackboneElement")),)
        codes = [_type_code(t) for t in element.get("type", [])]
        if len(codes) != 1:
            raise Unsupported(f"{context.path}.{name} has {len(codes)} types")
        path = f"{context.path}.{name}"
        if codes[0] in ("BackboneElement", "Element") and path in parents:
            return ((name, _TypeContext(context.definition, path, codes[0])),)
        return ((name, _root_context(codes[0])),)
    choice = elements.get(f"{context.path}.{name}[x]")
    if choice is not None:
        return tuple((name + code[0].upper() + code[1:], _root_context(code))
                     for code in (_type_code(t) for t in choice.get("type", [])))
    raise Unsupported(f"{context.path} has no element {name!r}")


def _root_context(type_code: str) -> _TypeContext:
    return _TypeContext(type_code, type_code, type_code)


@cache
def _ancestors(type_code: str) -> frozenset[str]:
    """The type and every type it specialises, lower-cased (``age`` → age, quantity, element…)."""
    found: set[str] = set()
    current: str | None = type_code
    while current and current.lower() not in found:
        found.add(current.lower())
        sd = structure_definitions().get(current)
        base = sd.get("baseDefinition") if sd else None
        current = str(base).rsplit("/", 1)[1] if base else None
    return frozenset(found)


def is_a(type_code: str, type_name: str) -> bool:
    """Whether a FHIR type is (or specialises) the named type; names match case-insensitively."""
    return type_name.lower() in _ancestors(type_code)


# --- Compiling the AST into typed strands -------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Strand:
    ops: tuple[Op | str, ...]
    """A JSON key to read, or a function from collection to collection."""
    context: _TypeContext
    start: Run | None = None
    """Computes the first collection (``exists()``, ``=``…); None: it is the resource itself."""

    def then(self, op: Op | str, context: _TypeContext | None = None) -> _Strand:
        return _Strand((*self.ops, op), context or self.context, self.start)


class _Compiler:
    def __init__(self, resource_type: str) -> None:
        self._resource_type = resource_type
        self._root = _TypeContext(resource_type, resource_type, resource_type)

    def strands(self, node: _Node) -> list[_Strand]:
        match node:
            case _Member(None, name):
                return self._root_member(name)
            case _Member(base, name) if base is not None:
                return [strand.then(key, context)
                        for strand in self.strands(base)
                        for key, context in _children(strand.context, name)]
            case _Binary("|", left, right):
                return self.strands(left) + self.strands(right)
            case _TypeTest(base, "as", type_name):
                return [s for s in self.strands(base) if is_a(s.context.type_code, type_name)]
            case _Index(base, position):
                return [self._only(base, _take_at(position))]
            case _Call(base, name, args):
                return self._call(base, name, args)
            case _Binary(operator, left, right):
                return [self._computed(_binary(operator, self._runner(left), self._runner(right)),
                                       "boolean")]
            case _Literal(value):
                return [self._computed(_constant(value), _literal_type(value))]
        raise Unsupported(f"{type(node).__name__} outside the fast subset")

    def _root_member(self, name: str) -> list[_Strand]:
        if name == self._resource_type or name in ROOT_ALIASES:
            return [_Strand((), self._root)]
        if name in _resource_type_names():
            return []
        return [_Strand((key,), context) for key, context in _children(self._root, name)]

    def _call(self, base: _Node | None, name: str, args: tuple[_Node, ...]) -> list[_Strand]:
        if base is None:
            raise Unsupported(f"{name}() at the root")
        if name in ("as", "ofType") and len(args) == 1 and isinstance(args[0], _Literal):
            type_name = str(args[0].value)
            return [s for s in self.strands(base) if is_a(s.context.type_code, type_name)]
        if name == "where" and len(args) == 1:
            return [self._filtered(strand, args[0]) for strand in self.strands(base)]
        if name == "exists" and not args:
            return [self._computed(_exists(self._runner(base)), "boolean")]
        raise Unsupported(f"{name}()")

    def _filtered(self, strand: _Strand, condition: _Node) -> _Strand:
        match condition:
            case _TypeTest(_Call(None, "resolve", ()), "is", type_name):
                if strand.context.type_code != "Reference":
                    raise Unsupported("resolve() on something other than a Reference")
                return strand.then(_references_to(type_name))
            case _Binary("=", _Member(None, field), _Literal(value)):
                keys = _children(strand.context, field)
                if len(keys) != 1 or keys[0][0] != field:
                    raise Unsupported(f"where() on the choice element {field}")
                return strand.then(_field_equals(field, value))
        raise Unsupported("where() condition outside the fast subset")

    def _only(self, node: _Node, op: Op) -> _Strand:
        found = self.strands(node)
        if len(found) != 1:
            raise Unsupported("an indexer over several typed strands")
        return found[0].then(op)

    def _runner(self, node: _Node) -> Run:
        return _concatenate([_strand_runner(strand) for strand in self.strands(node)])

    def _computed(self, compute: Run, type_code: str) -> _Strand:
        return _Strand((), _root_context(type_code), compute)


def _literal_type(value: str | bool | int | float) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return "decimal" if isinstance(value, float) else "string"


# --- Runtime pieces ---------------------------------------------------------------------------

def _values_under(nodes: Iterable[Any], key: str) -> list[Any]:
    """The values under ``key`` of the objects among ``nodes``, arrays flattened."""
    found: list[Any] = []
    for node in nodes:
        if type(node) is dict:
            value = node.get(key)
            if value is not None:
                if type(value) is list:
                    found.extend(value)
                else:
                    found.append(value)
    return found


def _read_key(key: str) -> Op:
    def read(nodes: list[Any]) -> list[Any]:
        return _values_under(nodes, key)
    return read


def _keys_runner(keys: tuple[str, ...]) -> Run:
    """A strand that only reads keys: one tight loop, the common case."""
    if len(keys) == 1:
        key = keys[0]

        def read_one(resource: Any) -> list[Any]:
            value = resource.get(key)
            if value is None:
                return []
            return value if type(value) is list else [value]
        return read_one

    if len(keys) == 2:
        return _two_keys_runner(*keys)

    def read_path(resource: Any) -> list[Any]:
        nodes: list[Any] = [resource]
        for key in keys:
            nodes = _values_under(nodes, key)
            if not nodes:
                break
        return nodes
    return read_path


def _two_keys_runner(first: str, second: str) -> Run:
    """A strand reading two keys (``Patient.name.given``, ``Patient.address.city``)."""

    def read_two(resource: Any) -> list[Any]:
        parents = resource.get(first)
        if parents is None:
            return []
        return _values_under(parents if type(parents) is list else (parents,), second)
    return read_two


def _strand_runner(strand: _Strand) -> Run:
    start = strand.start
    if start is not None and not strand.ops:
        return start
    ops = strand.ops
    if start is None and ops:
        leading = 0
        while leading < len(ops) and isinstance(ops[leading], str):
            leading += 1
        if leading:  # its leading keys read by the tight loop (every op keeps [] as [])
            start = _keys_runner(tuple(str(op) for op in ops[:leading]))
            if leading == len(ops):
                return start
            ops = ops[leading:]
    rest = tuple(_read_key(op) if isinstance(op, str) else op for op in ops)

    def run(resource: Any) -> list[Any]:
        nodes: list[Any] = [resource] if start is None else start(resource)
        for op in rest:
            if not nodes:
                break
            nodes = op(nodes)
        return nodes
    return run


def _concatenate(runs: Sequence[Run]) -> Run:
    if len(runs) == 1:
        return runs[0]

    def run(resource: Any) -> list[Any]:
        found: list[Any] = []
        for each in runs:
            found.extend(each(resource))
        return found
    return run


def _take_at(position: int) -> Op:
    return lambda nodes: nodes[position:position + 1]


def _references_to(type_name: str) -> Op:
    def keep(nodes: list[Any]) -> list[Any]:
        found: list[Any] = []
        for node in nodes:
            reference = node.get("reference") if type(node) is dict else None
            if isinstance(reference, str):
                target = reference_type(reference)
                if target is not None and is_a(target, type_name):
                    found.append(node)
        return found
    return keep


def _field_equals(field: str, expected: str | bool | int | float) -> Op:
    """Keep the items whose ``field`` is one value equal to ``expected`` (FHIRPath ``=``, e.g.
    ``telecom.where(system = 'phone')``)."""
    def keep(nodes: list[Any]) -> list[Any]:
        found: list[Any] = []
        for node in nodes:
            if type(node) is dict:
                value = node.get(field)
                if type(value) is list:
                    value = value[0] if len(value) == 1 else None
                if _equal(value, expected):
                    found.append(node)
        return found
    return keep


def _equal(value: Any, expected: Any) -> bool:
    if isinstance(value, bool) or isinstance(expected, bool):
        return type(value) is type(expected) and value == expected
    if isinstance(value, (int, float)) and isinstance(expected, (int, float)):
        return value == expected
    return type(value) is type(expected) and bool(value == expected)


def _constant(value: str | bool | int | float) -> Run:
    result = [value]
    return lambda resource: result


def _exists(inner: Run) -> Run:
    return lambda resource: [bool(inner(resource))]


def _binary(operator: str, left: Run, right: Run) -> Run:
    if operator in ("=", "!="):
        negate = operator == "!="

        def compare(resource: Any) -> list[Any]:
            a, b = left(resource), right(resource)
            if not a or not b:
                return []
            same = len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
            return [same != negate]
        return compare
    if operator == "and":
        def both(resource: Any) -> list[Any]:
            a, b = _boolean(left(resource)), _boolean(right(resource))
            if a is False or b is False:
                return [False]
            return [True] if a is True and b is True else []
        return both
    raise Unsupported(f"operator {operator}")


def _boolean(values: list[Any]) -> bool | None:
    if len(values) != 1:
        return None if not values else True
    return values[0] if isinstance(values[0], bool) else True


# --- fhirpathpy fallback ----------------------------------------------------------------------

_resource_node: Callable[[dict[str, Any], str], Any] = ResourceNode
"""fhirpathpy's node for a resource (its constructor is untyped): ``is`` reads its type."""


def _resolve_stub(inputs: list[Any]) -> list[Any]:
    """``resolve()`` for fhirpathpy: a bare resource of the type the reference names."""
    found: list[Any] = []
    for item in inputs:
        reference = item.get("reference") if isinstance(item, dict) else None
        target = reference_type(reference) if isinstance(reference, str) else None
        if target is not None:
            found.append(_resource_node({"resourceType": target}, target))
    return found


_FHIRPATHPY_OPTIONS = {"userInvocationTable": {"resolve": {"fn": _resolve_stub,
                                                           "arity": {0: []}}}}


def fhirpathpy_expression(expression: str, resource_type: str) -> str:
    """The expression as handed to fhirpathpy: ``Resource.``/``DomainResource.`` roots renamed."""
    pattern = re.compile(r"^([\s(]*)(?:Resource|DomainResource)\b")
    return " | ".join(pattern.sub(lambda m: m.group(1) + resource_type, branch)
                      for branch in union_branches(expression))


def compile_with_fhirpathpy(expression: str, resource_type: str) -> Callable[..., Any]:
    """The expression compiled by fhirpathpy (R4 model, our ``resolve()``), errors not caught."""
    return fhirpathpy.compile(fhirpathpy_expression(expression, resource_type), models["r4"],
                              options=_FHIRPATHPY_OPTIONS)


def _fhirpathpy_runner(expression: str, resource_type: str) -> Run:
    compiled = compile_with_fhirpathpy(expression, resource_type)

    def run(resource: Any) -> list[Any]:
        try:
            return list(compiled(resource, {}))
        except Exception:  # an odd value must not fail the write it indexes
            logger.debug("fhirpathpy failed on %s for a %s", expression, resource_type,
                         exc_info=True)
            return []
    return run


# --- Entry point ------------------------------------------------------------------------------

@cache
def compile_expression(expression: str, resource_type: str) -> CompiledExpression:
    """Compile once: the fast subset when it covers the expression, fhirpathpy otherwise."""
    try:
        strands = _Compiler(resource_type).strands(_Parser(expression).parse())
    except Unsupported:
        return CompiledExpression(expression, resource_type,
                                  (Branch(_fhirpathpy_runner(expression, resource_type), None),),
                                  fast=False)
    return CompiledExpression(
        expression, resource_type,
        tuple(Branch(_strand_runner(strand), strand.context.type_code) for strand in strands),
        fast=True)
