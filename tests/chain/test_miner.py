"""The nonce search (fast loop against the clear rule) and the process miner."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelchain.chain.block import MAX_NONCE, NONCE_OFFSET, Header
from modelchain.chain.encoding import sha256d
from modelchain.chain.miner import (
    PREFIX_BYTES,
    MinedResult,
    Miner,
    is_valid_nonce,
    mine_header,
    search_nonces,
)
from modelchain.chain.pow import hash_meets_target

IMPOSSIBLE_TARGET = 0
"""No sha256d is all zero bytes: a job at this target runs until cancelled."""
EASY_TARGET = 2**250
"""About one nonce in 64 is valid."""


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{predicate.__name__} still false after {timeout} s")
        time.sleep(0.005)


def poll_until(miner: Miner, timeout: float = 10.0) -> MinedResult:
    result = miner.poll(timeout)
    assert result is not None, f"no result within {timeout} s"
    return result


def reference_search(
    prefix: bytes, target: int, start: int, stop: int, step: int = 1
) -> int | None:
    """The clear search: the first nonce of the range that `is_valid_nonce` accepts."""
    return next((n for n in range(start, stop, step) if is_valid_nonce(prefix, n, target)), None)


def make_header(target: int = EASY_TARGET, **overrides: object) -> Header:
    values: dict[str, object] = {
        "version": 1,
        "height": 7,
        "prev_hash": "ab" * 32,
        "merkle_root": "cd" * 32,
        "timestamp": 1_700_000_000,
        "target": target,
        "miner": "ef" * 32,
        "nonce": 0,
    }
    values.update(overrides)
    return Header(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def one_worker() -> Iterator[Miner]:
    with Miner(workers=1) as miner:
        yield miner


@pytest.fixture(scope="module")
def two_workers() -> Iterator[Miner]:
    with Miner(workers=2) as miner:
        yield miner


def idle_after_cancel(miner: Miner) -> Iterator[Miner]:
    """The shared miner with no job left over: hash counts move only for this test's jobs."""
    miner.cancel()
    wait_until(lambda: miner.idle)
    yield miner
    miner.cancel()


@pytest.fixture
def miner1(one_worker: Miner) -> Iterator[Miner]:
    yield from idle_after_cancel(one_worker)


@pytest.fixture
def miner2(two_workers: Miner) -> Iterator[Miner]:
    yield from idle_after_cancel(two_workers)


# --- the hot loop against the clear rule ---


def test_prefix_is_the_header_without_its_nonce() -> None:
    assert PREFIX_BYTES == NONCE_OFFSET == len(make_header().to_bytes()) - 8


@pytest.mark.parametrize(
    ("start", "stop", "step"),
    [
        (0, 400, 1),
        (2**16 - 150, 2**16 + 250, 1),  # crosses a 65536 boundary of the midstate
        (2**40 - 7, 2**40 + 900, 3),
        (MAX_NONCE - 300, MAX_NONCE + 1, 1),  # the very last nonces
        (5, 2000, 7),
    ],
)
def test_fast_search_agrees_with_reference_on_random_prefixes(
    start: int, stop: int, step: int
) -> None:
    rng = random.Random(f"{start}-{stop}-{step}")
    for _ in range(6):
        prefix = rng.randbytes(PREFIX_BYTES)
        target = rng.randrange(2**248, 2**251)
        expected = reference_search(prefix, target, start, stop, step)
        assert search_nonces(prefix, target, start, stop, step) == expected


@settings(max_examples=60, deadline=None)
@given(
    prefix=st.binary(min_size=PREFIX_BYTES, max_size=PREFIX_BYTES),
    target_bits=st.integers(min_value=244, max_value=256),
    start=st.integers(min_value=0, max_value=MAX_NONCE),
    length=st.integers(min_value=0, max_value=300),
    step=st.integers(min_value=1, max_value=70_000),
)
def test_fast_search_agrees_with_reference_everywhere(
    prefix: bytes, target_bits: int, start: int, length: int, step: int
) -> None:
    target = 2**target_bits - 1
    stop = min(start + length * step, MAX_NONCE + 1)
    assert search_nonces(prefix, target, start, stop, step) == reference_search(
        prefix, target, start, stop, step
    )


def test_fast_search_finds_nothing_when_no_nonce_in_range_is_valid() -> None:
    prefix = random.Random(1).randbytes(PREFIX_BYTES)
    target = 2**200  # one nonce in 2**56: none among 500
    assert reference_search(prefix, target, 1000, 1500) is None
    assert search_nonces(prefix, target, 1000, 1500) is None
    assert search_nonces(prefix, IMPOSSIBLE_TARGET, 0, 2000) is None
    assert search_nonces(prefix, 2**256 - 1, 1000, 1000) is None  # empty range


def test_hash_equal_to_target_is_valid_and_one_below_is_not() -> None:
    prefix = random.Random(2).randbytes(PREFIX_BYTES)
    nonce = 2**16 + 12_345
    exact = int.from_bytes(sha256d(prefix + nonce.to_bytes(8, "big")), "big")
    assert search_nonces(prefix, exact, nonce, nonce + 1) == nonce
    assert is_valid_nonce(prefix, nonce, exact)
    assert search_nonces(prefix, exact - 1, nonce, nonce + 1) is None
    assert not is_valid_nonce(prefix, nonce, exact - 1)


def test_search_rejects_a_prefix_of_the_wrong_length() -> None:
    with pytest.raises(ValueError):
        search_nonces(b"\x00" * (PREFIX_BYTES + 8), EASY_TARGET, 0, 10)


# --- mine_header ---


def test_mined_header_hash_meets_its_target() -> None:
    header = make_header(target=2**247)
    mined = mine_header(header)
    assert hash_meets_target(bytes.fromhex(mined.hash), header.target)
    assert mined == make_header(target=2**247, nonce=mined.nonce)


def test_mined_header_with_two_workers_meets_its_target(miner2: Miner) -> None:
    header = make_header(target=2**244, height=8)
    mined = mine_header(header, miner2, timeout=30)
    assert hash_meets_target(bytes.fromhex(mined.hash), header.target)


def test_mine_header_gives_up_after_its_timeout(miner1: Miner) -> None:
    header = make_header(target=IMPOSSIBLE_TARGET)
    with pytest.raises(TimeoutError):
        mine_header(header, timeout=0.05)
    with pytest.raises(TimeoutError):
        mine_header(header, miner1, timeout=0.05)
    wait_until(lambda: miner1.idle)  # the timed-out job was cancelled


# --- the process miner ---


def test_one_worker_finds_the_lowest_valid_nonce_from_the_start_nonce(miner1: Miner) -> None:
    header = make_header(target=2**249)
    prefix = header.to_bytes()[:PREFIX_BYTES]
    start = 2**16 - 40  # the sequence crosses a chunk and midstate boundary
    expected = reference_search(prefix, header.target, start, start + 10_000)
    assert expected is not None
    miner1.submit("deterministic", prefix, header.target, start_nonce=start)
    result = poll_until(miner1)
    assert (result.job_id, result.nonce) == ("deterministic", expected)
    assert result.hashes == expected - start + 1
    assert mine_header(header, miner1, start_nonce=start).nonce == expected
    assert mine_header(header, start_nonce=start).nonce == expected


def test_submit_returns_before_the_search_ends_and_cancel_stops_it(miner2: Miner) -> None:
    prefix = random.Random(3).randbytes(PREFIX_BYTES)
    before = miner2.total_hashes
    miner2.submit("endless", prefix, IMPOSSIBLE_TARGET)
    assert miner2.poll(0) is None
    wait_until(lambda: miner2.total_hashes > before and not miner2.idle)
    miner2.cancel()
    wait_until(lambda: miner2.idle)
    assert miner2.alive
    miner2.submit("after cancel", prefix, EASY_TARGET)
    result = poll_until(miner2)
    assert result.job_id == "after cancel"
    assert is_valid_nonce(prefix, result.nonce, EASY_TARGET)


def test_replaced_job_never_reports_its_result(miner1: Miner) -> None:
    prefix = random.Random(4).randbytes(PREFIX_BYTES)
    before = miner1.total_hashes
    miner1.submit("solved but replaced", prefix, 2**256 - 1)  # nonce 0 is valid
    wait_until(lambda: miner1.total_hashes > before and miner1.idle)  # its result is sent
    miner1.submit("endless", prefix, IMPOSSIBLE_TARGET)
    assert miner1.poll(0.3) is None
    miner1.submit("current", prefix, EASY_TARGET, start_nonce=1000)
    result = poll_until(miner1)
    assert result.job_id == "current"
    assert result.nonce == reference_search(prefix, EASY_TARGET, 1000, 100_000)


def test_cancelled_job_never_reports_its_result(miner1: Miner) -> None:
    prefix = random.Random(5).randbytes(PREFIX_BYTES)
    before = miner1.total_hashes
    miner1.submit("solved but cancelled", prefix, 2**256 - 1)
    wait_until(lambda: miner1.total_hashes > before and miner1.idle)
    miner1.cancel()
    assert miner1.poll(0.3) is None


def test_close_leaves_no_worker_process() -> None:
    miner = Miner(workers=2)
    pids = miner.pids
    assert len(pids) == 2
    miner.submit("endless", bytes(PREFIX_BYTES), IMPOSSIBLE_TARGET)
    wait_until(lambda: miner.total_hashes > 0)
    miner.close()
    assert not miner.alive
    assert not set(pids) & {child.pid for child in multiprocessing.active_children()}
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}")
    with pytest.raises(RuntimeError):
        miner.submit("late", bytes(PREFIX_BYTES), EASY_TARGET)
    miner.close()  # closing twice is harmless


WORKER_OF_A_KILLED_PARENT = """
import time
from modelchain.chain.miner import PREFIX_BYTES, Miner
miner = Miner(workers=1)
miner.submit("endless", bytes(PREFIX_BYTES), 0)
while miner.total_hashes == 0:
    time.sleep(0.01)
print(miner.pids[0], flush=True)
time.sleep(60)
"""


def is_running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_workers_exit_when_their_parent_is_killed() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", WORKER_OF_A_KILLED_PARENT], stdout=subprocess.PIPE, text=True
    )
    try:
        worker = int(parent.stdout.readline())  # type: ignore[union-attr]
        assert is_running(worker)
    finally:
        parent.kill()
        parent.wait()

    def killed_parents_worker_exited() -> bool:
        return not is_running(worker)

    try:
        wait_until(killed_parents_worker_exited)
    finally:
        if is_running(worker):
            os.kill(worker, signal.SIGKILL)  # an orphan must not outlive a failed test


def test_default_miner_has_one_worker_per_core() -> None:
    with Miner() as miner:
        assert miner.workers == (os.cpu_count() or 1)
