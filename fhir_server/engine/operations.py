"""FHIR operations (https://hl7.org/fhir/R4/operations.html): a registry of named handlers.

An ``Operation`` says where it may be invoked (system, type and/or instance level; for the type
and instance levels, on which resource types: none listed means every type), whether it
changes state (then only POST may invoke it; without state change GET may too, its URL
parameters becoming string values), and whether only an operator may call it. Its handler gets
the engine context and an ``OperationCall`` (the input as a Parameters resource) and answers an
``OperationResult``: the resource to return and its HTTP status. An operation may take a POST
body of a non-JSON media type it lists in ``raw_input`` (it arrives as a Binary), and may
answer a Binary to be sent as its raw bytes (``OperationResult.binary``), as a Binary read is.

The API resolves a request with ``OperationRegistry.resolve``, and the CapabilityStatement lists
``system_operations`` and ``type_operations`` from the same registry. Domain modules register
their operations (``$submit``, ``$claim``, ``$validate``…) when the engine is built.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from fhir_server.errors import ErrorCode, FhirError
from fhir_server.types import ResourceDict

if TYPE_CHECKING:
    from fhir_server.engine.context import EngineContext

OperationLevel: TypeAlias = Literal["system", "type", "instance"]
LEVELS: tuple[OperationLevel, ...] = ("system", "type", "instance")

_PRIMITIVE_PREFIX = "value"
_RESERVED_QUERY = frozenset({"_format", "_pretty"})


@dataclass(frozen=True, slots=True)
class OperationCall:
    """One invocation: where it was made and its input parameters (a Parameters resource)."""

    name: str
    level: OperationLevel
    parameters: ResourceDict
    base_url: str
    resource_type: str | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class OperationResult:
    """What an operation answers: a resource (Parameters, OperationOutcome, Bundle…) and status."""

    resource: ResourceDict
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    binary: bool = False
    """``resource`` is a Binary that is the answer itself: sent as its bytes with its
    ``contentType`` unless the client asks for FHIR JSON (as a Binary read is answered)."""


OperationHandler: TypeAlias = Callable[["EngineContext", OperationCall],
                                       Awaitable[OperationResult]]


@dataclass(frozen=True, slots=True)
class Operation:
    """A named operation and where it may be invoked.

    ``types``: the resource types of its type- and instance-level invocations (empty: all).
    ``affects_state``: invoked by POST only (GET answers 405), as the R4 operations page says.
    ``admin_only``: only the operator may call it (``engine/access_control.py`` refuses it to
    every limited caller).
    """

    name: str
    handler: OperationHandler
    levels: frozenset[OperationLevel]
    definition: str
    """Canonical URL of its OperationDefinition (listed in the CapabilityStatement)."""
    types: frozenset[str] = field(default_factory=frozenset)
    affects_state: bool = True
    admin_only: bool = False
    raw_input: frozenset[str] = field(default_factory=frozenset)
    """Media types a POST body may have besides FHIR JSON: such a body reaches the handler as
    a Binary (its bytes and content type) in the ``resource`` parameter."""

    def applies(self, level: OperationLevel, resource_type: str | None) -> bool:
        """Whether the operation may be invoked at this level (on this type)."""
        if level not in self.levels:
            return False
        return level == "system" or not self.types or resource_type in self.types


class OperationRegistry:
    """Operations by name; one name may have several operations on different levels or types."""

    def __init__(self, operations: Iterable[Operation] = ()) -> None:
        self._by_name: dict[str, list[Operation]] = {}
        for operation in operations:
            self.register(operation)

    def register(self, operation: Operation) -> Operation:
        """Add an operation. Raises ValueError when its name is not a plain name, has no level,
        or one of its invocations (level, type) is already another operation's."""
        if not operation.name or not operation.name.replace("-", "").isalnum():
            raise ValueError(f"an operation name is letters, digits and '-': {operation.name!r}")
        if not operation.levels:
            raise ValueError(f"operation ${operation.name} has no level")
        for other in self._by_name.get(operation.name, ()):
            if _overlap(operation, other):
                raise ValueError(f"operation ${operation.name} is already registered there")
        self._by_name.setdefault(operation.name, []).append(operation)
        return operation

    def __iter__(self) -> Iterator[Operation]:
        return (operation for group in self._by_name.values() for operation in group)

    def resolve(self, name: str, *, level: OperationLevel,
                resource_type: str | None = None) -> Operation:
        """The operation invoked by ``$name`` at this level; 400 (not supported) otherwise."""
        group = self._by_name.get(name, ())
        for operation in group:
            if operation.applies(level, resource_type):
                return operation
        where = ("at the system level" if level == "system"
                 else f"on {resource_type}" if level == "type" else f"on a {resource_type}")
        if group:
            places = "; ".join(_places(operation) for operation in group)
            raise FhirError(ErrorCode.BAD_REQUEST,
                            f"The operation ${name[:60]} cannot be invoked {where} "
                            f"(it is available {places})")
        raise FhirError(ErrorCode.BAD_REQUEST,
                        f"This server knows no operation ${name[:60]} {where}")

    def system_operations(self) -> tuple[Operation, ...]:
        return tuple(operation for operation in self if "system" in operation.levels)

    def type_operations(self, resource_type: str) -> tuple[Operation, ...]:
        """Operations invocable on a type or on its instances."""
        return tuple(operation for operation in self
                     if any(operation.applies(level, resource_type)
                            for level in ("type", "instance")))


def _overlap(one: Operation, other: Operation) -> bool:
    for level in one.levels & other.levels:
        if level == "system" or not one.types or not other.types or one.types & other.types:
            return True
    return False


def _places(operation: Operation) -> str:
    """Where an operation may be invoked, e.g. "at the type, instance level on Patient"."""
    levels = ", ".join(level for level in LEVELS if level in operation.levels)
    types = ", ".join(sorted(operation.types))
    on = f" on {types}" if types and operation.levels - {"system"} else ""
    return f"at the {levels} level{on}"


# --- Parameters in and out ----------------------------------------------------------------------

def parameters_from_query(pairs: Sequence[tuple[str, str]]) -> ResourceDict:
    """The Parameters of a GET invocation: each URL parameter a string value."""
    return {"resourceType": "Parameters",
            "parameter": [{"name": name, "valueString": value} for name, value in pairs
                          if name not in _RESERVED_QUERY]}


def parameters_from_body(body: ResourceDict) -> ResourceDict:
    """The Parameters of a POST invocation: the body itself, or a single ``resource`` parameter
    when the body is another resource (as ``$validate`` takes it)."""
    if body.get("resourceType") != "Parameters":
        return {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": body}]}
    parameters = body.get("parameter", [])
    if not isinstance(parameters, list) or not all(
            isinstance(p, dict) and isinstance(p.get("name"), str) for p in parameters):
        raise FhirError(ErrorCode.BAD_REQUEST,
                        "Parameters.parameter must be a list of parameters, each with a name",
                        expression=("Parameters.parameter",))
    return body


def parameter_values(parameters: ResourceDict, name: str) -> tuple[str, ...]:
    """The primitive values (``valueString``, ``valueUri``, ``valueCode``…) of every parameter
    named ``name``, as strings."""
    found: list[str] = []
    for parameter in _named(parameters, name):
        for key, value in parameter.items():
            if key.startswith(_PRIMITIVE_PREFIX) and isinstance(value, str | int | float | bool):
                found.append(str(value).lower() if isinstance(value, bool) else str(value))
    return tuple(found)


def parameter_resource(parameters: ResourceDict, name: str) -> ResourceDict | None:
    """The resource of the first parameter named ``name`` that carries one."""
    for parameter in _named(parameters, name):
        resource = parameter.get("resource")
        if isinstance(resource, dict):
            return resource
    return None


def parameters_of(values: Mapping[str, Sequence[tuple[str, Any]]]) -> ResourceDict:
    """A Parameters resource from ``{name: [(value[x] key, value), …]}``, in that order."""
    return {"resourceType": "Parameters",
            "parameter": [{"name": name, key: value}
                          for name, pairs in values.items() for key, value in pairs]}


def _named(parameters: ResourceDict, name: str) -> list[dict[str, Any]]:
    return [p for p in parameters.get("parameter", [])
            if isinstance(p, dict) and p.get("name") == name]
