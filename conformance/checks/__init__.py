"""The check groups, in the order a run goes through them, and choosing some by name."""

from __future__ import annotations

from collections.abc import Sequence

from conformance.checks import case, crud, guide, invalid, metadata, search, smart
from conformance.kit import Group

GROUPS: tuple[Group, ...] = (metadata.GROUP, guide.GROUP, crud.GROUP, search.GROUP, case.GROUP,
                             invalid.GROUP)
"""The groups that need nothing but the base and the token: a default run's groups."""
OPTIONAL_GROUPS = (smart.NAME,)
"""Groups that need their own options: they run (last) only when those are given."""
AUTHENTICATED = frozenset({"crud", "search", "case", "invalid"})
"""Groups that write or search, so need the bearer token (``metadata`` is public; ``smart``
gets its own tokens)."""


class UnknownGroup(ValueError):
    """A group name that is not one of ``GROUPS`` or ``OPTIONAL_GROUPS``."""


def select_groups(names: Sequence[str] | None, *,
                  smart_group: Group | None = None) -> tuple[Group, ...]:
    """The groups named (in the run's order), or all that can run when ``names`` is None.
    ``smart_group``: the SMART group built from its options (None: they were not given)."""
    available = GROUPS + ((smart_group,) if smart_group is not None else ())
    if names is None:
        return available
    known = [group.name for group in GROUPS] + list(OPTIONAL_GROUPS)
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise UnknownGroup(f"unknown group(s) {', '.join(unknown) or '(none given)'}; "
                           f"the groups are {', '.join(known)}")
    return tuple(group for group in available if group.name in names)


def skipped_groups(names: Sequence[str] | None, *,
                   smart_group: Group | None = None) -> tuple[str, ...]:
    """Lines for the groups named that cannot run because their options are missing."""
    if smart_group is None and names is not None and smart.NAME in names:
        return (f"SKIP {smart.NAME}: {smart.MISSING_OPTIONS}",)
    return ()
