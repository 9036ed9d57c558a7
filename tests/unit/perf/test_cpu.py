"""The benchmark's CPU accounting from /proc: a process, its descendants, two samples apart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.perf.cpu import (
    descendants,
    parent_of,
    process_cpu_seconds,
    take_sample,
    usage_between,
)

pytestmark = pytest.mark.skipif(not Path("/proc/stat").exists(),
                                reason="CPU figures come from Linux /proc")

# A child that names itself with spaces and parentheses (the /proc/<pid>/stat trap); on a line
# from the test it starts a grandchild that burns BURN seconds of CPU, says so, then sleeps.
_BURNER = """
import sys, time
end = time.process_time() + float(sys.argv[1])
while time.process_time() < end:
    pass
print("burnt", flush=True)
time.sleep(60)
"""
_CHILD = """
import subprocess, sys, time
with open("/proc/self/comm", "w") as comm:
    comm.write("a) b (c")
print("ready", flush=True)
sys.stdin.readline()
burner = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]],
                          stdout=subprocess.PIPE, text=True)
print(burner.stdout.readline().strip(), flush=True)
time.sleep(60)
"""
BURN_SECONDS = 0.4


@contextmanager
def family() -> Iterator[subprocess.Popen[str]]:
    """The child (in a session of its own, so the test can end it with its grandchild)."""
    child = subprocess.Popen([sys.executable, "-c", _CHILD, _BURNER, str(BURN_SECONDS)],
                             text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             start_new_session=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        yield child
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def test_a_process_cpu_time_grows_as_it_works() -> None:
    before = process_cpu_seconds(os.getpid())
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    after = process_cpu_seconds(os.getpid())
    assert before is not None and after is not None
    assert after - before >= 0.1


def test_a_gone_process_has_no_cpu_time_and_no_sample() -> None:
    finished = subprocess.run([sys.executable, "-c", "pass"], check=True)
    assert finished.returncode == 0
    gone = max(int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()) + 10
    assert process_cpu_seconds(gone) is None
    assert take_sample(gone) is None


def test_a_name_with_spaces_and_parentheses_is_read_correctly() -> None:
    with family() as child:
        assert Path(f"/proc/{child.pid}/comm").read_text().strip() == "a) b (c"
        assert parent_of(child.pid) == os.getpid()
        assert process_cpu_seconds(child.pid) is not None


def test_a_grandchild_started_between_two_samples_counts_as_the_server_s() -> None:
    with family() as child:
        assert child.stdin is not None and child.stdout is not None
        before = take_sample(os.getpid())
        assert before is not None and child.pid in before.descendant_seconds
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "burnt"
        after = take_sample(os.getpid())
        assert after is not None
        grandchildren = descendants(child.pid)
    assert len(grandchildren) == 1
    [burner] = grandchildren
    assert burner not in before.descendant_seconds and burner in after.descendant_seconds
    usage = usage_between(before, after)
    assert usage.server_children_seconds >= BURN_SECONDS * 0.9
    assert usage.server_seconds < usage.server_children_seconds
    assert usage.elapsed_seconds >= BURN_SECONDS * 0.9
    assert usage.share(usage.server_children_seconds) > 0.3
    assert 0.0 <= usage.machine_idle_fraction <= 1.0
