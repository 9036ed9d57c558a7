"""The consumer registry and the consumer-module list read from the environment."""

from __future__ import annotations

import pytest

from fhir_server.outbox.consumers import (
    ConsumerRegistry,
    consumer,
    consumer_modules_from_env,
)
from tests.unit.outbox.builders import Recorder


def test_consumers_for_a_topic_in_registration_order() -> None:
    consumers, first, second, other = ConsumerRegistry(), Recorder(), Recorder(), Recorder()
    consumers.register("first", "case.created", first)
    consumers.register("other", "report.requested", other)
    consumers.register("second", "case.created", second)

    assert [c.name for c in consumers.consumers_for("case.created")] == ["first", "second"]
    assert [c.handler for c in consumers.consumers_for("report.requested")] == [other]
    assert consumers.consumers_for("nobody.listens") == ()


def test_a_name_belongs_to_one_consumer() -> None:
    consumers, handler = ConsumerRegistry(), Recorder()
    consumers.register("report-pdf", "report.requested", handler)
    consumers.register("report-pdf", "report.requested", handler)
    assert len(consumers.consumers_for("report.requested")) == 1

    with pytest.raises(ValueError, match="report-pdf"):
        consumers.register("report-pdf", "report.requested", Recorder())
    with pytest.raises(ValueError, match="report-pdf"):
        consumers.register("report-pdf", "case.created", handler)
    with pytest.raises(ValueError):
        consumers.register("", "case.created", handler)


def test_decorator_registers_and_returns_the_handler() -> None:
    consumers, handler = ConsumerRegistry(), Recorder()
    decorated = consumer("notify", topic="case.created", into=consumers)(handler)
    assert decorated is handler
    assert [c.name for c in consumers.consumers_for("case.created")] == ["notify"]


def test_consumer_modules_are_a_comma_separated_list() -> None:
    env = {"FHIR_SERVER_CONSUMER_MODULES": " workflow.consumers, ,billing.consumers ,"}
    assert consumer_modules_from_env(env) == ("workflow.consumers", "billing.consumers")
    assert consumer_modules_from_env({}) == ()
