"""The random pool: fresh bytes every time, and a forked child never reuses its parent's."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from fhir_server.crypto.random_pool import (
    RandomPool,
    random_bytes,
    random_uuid,
    time_ordered_uuid,
)


def test_slices_never_repeat_across_pages() -> None:
    pool = RandomPool()
    taken = [pool.take(12) for _ in range(2_000)]  # about six 4 KiB pages
    assert all(len(chunk) == 12 for chunk in taken)
    assert len(set(taken)) == len(taken)


def test_sizes_outside_a_page_are_refused() -> None:
    pool = RandomPool()
    with pytest.raises(ValueError):
        pool.take(0)
    with pytest.raises(ValueError):
        pool.take(4097)


def test_uuids_are_version_4_and_distinct() -> None:
    ids = {random_uuid() for _ in range(1_000)}
    assert len(ids) == 1_000
    assert all(value.version == 4 and value.variant == uuid.RFC_4122 for value in ids)


def test_time_ordered_uuids_carry_their_millisecond_version_7_and_the_rfc_variant() -> None:
    before = time.time_ns() // 1_000_000
    value = time_ordered_uuid()
    after = time.time_ns() // 1_000_000
    assert before <= value.int >> 80 <= after
    assert value.int >> 76 & 0xF == 7  # uuid.UUID.version only knows versions 1 to 5 in 3.11
    assert value.variant == uuid.RFC_4122
    assert str(value)[14] == "7"


def test_time_ordered_uuids_sort_by_their_millisecond_and_are_distinct_within_one() -> None:
    same_ms = {time_ordered_uuid(1_700_000_000_000) for _ in range(1_000)}
    assert len(same_ms) == 1_000
    assert all(value.int >> 80 == 1_700_000_000_000 for value in same_ms)
    later = time_ordered_uuid(1_700_000_000_001)
    assert all(str(value) < str(later) for value in same_ms)


def test_time_ordered_uuids_refuse_a_time_outside_48_bits() -> None:
    with pytest.raises(ValueError):
        time_ordered_uuid(1 << 48)
    with pytest.raises(ValueError):
        time_ordered_uuid(-1)


def test_a_forked_child_does_not_hand_out_the_parents_buffered_bytes() -> None:
    random_bytes(16)  # the parent's page is now buffered
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next bytes, then leave without cleanup
        os.close(read_end)
        os.write(write_end, random_bytes(32))
        os._exit(0)
    os.close(write_end)
    try:
        from_child = os.read(read_end, 32)
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    from_parent = random_bytes(32)
    assert len(from_child) == 32
    assert from_child != from_parent
