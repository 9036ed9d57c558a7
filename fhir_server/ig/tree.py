"""Snapshot elements as a tree: built from a flat snapshot, copied under new ids, flattened back.

A ``Node`` is one ElementDefinition. Its ``children`` are the elements one level below it, its
``slices`` the slices defined on it, each slice with its own children. Flattening walks a node,
then its children, then its slices: the order a snapshot lists them in
(https://hl7.org/fhir/R4/profiling.html#slicing). Element ids follow
https://hl7.org/fhir/R4/elementdefinition.html#id: ``Patient.identifier:insNir.system``, a
re-slice ``Patient.identifier:insNir/provisional``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fhir_server.ig.errors import SnapshotError


@dataclass(eq=False, slots=True)
class Node:
    """One element of a snapshot being built, with the elements below it."""

    element: dict[str, Any]
    children: list[Node] = field(default_factory=list)
    slices: list[Node] = field(default_factory=list)
    expanded: bool = False
    """Whether ``children`` lists the element's structure (a data type is unrolled only on need)."""

    @property
    def id(self) -> str:
        return str(self.element["id"])

    @property
    def path(self) -> str:
        return str(self.element["path"])

    @property
    def name(self) -> str:
        """The last step of the path, e.g. ``system`` or ``value[x]``."""
        return self.path.rpartition(".")[2]

    @property
    def is_slice(self) -> bool:
        return "sliceName" in self.element

    def child(self, name: str) -> Node | None:
        return next((child for child in self.children if child.name == name), None)

    def slice_named(self, slice_name: str) -> Node | None:
        return next((s for s in self.slices if s.element.get("sliceName") == slice_name), None)


def split_id(element_id: str) -> list[tuple[str, str | None]]:
    """``Patient.identifier:insNir.system`` -> ``[("Patient", None), ("identifier", "insNir"),
    ("system", None)]``."""
    segments: list[tuple[str, str | None]] = []
    for segment in element_id.split("."):
        name, separator, slice_name = segment.partition(":")
        if not name or (separator and not slice_name):
            raise SnapshotError(f"{element_id}: malformed element id")
        segments.append((name, slice_name if separator else None))
    return segments


def path_of_id(element_id: str) -> str:
    """The path an element id stands for: its slice names removed."""
    return ".".join(name for name, _ in split_id(element_id))


def build_tree(elements: Sequence[Mapping[str, Any]]) -> Node:
    """The tree of a flat snapshot (elements are copied; an element without id gets its path)."""
    if not elements:
        raise SnapshotError("the base snapshot has no element")
    root = Node(_copied(elements[0]))
    attach(root, elements[1:])
    return root


def attach(parent: Node, elements: Sequence[Mapping[str, Any]]) -> None:
    """Places ``elements`` (ids already under ``parent``'s id) below ``parent``, in order."""
    index = {node.id: node for node in walk(parent)}
    added: list[Node] = []
    for source in elements:
        node = Node(_copied(source))
        owner_id, is_slice = _owner(node.id)
        owner = index.get(owner_id)
        if owner is None:
            raise SnapshotError(f"{node.id}: no element {owner_id} holds it in the snapshot")
        (owner.slices if is_slice else owner.children).append(node)
        index[node.id] = node
        added.append(node)
    for node in (parent, *added):
        node.expanded = node.expanded or bool(node.children)


def rebased(node: Node, *, old_id: str, new_id: str, old_path: str, new_path: str) -> Node:
    """A deep copy of ``node`` and everything below it with id and path prefixes replaced."""
    element = copy.deepcopy(node.element)
    element["id"] = new_id + node.id[len(old_id):]
    element["path"] = new_path + node.path[len(old_path):]
    prefixes = {"old_id": old_id, "new_id": new_id, "old_path": old_path, "new_path": new_path}
    return Node(
        element,
        children=[rebased(child, **prefixes) for child in node.children],
        slices=[rebased(item, **prefixes) for item in node.slices],
        expanded=node.expanded,
    )


def walk(node: Node) -> Iterator[Node]:
    """``node`` and every node below it, in snapshot order."""
    yield node
    for child in node.children:
        yield from walk(child)
    for item in node.slices:
        yield from walk(item)


def find(root: Node, element_id: str) -> Node | None:
    return next((node for node in walk(root) if node.id == element_id), None)


def flatten(root: Node) -> list[dict[str, Any]]:
    """The snapshot's element list: each node, then its children, then its slices."""
    return [node.element for node in walk(root)]


def _owner(element_id: str) -> tuple[str, bool]:
    """The id of the node an element hangs from, and whether it is a slice of that node."""
    head, _, last = element_id.rpartition(".")
    name, separator, slice_name = last.partition(":")
    if not separator:
        return head, False
    if "/" in slice_name:
        return f"{head}.{name}:{slice_name.rpartition('/')[0]}", True
    return f"{head}.{name}" if head else name, True


def _copied(element: Mapping[str, Any]) -> dict[str, Any]:
    copied = copy.deepcopy(dict(element))
    if "path" not in copied:
        raise SnapshotError(f"snapshot element without a path: {dict(element)!r}"[:200])
    copied.setdefault("id", copied["path"])
    return copied
