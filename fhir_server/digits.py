"""ASCII digit checks for request values: ``str.isdigit`` also accepts ``²`` and other Unicode
digits, which ``int()`` refuses, so a check with it alone lets a 500 through."""

from __future__ import annotations


def is_number(text: str) -> bool:
    """Whether ``text`` is one or more ASCII digits ``0``-``9``."""
    return text.isascii() and text.isdigit()
