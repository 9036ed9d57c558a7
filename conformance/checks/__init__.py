"""The check groups, in the order a run goes through them, and choosing some by name."""

from __future__ import annotations

from collections.abc import Sequence

from conformance.checks import case, crud, guide, invalid, metadata, search
from conformance.kit import Group

GROUPS: tuple[Group, ...] = (metadata.GROUP, guide.GROUP, crud.GROUP, search.GROUP, case.GROUP,
                             invalid.GROUP)
AUTHENTICATED = frozenset({"crud", "search", "case", "invalid"})
"""Groups that write or search, so need the bearer token (``metadata`` is public)."""


class UnknownGroup(ValueError):
    """A group name that is not one of ``GROUPS``."""


def select_groups(names: Sequence[str] | None) -> tuple[Group, ...]:
    """The groups named (in the run's order), or all of them when ``names`` is None."""
    if names is None:
        return GROUPS
    known = {group.name: group for group in GROUPS}
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise UnknownGroup(f"unknown group(s) {', '.join(unknown) or '(none given)'}; "
                           f"the groups are {', '.join(known)}")
    return tuple(group for group in GROUPS if group.name in names)
