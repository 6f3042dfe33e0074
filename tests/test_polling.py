"""Waiting for the worker (spice/worker.py): polling only while a CPU is free, with real processes."""

import os
import socket
import subprocess
import sys
import time

import pytest

from circuitnn.spice import worker


@pytest.fixture
def every_cpu_busy():
    """As many CPU-bound processes as this machine has CPUs: with this test's own process, more
    runnable tasks than CPUs for as long as they run."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    time.sleep(0.5)  # started and on the run queue
    yield
    for burner in burners:
        burner.kill()
        burner.wait()


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def test_a_poller_without_a_cpu_check_polls_its_whole_spin(pair):
    started = time.perf_counter()
    worker.wait_readable(pair[0], 0.3)
    assert time.perf_counter() - started >= 0.3


def test_a_poller_stops_polling_when_no_cpu_is_free(pair, every_cpu_busy):
    cpus = len(os.sched_getaffinity(0))
    assert not worker.cpu_to_spare(cpus)
    started = time.perf_counter()
    worker.wait_readable(pair[0], 5.0, cpus)
    # It gives up at its first look (every SPARE_CHECK_S), not after the 5 s it was allowed.
    assert time.perf_counter() - started < 1.0


def test_the_kernels_count_of_runnable_tasks_is_read():
    # This process is running while it asks, so the count is at least 1 (an unreadable count
    # would answer True: poll as if there were no check).
    assert not worker.cpu_to_spare(0)
    assert worker.cpu_to_spare(10**6)


def test_a_message_ends_the_poll_and_arrives_whole(pair):
    ours, theirs = pair
    worker.send_message(theirs, ("answer", [1.5, 2.5]))
    started = time.perf_counter()
    assert worker.receive_message(ours, 5.0, 10**6) == ("answer", [1.5, 2.5])
    assert time.perf_counter() - started < 1.0
