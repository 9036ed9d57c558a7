"""Whether a search parameter takes at most one value per resource (single-valued), from the
R4 StructureDefinitions.

Only plain paths are judged (``Patient.birthDate``, ``Observation.effective``,
``Encounter.period``): every step must be an element of the resource's own snapshot with a
maximum of 1. Anything else (unions, functions, paths into data types) counts as possibly
several values, which is always the safe answer.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Final

from fhir_server.definitions import structure_definitions

_PLAIN_PATH: Final = re.compile(r"[A-Z][A-Za-z]+(?:\.[a-z][A-Za-z0-9]*)+")


@cache
def single_valued(expression: str | None, resource_type: str) -> bool:
    """Whether ``expression`` (one type's part of a parameter's expression) yields at most one
    value for any resource of ``resource_type``."""
    if expression is None or _PLAIN_PATH.fullmatch(expression) is None:
        return False
    steps = expression.split(".")
    if steps[0] != resource_type:
        return False
    maxima = _maxima(resource_type)
    path = resource_type
    for step in steps[1:]:
        path = f"{path}.{step}"
        found = maxima.get(path, maxima.get(f"{path}[x]"))
        if found != "1":
            return False
    return True


@cache
def _maxima(resource_type: str) -> dict[str, str]:
    definition = structure_definitions().get(resource_type, {})
    return {str(element["path"]): str(element.get("max", "*"))
            for element in definition.get("snapshot", {}).get("element", ())
            if "path" in element}
