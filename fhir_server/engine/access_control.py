"""Applies the caller's ``Access`` (``ctx.access``) inside the engine: the reach of each
interaction is ANDed into the query before paging, chained and ``_has`` searches only go through
what the caller may read, reads of hidden resources answer 404, and every write is checked
before commit (the resource it replaces and the one it stores must both be within reach).

Without ``ctx.access`` (the operator, the server's own work) nothing is limited. Notes:
``docs/implementation/access-policies.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from fhir_server.access.policies import ORGANIZATION_TAG_SYSTEM, OWNER_TAG_SYSTEM, Letter
from fhir_server.access.reach import EVERYTHING, Reach, Refused, Within
from fhir_server.engine.context import EngineContext
from fhir_server.engine.hooks import PlannedWrite
from fhir_server.engine.operations import Operation
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.storage.index import IndexEntry, ReferenceEntry, TokenEntry
from fhir_server.storage.protocol import VersionConflict
from fhir_server.storage.query import (
    AllClause,
    AnyClause,
    ChainClause,
    Clause,
    HasClause,
    IdClause,
    NotClause,
    ReferenceClause,
    SearchQuery,
    TokenClause,
    TokenValue,
    TypeClause,
)
from fhir_server.types import ResourceDict

NOTHING: Final = AnyClause(())
"""A clause no resource satisfies."""


def reach(ctx: EngineContext, letter: Letter, resource_type: str | None) -> Reach:
    """The caller's reach of ``resource_type`` for ``letter`` (everything without access)."""
    if ctx.access is None:
        return EVERYTHING
    return ctx.access.reach(ctx.indexer, letter, resource_type)


def forbidden(refused: Refused) -> FhirError:
    return FhirError(ErrorCode.FORBIDDEN, refused.reason)


def search_clauses(ctx: EngineContext, letter: Letter, resource_type: str | None,
                   types: Sequence[str], clauses: Sequence[Clause]) -> tuple[Clause, ...]:
    """``clauses`` of a search (or a conditional operation's match) with the caller's limits:
    their chained and ``_has`` parts confined to what the caller may read, and the reach of
    the searched type (of each type named by ``_type`` at system level) ANDed in. A type the
    caller may not search is a 403."""
    if ctx.access is None:
        return tuple(clauses)
    guarded = tuple(guard_joins(ctx, clause) for clause in clauses)
    if resource_type is None and types:
        alternatives: list[Clause] = []
        for each in types:
            limit = reach(ctx, letter, each)
            if isinstance(limit, Refused):
                raise forbidden(limit)
            alternatives.append(AllClause((TypeClause((each,)), limit.clause))
                                if isinstance(limit, Within) else TypeClause((each,)))
        return (*guarded, AnyClause(tuple(alternatives)))
    limit = reach(ctx, letter, resource_type)
    if isinstance(limit, Refused):
        raise forbidden(limit)
    return (*guarded, limit.clause) if isinstance(limit, Within) else guarded


def readable_clauses(ctx: EngineContext, resource_type: str) -> tuple[Clause, ...] | None:
    """The clauses to AND into a query reading ``resource_type`` for the caller (includes):
    ``()`` unlimited, None when the caller may read none of them."""
    limit = reach(ctx, "r", resource_type)
    if isinstance(limit, Refused):
        return None
    return (limit.clause,) if isinstance(limit, Within) else ()


def guard_joins(ctx: EngineContext, clause: Clause) -> Clause:
    """``clause`` with each chained target and ``_has`` source limited to what the caller may
    read of its type; a type it may not read at all is a 403 (not silently nothing)."""
    match clause:
        case ChainClause(param=param, target_type=target, where=where):
            return ChainClause(param, target, _guarded_where(ctx, target, where))
        case HasClause(source_type=source, param=param, where=where):
            return HasClause(source, param, _guarded_where(ctx, source, where))
        case AnyClause(clauses=parts):
            return AnyClause(tuple(guard_joins(ctx, part) for part in parts))
        case AllClause(clauses=parts):
            return AllClause(tuple(guard_joins(ctx, part) for part in parts))
        case NotClause(clause=negated):
            return NotClause(guard_joins(ctx, negated))
        case _:
            return clause


def _guarded_where(ctx: EngineContext, resource_type: str,
                   where: Sequence[Clause]) -> tuple[Clause, ...]:
    limit = reach(ctx, "r", resource_type)
    if isinstance(limit, Refused):
        raise FhirError(ErrorCode.FORBIDDEN, f"This search goes through {resource_type} "
                                             f"resources, which you may not read: "
                                             f"{limit.reason}")
    inner = tuple(guard_joins(ctx, part) for part in where)
    return (*inner, limit.clause) if isinstance(limit, Within) else inner


def require_allowed(ctx: EngineContext, letter: Letter, resource_type: str) -> None:
    """403 when the caller may not do ``letter`` on ``resource_type`` at all (checked before
    looking the resource up, so the answer says nothing of what exists)."""
    limit = reach(ctx, letter, resource_type)
    if isinstance(limit, Refused):
        raise forbidden(limit)


async def require_readable(ctx: EngineContext, resource_type: str, id: str) -> None:
    """403 when the caller may not read ``resource_type`` at all; 404 (as for an unknown id,
    revealing nothing) when this resource is outside its reach."""
    limit = reach(ctx, "r", resource_type)
    if isinstance(limit, Refused):
        raise forbidden(limit)
    if isinstance(limit, Within) and not await _stored_within(ctx, resource_type, id,
                                                              limit.clause):
        raise FhirError(ErrorCode.NOT_FOUND, f"{resource_type}/{id[:64]} is not known")


def require_unlimited_history(ctx: EngineContext, resource_type: str | None) -> None:
    """Type and system history list versions of many resources, which a limited caller's
    query cannot be confined on: 403 for them (instance history stays available)."""
    limit = reach(ctx, "s", resource_type)
    if isinstance(limit, Refused):
        raise forbidden(limit)
    if isinstance(limit, Within) or (ctx.access is not None
                                     and ctx.access.limits_every_type()):
        raise FhirError(ErrorCode.FORBIDDEN,
                        "History across resources is not available to this account: read the "
                        "history of each resource (Type/id/_history)")


def require_operation_allowed(ctx: EngineContext, operation: Operation) -> None:
    """An operation declared ``admin_only`` is the operator's; the others read and write
    through the same checks as every interaction."""
    if ctx.access is not None and operation.admin_only:
        raise FhirError(ErrorCode.FORBIDDEN, f"The operation ${operation.name} is reserved to "
                                             "the operator")


def with_access_tags(ctx: EngineContext, resource: ResourceDict,
                     previous: ResourceDict | None) -> ResourceDict:
    """The resource to store for a limited caller: access tags are the server's — those the
    caller sent are dropped, the previous version's kept, the caller's own stamped."""
    if ctx.access is None:
        return resource
    meta = resource.get("meta") or {}
    others = [tag for tag in meta.get("tag") or () if not _is_access_tag(tag)]
    inherited = [tag for tag in ((previous or {}).get("meta") or {}).get("tag") or ()
                 if _is_access_tag(tag)]
    access_tags: list[object] = []
    for tag in (*inherited, *ctx.access.tags(str(resource.get("resourceType")))):
        if tag not in access_tags:
            access_tags.append(tag)
    tags = others + access_tags
    if tags == list(meta.get("tag") or ()):
        return resource
    rest = {key: value for key, value in meta.items() if key != "tag"}
    new_meta = {**rest, "tag": tags} if tags else rest
    return {**resource, "meta": new_meta} if new_meta else {
        key: value for key, value in resource.items() if key != "meta"}


ACCESS_TAG_SYSTEMS: Final = frozenset({ORGANIZATION_TAG_SYSTEM, OWNER_TAG_SYSTEM})
"""The meta.tag systems only the server writes: a pharmacy's, an owner's."""


def _is_access_tag(tag: object) -> bool:
    return isinstance(tag, dict) and tag.get("system") in ACCESS_TAG_SYSTEMS


async def check_writes(ctx: EngineContext, writes: Sequence[PlannedWrite]) -> None:
    """Before commit: each write must be allowed to the caller, on the resource it replaces
    (a hidden one answers 404) and on the one it stores."""
    if ctx.access is None:
        return
    for write in writes:
        change = write.change
        letter: Letter = "d" if write.resource is None else ("c" if write.created else "u")
        limit = reach(ctx, letter, change.resource_type)
        if isinstance(limit, Refused):
            raise forbidden(limit)
        if not isinstance(limit, Within):
            continue
        if write.previous is not None:
            await _require_unchanged(ctx, write)
        if write.previous is not None and not await _stored_within(
                ctx, change.resource_type, change.id, limit.clause):
            await require_readable(ctx, change.resource_type, change.id)
            raise FhirError(ErrorCode.FORBIDDEN, f"You may not change "
                                                 f"{change.resource_type}/{change.id}")
        if write.resource is not None and (
                write.previous is None or ctx.access.checks_new_version(change.resource_type)
        ) and not await _candidate_within(
                ctx, limit.clause, change.resource_type, change.id, change.index or (),
                exists=write.previous is not None):
            raise FhirError(ErrorCode.FORBIDDEN,
                            f"This {change.resource_type} would be outside what you may write "
                            "(a case of your pharmacy, or a case you own)")


async def _require_unchanged(ctx: EngineContext, write: PlannedWrite) -> None:
    """The reach is checked on the stored version: when someone wrote since this write was
    planned, the write is stale — ``VersionConflict`` (the writer retries or answers 409/412)
    rather than a verdict on a version the caller never saw."""
    change = write.change
    stored = await ctx.store.read(change.resource_type, change.id)
    actual = stored.version if stored is not None else 0
    if actual != change.expected_version:
        raise VersionConflict(change.resource_type, change.id, change.expected_version, actual)


async def _stored_within(ctx: EngineContext, resource_type: str, id: str,
                         clause: Clause) -> bool:
    page = await ctx.store.search(SearchQuery(resource_type, (IdClause((id,)), clause),
                                              count=1))
    return bool(page.matches)


async def _candidate_within(ctx: EngineContext, clause: Clause, resource_type: str, id: str,
                            entries: Sequence[IndexEntry], *, exists: bool) -> bool:
    """Whether a resource about to be stored satisfies ``clause``, from its index entries
    (its references followed in the store; ``_has`` parts on the stored resource)."""
    match clause:
        case IdClause(ids=ids):
            return id in ids
        case TokenClause(param=param, values=values, negate=negate):
            found = any(isinstance(entry, TokenEntry) and entry.param == param
                        and _token_matches(entry, value)
                        for entry in entries for value in values)
            return found != negate
        case ReferenceClause(param=param, values=values):
            return any(isinstance(entry, ReferenceEntry) and entry.param == param
                       and (value.target_type in (None, entry.target_type))
                       and value.target_id == entry.target_id
                       for entry in entries for value in values)
        case ChainClause(param=param, target_type=target, where=where):
            ids = tuple(entry.target_id for entry in entries
                        if isinstance(entry, ReferenceEntry) and entry.param == param
                        and entry.target_type == target and entry.target_id is not None)
            if not ids:
                return False
            page = await ctx.store.search(SearchQuery(target, (IdClause(ids), *where),
                                                      count=1))
            return bool(page.matches)
        case HasClause():
            return exists and await _stored_within(ctx, resource_type, id, clause)
        case AnyClause(clauses=parts):
            for part in parts:
                if await _candidate_within(ctx, part, resource_type, id, entries,
                                           exists=exists):
                    return True
            return False
        case AllClause(clauses=parts):
            for part in parts:
                if not await _candidate_within(ctx, part, resource_type, id, entries,
                                               exists=exists):
                    return False
            return True
        case NotClause(clause=negated):
            return not await _candidate_within(ctx, negated, resource_type, id, entries,
                                               exists=exists)
        case _:
            raise FhirError(ErrorCode.FORBIDDEN,
                            "Your access is limited by a scope restriction this server cannot "
                            "check on a write: ask for an unrestricted write scope")


def _token_matches(entry: TokenEntry, value: TokenValue) -> bool:
    system_ok = (value.system is None or (value.system == "" and entry.system is None)
                 or value.system == entry.system)
    return system_ok and (value.code is None or value.code == entry.code)
