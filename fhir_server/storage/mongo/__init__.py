"""The MongoDB storage adapter: resources with embedded search values, history and outbox."""

from fhir_server.storage.mongo.store import MongoStore

__all__ = ["MongoStore"]
