"""The composition root: builds the store, keys, engine and outbox dispatcher from Settings.

The engine comes with its built-in operations (``$reindex``, the terminology operations) and the
custom search-parameter catalogue (profiles and stored SearchParameters). Before-commit hooks
run in this order: the guard keeping the guide's resources read-only, the catalogue's write
check, then the domain hooks. At start, the implementation guide's conformance resources are
installed in the store. The ``$reindex`` job needs the engine, so its outbox consumer is bound
here: to the API's engine for in-process delivery, to an engine of the worker's own
(``worker_consumers``) in a Celery worker. The authorization store (clients, issued tokens) is
opened beside the FHIR store, with the token service that issues into it, and the accounts
(``fhir_server.accounts``) beside it: their emails go through the outbox (topic
``account-email``), and disabling an account revokes its tokens. When Pro Santé Connect is
configured (``psc_issuer``), one ``ProSanteConnect`` client is kept for the process's life, with
its own HTTP client (closed at stop), so its discovery and key caches serve every sign-in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from fhir_server.access.access import Access
from fhir_server.access.principal import Principal
from fhir_server.accounts.directory import PractitionerDirectory
from fhir_server.accounts.mail import MAIL_TOPIC, mail_consumers, mailer_for
from fhir_server.accounts.service import AccountService
from fhir_server.accounts.store import AccountStore, open_account_store
from fhir_server.api.oauth import root_of
from fhir_server.auth.authorization_code import AppAuthorization, Lifetimes
from fhir_server.auth.factory import open_auth_store
from fhir_server.auth.id_tokens import id_token_signer
from fhir_server.auth.launch import PatientAccess
from fhir_server.auth.model import AuthStore
from fhir_server.auth.pro_sante_connect import ProSanteConnect, PscClientConfig
from fhir_server.auth.token_endpoint import TokenService
from fhir_server.crypto.fields import FieldCipher
from fhir_server.crypto.keys import ConfigurationError, KeyMaterial, load_keys
from fhir_server.crypto.secret_files import create_secret_file
from fhir_server.dmp.export import ExportPolicy, adapter_for, export_consumers
from fhir_server.dmp.mhd_recipient import check_provide_bundle
from fhir_server.dmp.port import DmpAdapter
from fhir_server.dmp.status_hook import announce_export_changes
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
from fhir_server.errors import FhirError
from fhir_server.ig.package import load_guide
from fhir_server.media.dicom_operations import dicom_operations
from fhir_server.media.photo_gate import PhotoGate
from fhir_server.notifications.wiring import NOTIFICATION_TOPICS, notification_consumers
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
from fhir_server.reports.events import DMP_EXPORT_REQUESTED, REPORT_FILED
from fhir_server.reports.filed_hook import announce_filed_reports
from fhir_server.reports.filing import FilingPolicy, filing_consumer
from fhir_server.search.custom import CustomParameter
from fhir_server.settings import Mode, Settings
from fhir_server.storage.factory import open_store
from fhir_server.storage.protocol import Store
from fhir_server.subscriptions.delivery import DeliveryPolicy
from fhir_server.subscriptions.rules import subscription_rules
from fhir_server.subscriptions.subscribers import PrincipalLookup
from fhir_server.subscriptions.wiring import (
    SUBSCRIPTION_TOPICS,
    WATCHED_TYPE,
    subscription_consumers,
)
from fhir_server.workflow.operations import task_operations
from fhir_server.workflow.routing import Deadlines, RoutingSweeper, routing_consumer
from fhir_server.workflow.stats import stats_operation
from fhir_server.workflow.task_rules import CASE_COMPLETED, TASK_TRANSITION, check_task_writes

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
        hooks=Hooks(before_commit=[
            GuideGuard(guide).check_writes, catalogue.check_writes, check_task_writes,
            subscription_rules(https_only=settings.mode == Mode.PRODUCTION),
            announce_filed_reports, announce_export_changes, *domain],
            prepare=[PhotoGate.from_settings(settings).prepare],
            before_bundle=[check_provide_bundle]),
        cursors=CursorSigner(keys.blind_key),
        limits=Limits(default_page_size=settings.default_page_size,
                      max_page_size=settings.max_page_size, max_offset=settings.max_offset),
        search_parameters=catalogue, change_events=change_events,
        change_event_types=frozenset({WATCHED_TYPE}))
    return Engine(ctx, operations=OperationRegistry(
        [REINDEX, VALIDATE, *terminology_operations(guide_terminology(guide)),
         *task_operations(), stats_operation(),
         *dicom_operations(PhotoGate.from_settings(settings).limits)]))


def engine_consumers(engine: Engine, settings: Settings) -> tuple[Consumer, ...]:
    """The outbox consumers that run with this engine: the ``$reindex`` jobs, the routing
    of cases whose tier has no doctor left, and the filing of completed cases' reports."""
    return (reindex_consumer(engine.ctx), routing_consumer(engine.ctx),
            filing_consumer(engine, FilingPolicy.from_settings(settings)))


def worker_consumers(settings: Settings) -> BoundConsumers:
    """The engine-bound consumers of a worker: an engine over the worker's store, started on
    the first event of their topics, with the keys the settings name."""

    async def build(store: Store) -> Sequence[Consumer]:
        keys = load_keys(settings)
        engine = build_engine(store, keys, settings)
        await engine.start()
        auth_store, account_store = open_auth_store(settings), open_account_store(settings)
        await auth_store.start()
        await account_store.start()
        accounts = AccountService(store=account_store, directory=PractitionerDirectory(engine),
                                  mailer=mailer_for(store, settings, keys=keys),
                                  settings=settings)
        return (*engine_consumers(engine, settings), *mail_consumers(settings, keys=keys),
                *subscription_consumers(engine, auth_store, accounts,
                                        policy=delivery_policy(settings)),
                *notification_consumers(engine.ctx, account_store, settings, keys=keys),
                *export_consumers(engine.ctx, adapter_for(settings),
                                  ExportPolicy.from_settings(settings)))

    return BoundConsumers(
        topics=frozenset({REINDEX_TOPIC, MAIL_TOPIC, TASK_TRANSITION, CASE_COMPLETED,
                          REPORT_FILED, DMP_EXPORT_REQUESTED,
                          *SUBSCRIPTION_TOPICS, *NOTIFICATION_TOPICS}),
        build=build)


def delivery_policy(settings: Settings) -> DeliveryPolicy:
    """How subscription notifications are tried, from the settings."""
    return DeliveryPolicy(max_failures=settings.subscription_max_failures,
                          retry_base_seconds=settings.subscription_retry_base_seconds,
                          retry_max_seconds=settings.subscription_retry_max_seconds,
                          timeout_seconds=settings.subscription_timeout_seconds,
                          https_only=settings.mode == Mode.PRODUCTION)


def api_token(settings: Settings) -> str:
    """The operator bearer token: configured, or (development) read or created in the data dir."""
    if settings.api_token is not None:
        return settings.api_token.get_secret_value()
    if settings.mode == Mode.PRODUCTION:
        raise ConfigurationError("FHIR_SERVER_API_TOKEN is required in production")
    path = settings.data_dir / API_TOKEN_FILE
    if not path.exists():
        create_secret_file(path, (secrets.token_urlsafe(32) + "\n").encode())
    return path.read_text(encoding="utf-8").strip()


def token_file(settings: Settings) -> Path | None:
    """Where the development token lives, when it is not configured."""
    return None if settings.api_token is not None else settings.data_dir / API_TOKEN_FILE


def _deliverer(settings: Settings, store: Store, engine: Engine, keys: KeyMaterial,
               auth_store: AuthStore, users: PrincipalLookup,
               account_store: AccountStore, dmp: DmpAdapter | None) -> Deliverer:
    if settings.broker:
        from workers.app import create_app

        return CeleryDeliverer(create_app(settings))
    consumers = ConsumerRegistry(parent=registry)
    for bound in (*engine_consumers(engine, settings), *mail_consumers(settings, keys=keys),
                  *subscription_consumers(engine, auth_store, users,
                                          policy=delivery_policy(settings)),
                  *notification_consumers(engine.ctx, account_store, settings, keys=keys),
                  *export_consumers(engine.ctx, dmp, ExportPolicy.from_settings(settings))):
        consumers.register(bound.name, bound.topic, bound.handler)
    return InProcessDeliverer(store, consumers)


def patient_access(engine: Engine) -> PatientAccess:
    """Whether a person may open a patient's record: the patient reads through their role
    policy (a launch, or the patient chosen in a standalone launch)."""

    async def may_read(principal: Principal, patient_id: str) -> bool:
        try:
            await engine.acting_as(Access(principal, scopes=None)).read("Patient", patient_id)
        except FhirError:
            return False
        return True

    return may_read


def _token_revoker(auth_store: AuthStore) -> Callable[[str], Awaitable[None]]:
    """What runs when an account is suspended, terminated or asks to be deleted: its tokens
    die at once (the gate would refuse them anyway, since it looks the account up)."""

    async def revoke(account_id: str) -> None:
        await auth_store.revoke_tokens_of_subject(account_id)

    return revoke


def pro_sante_connect(config: PscClientConfig | None) -> ProSanteConnect | None:
    """The Pro Santé Connect client of the configuration (None: PSC sign-in is not offered),
    with a shared HTTP client that ``ProSanteConnect.aclose`` closes."""
    if config is None:
        return None
    return ProSanteConnect(config, http=httpx.AsyncClient(timeout=config.timeout,
                                                          follow_redirects=False))


@dataclass
class Runtime:
    """Everything a running API process holds, started and stopped together."""

    settings: Settings
    store: Store
    engine: Engine
    dispatcher: OutboxDispatcher | None
    auth_store: AuthStore
    tokens: TokenService
    account_store: AccountStore
    accounts: AccountService
    authorization: AppAuthorization
    psc: ProSanteConnect | None = None
    dmp: DmpAdapter | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _sweeper: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, settings: Settings, *, keys: KeyMaterial | None = None,
                    hooks: Hooks | None = None, store: Store | None = None,
                    auth_store: AuthStore | None = None) -> Runtime:
        """Start everything; ``store`` and ``auth_store`` override the ones the settings name
        (tests use them)."""
        psc_config = PscClientConfig.from_settings(settings)
        keys = keys or load_keys(settings)
        store = store or open_store(settings)
        await store.start()
        auth_store = auth_store or open_auth_store(settings)
        account_store = open_account_store(settings)
        try:
            await auth_store.start()
            await account_store.start()
        except BaseException:
            await auth_store.close()
            await store.close()
            raise
        import_consumer_modules(consumer_modules_from_env())
        engine = build_engine(store, keys, settings, hooks)
        await install_guide(engine.ctx, load_guide())
        await engine.start()
        accounts = AccountService(
            store=account_store, directory=PractitionerDirectory(engine),
            mailer=mailer_for(store, settings, keys=keys), settings=settings,
            public_root=root_of(settings.base_url) if settings.base_url else None,
            on_disabled=_token_revoker(auth_store))
        dispatcher = None
        dmp = adapter_for(settings) if settings.outbox_dispatch and not settings.broker \
            else None
        if settings.outbox_dispatch:
            dispatcher = OutboxDispatcher(
                store, _deliverer(settings, store, engine, keys, auth_store, accounts,
                                  account_store, dmp),
                poll_seconds=settings.outbox_poll_seconds)
        tokens = TokenService(auth_store)
        authorization = AppAuthorization(
            store=auth_store, tokens=tokens, users=accounts,
            patient_access=patient_access(engine), signer=id_token_signer(settings),
            lifetimes=Lifetimes.from_settings(settings))
        runtime = cls(settings=settings, store=store, engine=engine, dispatcher=dispatcher,
                      auth_store=auth_store, tokens=tokens, account_store=account_store,
                      accounts=accounts, authorization=authorization,
                      psc=pro_sante_connect(psc_config), dmp=dmp)
        if dispatcher is not None:
            runtime._task = asyncio.create_task(dispatcher.run(runtime._stop))
        if settings.routing_sweep_seconds > 0:
            sweeper = RoutingSweeper(engine.ctx, Deadlines.from_settings(settings),
                                     period=settings.routing_sweep_seconds)
            runtime._sweeper = asyncio.create_task(sweeper.run(runtime._stop))
        return runtime

    async def stop(self) -> None:
        self._stop.set()
        for task in (self._task, self._sweeper):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(task, timeout=10)
        if self.psc is not None:
            await self.psc.aclose()
        if self.dmp is not None:
            await self.dmp.aclose()
        await self.account_store.close()
        await self.auth_store.close()
        await self.store.close()

    @property
    def users(self) -> AccountService:
        """The accounts, as the authorization server meets them (a ``UserDirectory``)."""
        return self.accounts
