"""One pass over a resource against a compiled snapshot: what each rule layer then reads.

The walk pairs every value of the resource with the ElementDefinitions that govern it (a
``Visit``): the element, the slice it was assigned to, and the root of the type's own definition
when the walk entered one (``Period`` brings ``per-1``). JSON properties are resolved with the
structure layer's models (``model.py``: choice forms, ``_name`` companions, arrays, inline
backbone elements), so the shape of FHIR JSON is read in one place.

Two modes:

- core: the definition of the resource type, then of every data type and nested resource
  (``contained``, ``Bundle.entry.resource``…), so every value is visited once;
- profile: only where the profile says something (its elements with children, and the types it
  names a profile for, such as extension definitions); each element's repetitions are recorded
  as a ``Group`` with their slices, for cardinality and slicing rules.

A core walk may be sparse (``sparse=True``, what ``ProfileValidator.validate`` asks for): it
leaves out the values no core rule reads, those present, not objects, of an element with no
required binding and no constraint but ele-1 (which such a value meets), e.g. ``Patient.active``
or ``HumanName.family``. The walk others read (``ProfileValidator.walk``) has every value.

Locations are FHIRPath expressions as the structure layer writes them:
``Patient.identifier[0].value``, ``Observation.value.ofType(Quantity)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from fhir_server.validation.model import ElementModel, Property, TypeModels
from fhir_server.validation.slicing import SliceMatcher
from fhir_server.validation.snapshot import Definitions, ElementDef, ProfileError, Tree

_EMPTY: Final[Mapping[str, str]] = MappingProxyType({})
ELE_1: Final = "hasValue() or (children().count() > id.count())"
"""The published text of ele-1: an element has a value or children."""


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """The resources around a value: ``%resource``, ``%rootResource`` and what references
    within them can point at without a server."""

    resource: Mapping[str, Any]
    root: Mapping[str, Any]
    contained: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    """The root resource's contained resources: id -> resource type."""
    bundle: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    """The enclosing Bundle's entries: fullUrl -> resource type."""


def frame_of(resource: Mapping[str, Any], *, root: Mapping[str, Any] | None = None,
             bundle: Mapping[str, str] | None = None) -> Frame:
    """The frame of a resource that is its own root (or contained in ``root``)."""
    top = resource if root is None else root
    return Frame(resource=resource, root=top, contained=_contained_types(top),
                 bundle=_entry_types(resource) if bundle is None else bundle)


def _contained_types(resource: Mapping[str, Any]) -> Mapping[str, str]:
    found = {item["id"]: item["resourceType"] for item in resource.get("contained") or ()
             if isinstance(item, dict) and isinstance(item.get("id"), str)
             and isinstance(item.get("resourceType"), str)}
    return MappingProxyType(found) if found else _EMPTY


def _entry_types(resource: Mapping[str, Any]) -> Mapping[str, str]:
    if resource.get("resourceType") != "Bundle":
        return _EMPTY
    found: dict[str, str] = {}
    for entry in resource.get("entry") or ():
        if not isinstance(entry, dict):
            continue
        full_url, inner = entry.get("fullUrl"), entry.get("resource")
        if isinstance(full_url, str) and isinstance(inner, dict) and isinstance(
                inner.get("resourceType"), str):
            found[full_url] = inner["resourceType"]
    return MappingProxyType(found) if found else _EMPTY


class Visit(NamedTuple):
    """One value of the resource with the definitions that govern it.

    A named tuple rather than a frozen dataclass: a walk makes one per value, and a tuple is
    built several times faster (the walk builds them positionally, in field order)."""

    value: Any
    """The JSON value; None for a primitive given only by its ``_name`` companion."""
    companion: Any
    """The ``_name`` object of a primitive (id, extensions), or None."""
    location: str
    type_code: str
    element: ElementDef
    slice: ElementDef | None
    type_root: ElementDef | None
    """The root of the type's definition when the walk entered it (its constraints apply)."""
    frame: Frame

    @property
    def definitions(self) -> tuple[ElementDef, ...]:
        return tuple(d for d in (self.element, self.slice, self.type_root) if d is not None)


_new_visit: Final = tuple.__new__
"""Builds a Visit from the tuple of its fields in order, ``_new_visit(Visit, (...))``: the
core walk's way, about twice as fast as the named tuple's generated constructor."""


class Item(NamedTuple):
    """One repetition of an element in the JSON (a named tuple, as ``Visit``)."""

    location: str
    value: Any
    companion: Any
    type_code: str
    prop: Property


@dataclass(frozen=True, slots=True, eq=False)
class Group:
    """The repetitions of one element in one object (profile mode), with their slices."""

    location: str
    element: ElementDef
    items: tuple[Item, ...]
    slices: tuple[ElementDef | None, ...]


@dataclass(frozen=True, slots=True)
class ProfileProblem:
    """A part of a profile that cannot be applied (a slicing, a type profile), and why."""

    location: str
    element: ElementDef
    reason: str


@dataclass(frozen=True, slots=True, eq=False)
class Nested:
    """A resource inside another (contained, a Bundle entry, a Parameters value)."""

    resource: Mapping[str, Any]
    location: str
    frame: Frame


@dataclass(frozen=True, slots=True, eq=False)
class Walk:
    tree: Tree
    visits: tuple[Visit, ...]
    groups: tuple[Group, ...]
    problems: tuple[ProfileProblem, ...]
    nested: tuple[Nested, ...]


class _Slot:
    """What one JSON key of an object is against the definition owning the object (core
    mode), worked out once per (model, definition): the property, the element governing its
    values, whether the key is a lone ``_name`` companion, and (filled on first use) how the
    walk enters a complex value of the property's type."""

    __slots__ = ("alone", "element", "entered", "prop", "quiet")

    def __init__(self, prop: Property, element: ElementDef, *, alone: bool) -> None:
        self.prop = prop
        self.element = element
        self.alone = alone
        self.entered: _Entered | None = None
        self.quiet = prop.rule is not None and _read_by_no_rule(element)
        """A primitive whose values (present, not objects) a sparse walk leaves out."""


def _read_by_no_rule(element: ElementDef) -> bool:
    """Whether no core rule reads a present, non-object value of ``element`` (a primitive's):
    no required binding, and no constraint but ele-1, which such a value meets."""
    binding = element.binding
    return ((binding is None or binding.strength != "required")
            and all(c.expression == ELE_1 for c in element.constraints))


class _Entered(NamedTuple):
    """The definition of a complex value's children, the type root when it is one, the
    model of its JSON properties and the slots of the two (none when one is missing)."""

    owner: ElementDef | None
    type_root: ElementDef | None
    model: ElementModel | None
    slots: dict[str, _Slot]


@dataclass(slots=True, eq=False)
class _State:
    core: bool
    sparse: bool = False
    visits: list[Visit] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    problems: list[ProfileProblem] = field(default_factory=list)
    nested: list[Nested] = field(default_factory=list)


class Walker:
    """Walks resources against compiled snapshots (see the module docstring)."""

    def __init__(self, definitions: Definitions, models: TypeModels,
                 matcher: SliceMatcher) -> None:
        self._definitions = definitions
        self._models = models
        self._matcher = matcher
        self._slots: dict[tuple[ElementModel, ElementDef], dict[str, _Slot]] = {}

    def walk(self, resource: Mapping[str, Any], tree: Tree, *, core: bool,
             location: str | None = None, frame: Frame | None = None,
             sparse: bool = False) -> Walk:
        """Walk ``resource`` (of the tree's type) against ``tree``; ``sparse`` (core mode):
        without the values no core rule reads (see the module docstring)."""
        state = _State(core=core, sparse=sparse and core)
        model = self._model(tree.type)
        where = location or tree.type
        here = frame or frame_of(resource)
        state.visits.append(Visit(value=resource, companion=None, location=where,
                                  type_code=tree.type, element=tree.root, slice=None,
                                  type_root=None, frame=here))
        if model is not None:
            self._object(resource, model, tree.root, where, here, state)
        return Walk(tree=tree, visits=tuple(state.visits), groups=tuple(state.groups),
                    problems=tuple(state.problems), nested=tuple(state.nested))

    def walk_value(self, value: Any, type_code: str, tree: Tree) -> Walk:
        """Walk a data type value (e.g. an Extension) against a profile of its type."""
        state = _State(core=False)
        here = frame_of({})
        state.visits.append(Visit(value=value, companion=None, location=type_code,
                                  type_code=type_code, element=tree.root, slice=None,
                                  type_root=None, frame=here))
        model = self._model(type_code)
        if model is not None and isinstance(value, dict):
            self._object(value, model, tree.root, type_code, here, state)
        return Walk(tree=tree, visits=tuple(state.visits), groups=tuple(state.groups),
                    problems=tuple(state.problems), nested=())

    def _model(self, type_name: str) -> ElementModel | None:
        try:
            return self._models.get(type_name)
        except KeyError:
            return None

    def _object(self, obj: Mapping[str, Any], model: ElementModel, owner: ElementDef,
                location: str, frame: Frame, state: _State) -> None:
        if state.core:
            self._core_object(obj, model, owner, location, frame, state)
        else:
            self._grouped_object(obj, model, owner, location, frame, state)

    def _core_object(self, obj: Mapping[str, Any], model: ElementModel, owner: ElementDef,
                     location: str, frame: Frame, state: _State,
                     slots: dict[str, _Slot] | None = None) -> None:
        """Core mode: each JSON property in order, each value visited at once. This is the
        order of the grouped walk as long as the object has one form of each choice (as a
        well-formed one has); with two, the visits made here are dropped and the object is
        walked grouped."""
        if slots is None:
            slots = self._slot_table(model, owner)
        visits, nested, sparse = state.visits, state.nested, state.sparse
        visited, nested_count = len(visits), len(nested)
        choices: set[str] | None = None
        for key, value in obj.items():
            slot = slots.get(key)
            if slot is None:
                continue
            prop = slot.prop
            if slot.alone and prop.key in obj:
                continue
            choice = prop.choice
            if choice is not None:
                if choices is None:
                    choices = {choice}
                elif choice in choices:
                    del visits[visited:], nested[nested_count:]
                    self._grouped_object(obj, model, owner, location, frame, state)
                    return
                else:
                    choices.add(choice)
            companion = None
            if not slot.alone:
                companion_key = prop.companion_key
                if companion_key is not None:
                    companion = obj.get(companion_key)
                quiet = sparse and slot.quiet
                if not prop.many or not isinstance(value, list):
                    if isinstance(value, dict) or isinstance(companion, dict):
                        self._core_value(value, companion, f"{location}.{prop.label}", slot,
                                         frame, state)
                    elif not quiet or value is None:  # a primitive (as _core_value does it)
                        visits.append(_new_visit(Visit, (
                            value, companion, f"{location}.{prop.label}", prop.type_name,
                            slot.element, None, None, frame)))
                    continue
                if not isinstance(companion, list) or not companion:
                    path = f"{location}.{prop.label}"
                    for index, repetition in enumerate(value):
                        if isinstance(repetition, dict):
                            self._core_value(repetition, None, f"{path}[{index}]", slot, frame,
                                             state)
                        elif not quiet or repetition is None:
                            visits.append(_new_visit(Visit, (
                                repetition, None, f"{path}[{index}]", prop.type_name,
                                slot.element, None, None, frame)))
                    continue
            items: list[Item] = []  # a lone companion, or repetitions with companions
            _add_items(items, prop, obj, value, location, alone=slot.alone)
            for item in items:
                self._core_value(item.value, item.companion, item.location, slot, frame, state)

    def _core_value(self, value: Any, companion: Any, location: str, slot: _Slot, frame: Frame,
                    state: _State) -> None:
        """One value in core mode (as ``_item`` does it, with the slot's facts)."""
        prop = slot.prop
        if not isinstance(value, dict):
            # Visit(value, companion, location, type_code, element, slice, type_root, frame)
            state.visits.append(_new_visit(Visit, (value, companion, location, prop.type_name,
                                                   slot.element, None, None, frame)))
            if isinstance(companion, dict):
                self._companion(companion, prop.type_name, location, frame, state)
            return
        if prop.is_resource:
            self._resource(value, prop, location, slot.element, None, frame, state)
            return
        entered = slot.entered
        if entered is None:
            entered = slot.entered = self._enter(slot)
        state.visits.append(_new_visit(Visit, (value, None, location, prop.type_name,
                                               slot.element, None, entered.type_root, frame)))
        if entered.owner is not None and entered.model is not None:
            self._core_object(value, entered.model, entered.owner, location, frame, state,
                              entered.slots)

    def _slot_table(self, model: ElementModel, owner: ElementDef) -> dict[str, _Slot]:
        """What each JSON key of an object of ``model`` under ``owner`` is, made once."""
        known = self._slots.get((model, owner))
        if known is not None:
            return known
        children = owner.children
        table: dict[str, _Slot] = {}
        for key, prop in model.properties.items():
            child = children.get(prop.choice or prop.key)
            if child is not None:
                table[key] = _Slot(prop, child, alone=False)
        for key, prop in model.companions.items():
            child = children.get(prop.choice or prop.key)
            if child is not None and key not in table:
                table[key] = _Slot(prop, child, alone=True)
        self._slots[(model, owner)] = table
        return table

    def _enter(self, slot: _Slot) -> _Entered:
        """How core mode enters a complex (not resource) value of the slot's property."""
        prop, element = slot.prop, slot.element
        owner, type_root = self._owner(element, None, prop.type_name, "", core=True,
                                       problems=[])
        model = prop.inline or self._model(prop.type_name)
        slots = self._slot_table(model, owner) if owner is not None and model is not None else {}
        return _Entered(owner, type_root, model, slots)

    def _grouped_object(self, obj: Mapping[str, Any], model: ElementModel, owner: ElementDef,
                        location: str, frame: Frame, state: _State) -> None:
        grouped: dict[str, list[Item]] = {}
        properties = model.properties
        for key, value in obj.items():
            prop = properties.get(key)
            alone = False
            if prop is None:
                prop = model.companions.get(key)
                if prop is None or prop.key in obj:
                    continue
                alone = True
            name = prop.choice or prop.key
            _add_items(grouped.setdefault(name, []), prop, obj, value, location, alone=alone)
        children = owner.children
        for name, items in grouped.items():
            child = children.get(name)
            if child is None:
                continue
            if state.core:
                for item in items:
                    self._item(item, child, None, frame, state)
            else:
                self._element(child, items, f"{location}.{name.removesuffix('[x]')}", frame,
                              state)
        if not state.core:
            for name, child in children.items():
                if name not in grouped and (child.min > 0 or any(s.min > 0
                                                                 for s in child.slices)):
                    state.groups.append(Group(location=f"{location}.{name.removesuffix('[x]')}",
                                              element=child, items=(), slices=()))

    def _element(self, element: ElementDef, items: list[Item], location: str, frame: Frame,
                 state: _State) -> None:
        """The repetitions of one element in profile mode: their slices, then each one."""
        slices: tuple[ElementDef | None, ...] = (None,) * len(items)
        if element.slices:
            assignment = self._matcher.assign(
                element, [(item.value, item.type_code) for item in items])
            slices = assignment.slices
            state.problems.extend(ProfileProblem(location, element, reason)
                                  for reason in assignment.problems)
        state.groups.append(Group(location=location, element=element, items=tuple(items),
                                  slices=slices))
        for item, chosen in zip(items, slices, strict=True):
            self._item(item, element, chosen, frame, state)

    def _item(self, item: Item, element: ElementDef, chosen: ElementDef | None, frame: Frame,
              state: _State) -> None:
        value = item.value
        if not isinstance(value, dict):
            # Visit(value, companion, location, type_code, element, slice, type_root, frame)
            state.visits.append(Visit(value, item.companion, item.location, item.type_code,
                                      element, chosen, None, frame))
            if state.core and isinstance(item.companion, dict):
                self._companion(item.companion, item.type_code, item.location, frame, state)
            return
        if item.prop.is_resource:
            self._resource(value, item.prop, item.location, element, chosen, frame, state)
            return
        owner, type_root = self._owner(element, chosen, item.type_code, item.location,
                                       core=state.core, problems=state.problems)
        state.visits.append(Visit(value, None, item.location, item.type_code, element, chosen,
                                  type_root, frame))
        model = item.prop.inline or self._model(item.type_code)
        if owner is not None and model is not None:
            self._object(value, model, owner, item.location, frame, state)

    def _resource(self, value: dict[str, Any], prop: Property, location: str,
                  element: ElementDef, chosen: ElementDef | None, frame: Frame,
                  state: _State) -> None:
        resource_type = value.get("resourceType")
        model = self._model(resource_type) if isinstance(resource_type, str) else None
        if model is None or not isinstance(resource_type, str):
            return
        if prop.key == "contained":
            inner = Frame(resource=value, root=frame.root, contained=frame.contained,
                          bundle=frame.bundle)
        else:
            inner = frame_of(value, bundle=frame.bundle or None)
        owner, type_root = self._owner(element, chosen, resource_type, location,
                                       core=state.core, problems=state.problems)
        state.visits.append(Visit(value=value, companion=None, location=location,
                                  type_code=resource_type, element=element, slice=chosen,
                                  type_root=type_root, frame=inner))
        if state.core:
            state.nested.append(Nested(resource=value, location=location, frame=inner))
        if owner is not None:
            self._object(value, model, owner, location, inner, state)

    def _companion(self, companion: Mapping[str, Any], type_code: str, location: str,
                   frame: Frame, state: _State) -> None:
        """The id and extensions of a primitive, against the primitive type's definition."""
        tree = self._definitions.core(type_code)
        model = self._model("Element")
        if tree is not None and model is not None:
            self._object(companion, model, tree.root, location, frame, state)

    def _owner(self, element: ElementDef, chosen: ElementDef | None, type_code: str,
               location: str, *, core: bool,
               problems: list[ProfileProblem]) -> tuple[ElementDef | None, ElementDef | None]:
        """The definition of a value's children, and the type root when it is one."""
        for definition in (chosen, element):
            if definition is not None and definition.children:
                return definition, None
        if core:
            tree = self._definitions.core(type_code)
            return (tree.root, tree.root) if tree is not None else (None, None)
        for definition in (chosen, element):
            for url in _type_profiles(definition, type_code):
                assert definition is not None
                profile = self._type_profile(url, definition, location, problems)
                if profile is not None:
                    return profile.root, profile.root
        return None, None

    def _type_profile(self, url: str, definition: ElementDef, location: str,
                      problems: list[ProfileProblem]) -> Tree | None:
        try:
            return self._definitions.profile(url)
        except ProfileError as error:
            problems.append(ProfileProblem(location, definition,
                                           f"the type profile {url}: {error}"))
            return None


def _type_profiles(definition: ElementDef | None, type_code: str) -> tuple[str, ...]:
    if definition is None:
        return ()
    return tuple(url for t in definition.types
                 if t.code == type_code or len(definition.types) == 1 for url in t.profiles)


def _add_items(items: list[Item], prop: Property, obj: Mapping[str, Any], value: Any,
               location: str, *, alone: bool) -> None:
    """The repetitions of one JSON property (with their ``_name`` companions)."""
    path = f"{location}.{prop.label}"
    if alone:
        values: Any = None
        companions: Any = value
    else:
        values = value
        companions = obj.get(prop.companion_key) if prop.companion_key else None
    listed = companions if alone else values
    if not prop.many or not isinstance(listed, list):
        items.append(_item(path, values, companions, prop))
        return
    values_list = values if isinstance(values, list) else []
    companions_list = companions if isinstance(companions, list) else []
    if not companions_list:
        items.extend(_item(f"{path}[{index}]", item, None, prop)
                     for index, item in enumerate(values_list))
        return
    for index in range(max(len(values_list), len(companions_list))):
        items.append(_item(f"{path}[{index}]",
                           values_list[index] if index < len(values_list) else None,
                           companions_list[index] if index < len(companions_list) else None,
                           prop))


def _item(location: str, value: Any, companion: Any, prop: Property) -> Item:
    type_code = prop.type_name
    if prop.is_resource and isinstance(value, dict) and isinstance(value.get("resourceType"),
                                                                   str):
        type_code = value["resourceType"]
    return Item(location, value, companion, type_code, prop)
