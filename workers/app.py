"""The Celery app of the workers, built from Settings; ``celery -A workers.app worker`` runs it.

The worker reads the usual ``FHIR_SERVER_*`` variables (``FHIR_SERVER_BROKER`` is required,
``FHIR_SERVER_STORE`` names the store its tasks open, the encryption key opens it for the
``$reindex`` jobs) and imports the modules listed in ``FHIR_SERVER_CONSUMER_MODULES``
(comma-separated) so that their outbox consumers register.
The module attribute ``app`` is built on first access, so importing this module needs no broker.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from celery import Celery

from fhir_server.outbox.consumers import consumer_modules_from_env, import_consumer_modules
from fhir_server.runtime import worker_consumers
from fhir_server.settings import Settings
from workers.tasks import WorkerRuntime, register_tasks


def create_app(settings: Settings, *, consumer_modules: Sequence[str] = ()) -> Celery:
    """A Celery app on ``settings.broker`` with the outbox task registered.

    Tasks are JSON, acknowledged after they ran (and re-queued if the worker dies mid-task),
    one prefetched message at a time; results are not kept. Raises ValueError without a broker.
    """
    if not settings.broker:
        raise ValueError("the Celery workers need FHIR_SERVER_BROKER (e.g. redis://host:6379/0); "
                         "without a broker, `fhir-server serve` runs outbox events in-process")
    import_consumer_modules(consumer_modules)
    app = Celery("fhir_server_workers")
    app.conf.update(
        broker_url=settings.broker,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        enable_utc=True,
        timezone="UTC",
    )
    register_tasks(app, WorkerRuntime(settings, bound=worker_consumers(settings)))
    return app


@functools.cache
def default_app() -> Celery:
    """The app from the environment's settings and consumer modules (built once)."""
    return create_app(Settings(), consumer_modules=consumer_modules_from_env())


def __getattr__(name: str) -> Celery:
    if name == "app":
        return default_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
