"""The guide tooling's errors: a profile that cannot be snapshotted, a guide that cannot load."""

from __future__ import annotations


class SnapshotError(ValueError):
    """A differential that cannot be applied to its base (unknown element, widening, bad slice)."""


class GuideError(ValueError):
    """A guide directory that cannot be loaded; the message names the offending file."""
