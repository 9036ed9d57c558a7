"""String normalisation shared by index extraction and query parsing (case and accents folded)."""

from __future__ import annotations

import unicodedata


def normalize_string(value: str) -> str:
    """Lower-case, accent-free, single-spaced form used for string and :text matching.

    ``"  Éloïse  Dupont-Lefèvre "`` → ``"eloise dupont-lefevre"``.
    """
    decomposed = unicodedata.normalize("NFKD", value)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())
