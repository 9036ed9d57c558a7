"""What the server holds from the start: the implementation guide's conformance resources."""

from __future__ import annotations

from typing import Any

import httpx

from fhir_server.ig import load_guide


def guide_keys() -> frozenset[str]:
    """``Type/id`` of every conformance resource the server installs at start."""
    return frozenset(f"{r['resourceType']}/{r['id']}" for r in load_guide().files.values())


def guide_count(resource_type: str) -> int:
    """How many resources of a type the server installs at start."""
    return len(load_guide().by_type.get(resource_type, ()))


async def client_history(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """The system history's entries for what clients wrote (the guide's installation left out)."""
    bundle = (await client.get("/_history", params={"_count": "1000"})).json()
    keys = guide_keys()
    return [entry for entry in bundle.get("entry", [])
            if entry["request"]["url"].split("/_history")[0] not in keys]
