"""The error raised when a photo's bytes break the structure of their format."""

from __future__ import annotations


class MalformedImage(ValueError):
    """The bytes are truncated or inconsistent; the message says how, never what they show."""
