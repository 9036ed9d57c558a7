"""The composition root: builds the store, keys, engine and outbox dispatcher from Settings.

The engine comes with its built-in operations (``$reindex``, the terminology operations) and the
custom search-parameter catalogue (profiles and stored SearchParameters). Before-commit hooks
run in this order: the guard keeping the guide's resources read-only, the catalogue's write
check, then the domain hooks. At start, the implementation guide's conformance resources are
installed in the store. The ``$reindex`` job needs the engine, so its outbox consumer is bound
here: to the API's engine for in-process delivery, to an engine of the worker's own
(``worker_consumers``) in a Celery worker. The authorization store (clients, issued tokens) is
opened beside the FHIR store, with the token service that issues into it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fhir_server.auth.factory import open_auth_store
from fhir_server.auth.model import AuthStore
from fhir_server.auth.token_endpoint import TokenService
from fhir_server.crypto.fields import FieldCipher
from fhir_server.crypto.keys import ConfigurationError, KeyMaterial, load_keys
from fhir_server.engine.context import EngineContext, Limits
from fhir_server.engine.engine import Engine
from fhir_server.engine.guide_installation import GuideGuard, install_guide
from fhir_server.engine.hooks import Hooks
from fhir_server.engine.indexing import Indexer
from fhir_server.engine.operations import OperationRegistry
from fhir_server.engine.paging import CursorSigner
from fhir_server.engine.reindex import OPERATION as REINDEX
from fhir_server.engine.reindex import REINDEX_TOPIC, reindex_consumer
from fhir_server.engine.search_parameters import SearchParameterCatalogue, profile_parameters
from fhir_server.engine.terminology import guide_terminology, terminology_operations
from fhir_server.engine.validate_operation import OPERATION as VALIDATE
from fhir_server.engine.write_validation import write_validation
from fhir_server.engine.writing import CHANGE_TOPIC
from fhir_server.ig.package import load_guide
from fhir_server.outbox.consumers import (
    BoundConsumers,
    Consumer,
    ConsumerRegistry,
    consumer_modules_from_env,
    consumers_for,
    import_consumer_modules,
    registry,
)
from fhir_server.outbox.delivery import CeleryDeliverer, Deliverer, InProcessDeliverer
from fhir_server.outbox.dispatcher import OutboxDispatcher
from fhir_server.search.custom import CustomParameter
from fhir_server.settings import Mode, Settings
from fhir_server.storage.factory import open_store
from fhir_server.storage.protocol import Store

logger = logging.getLogger(__name__)

API_TOKEN_FILE = "api-token"


def build_engine(store: Store, keys: KeyMaterial, settings: Settings,
                 hooks: Hooks | None = None, *,
                 profiles: Sequence[CustomParameter] | None = None) -> Engine:
    """An engine over a started store (consumer modules already imported); ``await
    engine.start()`` loads its custom search parameters. ``profiles``: the SearchParameters
    shipped in ``profiles/`` unless given."""
    change_events = settings.change_events
    if change_events is None:
        change_events = bool(consumers_for(CHANGE_TOPIC))
    cipher = FieldCipher(keys)
    indexer = Indexer(blind_index=cipher.blind_index, is_sensitive=cipher.is_sensitive_identifier)
    catalogue = SearchParameterCatalogue(
        store=store, indexer=indexer, cipher=cipher,
        profiles=profile_parameters() if profiles is None else profiles)
    domain = hooks.before_commit if hooks is not None else []
    guide = load_guide()
    ctx = EngineContext(
        store=store, validation=write_validation(settings.validation_mode, guide=guide),
        cipher=cipher, indexer=indexer,
        hooks=Hooks(before_commit=[GuideGuard(guide).check_writes, catalogue.check_writes,
                                   *domain]),
        cursors=CursorSigner(keys.blind_key),
        limits=Limits(default_page_size=settings.default_page_size,
                      max_page_size=settings.max_page_size, max_offset=settings.max_offset),
        search_parameters=catalogue, change_events=change_events)
    return Engine(ctx, operations=OperationRegistry(
        [REINDEX, VALIDATE, *terminology_operations(guide_terminology(guide))]))


def engine_consumers(engine: Engine) -> tuple[Consumer, ...]:
    """The outbox consumers that run with this engine: the ``$reindex`` jobs."""
    return (reindex_consumer(engine.ctx),)


def worker_consumers(settings: Settings) -> BoundConsumers:
    """The engine-bound consumers of a worker: an engine over the worker's store, started on
    the first event of their topics, with the keys the settings name."""

    async def build(store: Store) -> Sequence[Consumer]:
        engine = build_engine(store, load_keys(settings), settings)
        await engine.start()
        return engine_consumers(engine)

    return BoundConsumers(topics=frozenset({REINDEX_TOPIC}), build=build)


def api_token(settings: Settings) -> str:
    """The operator bearer token: configured, or (development) read or created in the data dir."""
    if settings.api_token is not None:
        return settings.api_token.get_secret_value()
    if settings.mode == Mode.PRODUCTION:
        raise ConfigurationError("FHIR_SERVER_API_TOKEN is required in production")
    path = settings.data_dir / API_TOKEN_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return token


def token_file(settings: Settings) -> Path | None:
    """Where the development token lives, when it is not configured."""
    return None if settings.api_token is not None else settings.data_dir / API_TOKEN_FILE


def _deliverer(settings: Settings, store: Store, engine: Engine) -> Deliverer:
    if settings.broker:
        from workers.app import create_app

        return CeleryDeliverer(create_app(settings))
    consumers = ConsumerRegistry(parent=registry)
    for bound in engine_consumers(engine):
        consumers.register(bound.name, bound.topic, bound.handler)
    return InProcessDeliverer(store, consumers)


@dataclass
class Runtime:
    """Everything a running API process holds, started and stopped together."""

    settings: Settings
    store: Store
    engine: Engine
    dispatcher: OutboxDispatcher | None
    auth_store: AuthStore
    tokens: TokenService
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, settings: Settings, *, keys: KeyMaterial | None = None,
                    hooks: Hooks | None = None, store: Store | None = None,
                    auth_store: AuthStore | None = None) -> Runtime:
        """Start everything; ``store`` and ``auth_store`` override the ones the settings name
        (tests use them)."""
        keys = keys or load_keys(settings)
        store = store or open_store(settings)
        await store.start()
        auth_store = auth_store or open_auth_store(settings)
        try:
            await auth_store.start()
        except BaseException:
            await store.close()
            raise
        import_consumer_modules(consumer_modules_from_env())
        engine = build_engine(store, keys, settings, hooks)
        await install_guide(engine.ctx, load_guide())
        await engine.start()
        dispatcher = None
        if settings.outbox_dispatch:
            dispatcher = OutboxDispatcher(store, _deliverer(settings, store, engine),
                                          poll_seconds=settings.outbox_poll_seconds)
        runtime = cls(settings=settings, store=store, engine=engine, dispatcher=dispatcher,
                      auth_store=auth_store, tokens=TokenService(auth_store))
        if dispatcher is not None:
            runtime._task = asyncio.create_task(dispatcher.run(runtime._stop))
        return runtime

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, timeout=10)
        await self.auth_store.close()
        await self.store.close()
