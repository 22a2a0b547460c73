"""Proof-of-work mining: search the header nonce in long-lived worker processes.

`search_nonces` is the hot loop (hash the fixed 148-byte header prefix once,
then one short sha256d per nonce), checked in tests against the clear
`is_valid_nonce`; `Miner` runs it on every core without ever blocking its caller.
"""

from __future__ import annotations

import functools
import hashlib
import multiprocessing
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from modelchain.chain.block import MAX_NONCE, NONCE_OFFSET, Header
from modelchain.chain.encoding import sha256d
from modelchain.chain.pow import hash_meets_target

PREFIX_BYTES = NONCE_OFFSET
"""A header without its nonce: the bytes a miner hashes once per job."""

CHUNK_NONCES = 1 << 16
"""Nonces a worker searches between checks for cancellation (tens of milliseconds)."""

PARENT_CHECK_SECONDS = 1.0
"""How often an idle worker wakes to see whether its parent still lives."""

_LOW_BITS = 16
_LOW_MASK = (1 << _LOW_BITS) - 1
_MAX_TARGET = 2**256 - 1
_NO_JOB = 0


def is_valid_nonce(prefix: bytes, nonce: int, target: int) -> bool:
    """The header `prefix + nonce` hashes (sha256d) to at most `target`: the clear rule."""
    return hash_meets_target(sha256d(prefix + nonce.to_bytes(8, "big")), target)


@functools.cache
def _low_nonce_bytes() -> tuple[bytes, ...]:
    """The last two nonce bytes for every value 0..65535, made once per process."""
    return tuple(low.to_bytes(2, "big") for low in range(1 << _LOW_BITS))


def search_nonces(prefix: bytes, target: int, start: int, stop: int, step: int = 1) -> int | None:
    """The first nonce of range(start, stop, step) valid for `prefix` and `target`, or None.

    Agrees with `is_valid_nonce` on every nonce (see tests/chain/test_miner.py)
    but does a third less work per nonce: sha256 of the prefix and of the first six
    nonce bytes is computed once per 65536 nonces and copied, the last two
    nonce bytes come from a table, and the 32-byte hash is compared with the
    target as big-endian bytes (the same order as comparing the integers).
    Raises ValueError for a prefix that is not PREFIX_BYTES long, a negative
    start or a step below 1.
    """
    if len(prefix) != PREFIX_BYTES:
        raise ValueError(f"a header prefix is {PREFIX_BYTES} bytes, got {len(prefix)}")
    if step < 1:
        raise ValueError(f"step must be at least 1, got {step}")
    if start < 0:
        raise ValueError(f"nonces start at 0, got {start}")
    if target < 0:
        return None
    target_bytes = min(target, _MAX_TARGET).to_bytes(32, "big")
    stop = min(stop, MAX_NONCE + 1)
    lows = _low_nonce_bytes()
    sha256 = hashlib.sha256
    base = sha256(prefix)
    nonce = start
    while nonce < stop:
        high = nonce >> _LOW_BITS
        high_start = high << _LOW_BITS
        segment_stop = min(stop, high_start + (1 << _LOW_BITS))
        midstate = base.copy()
        midstate.update(high.to_bytes(6, "big"))
        copy = midstate.copy
        for low in lows[nonce & _LOW_MASK : segment_stop - high_start : step]:
            h = copy()
            h.update(low)
            if sha256(h.digest()).digest() <= target_bytes:
                return high_start | int.from_bytes(low, "big")
        # the first nonce of the progression at or past this segment's end
        nonce += -(-(segment_stop - nonce) // step) * step
    return None


@dataclass(frozen=True, slots=True)
class MinedResult:
    """A nonce that meets the target of a submitted job."""

    job_id: Any
    """What the caller passed to `Miner.submit`."""
    nonce: int
    """The nonce found; the header with it hashes to at most the job's target."""
    hashes: int
    """Nonces tried for the job: exact with one worker (nonce - start_nonce + 1);
    with several, the finder's exact count plus the others' as of their last chunk."""


@dataclass(frozen=True, slots=True)
class _Job:
    seq: int
    job_id: Any
    prefix: bytes
    target: int
    start_nonce: int


@dataclass(frozen=True, slots=True)
class _Shared:
    """Memory the parent and every worker see; each slot of an array has one writer."""

    job_seq: Any
    """The current job's sequence number (parent writes); workers drop any other job."""
    found_seq: Any
    """The sequence number of the last job a worker solved (workers write)."""
    hashes_total: Any
    """Per worker: every hash ever tried, for the hash rate."""
    hashes_job: Any
    """Per worker: hashes tried on the job in `hashes_job_seq`."""
    hashes_job_seq: Any
    """Per worker: the sequence number of the last job it took."""
    active: Any
    """Per worker: the sequence number of the job it searches, or 0 when idle."""


def _worker_main(
    index: int, workers: int, chunk: int, jobs: Any, results: Any, shared: _Shared
) -> None:
    """One worker process: take jobs from `jobs` until None, search its share of chunks.

    Worker `index` of `workers` searches chunks index, index + workers, ... of
    `chunk` nonces each from the job's start nonce, so one worker searches
    strictly upward and finds the lowest valid nonce. Exits when its parent
    dies, so a killed node leaves no worker behind.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    parent = os.getppid()
    while True:
        try:
            job = jobs.get(timeout=PARENT_CHECK_SECONDS)
        except queue.Empty:
            if os.getppid() != parent:
                return
            continue
        if job is None:
            return
        shared.hashes_job[index] = 0
        shared.hashes_job_seq[index] = job.seq
        shared.active[index] = job.seq
        k = index
        while shared.job_seq.value == job.seq and shared.found_seq.value != job.seq:
            lo = job.start_nonce + k * chunk
            if lo > MAX_NONCE:
                break  # this worker's share of the nonce space is exhausted
            hi = min(lo + chunk, MAX_NONCE + 1)
            nonce = search_nonces(job.prefix, job.target, lo, hi)
            done = hi - lo if nonce is None else nonce - lo + 1
            shared.hashes_total[index] += done
            shared.hashes_job[index] += done
            if nonce is not None:
                shared.found_seq.value = job.seq
                results.put((job.seq, index, nonce, shared.hashes_job[index]))
                break
            if os.getppid() != parent:
                return
            k += workers
        shared.active[index] = _NO_JOB


class Miner:
    """Searches nonces in `workers` long-lived processes (default: one per core).

    `submit` hands a job to the workers and returns at once; `poll` returns
    the job's result when one is found. A new `submit` replaces the current
    job and `cancel` drops it; results of a replaced or cancelled job are never
    returned. Workers check for a new job every `chunk_nonces` nonces and wait
    without using CPU when there is none. Methods may be called from several
    threads. Use as a context manager, or call `close`.
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        start_method: str = "spawn",
        chunk_nonces: int = CHUNK_NONCES,
    ) -> None:
        count = (os.cpu_count() or 1) if workers is None else workers
        if count < 1:
            raise ValueError(f"a miner needs at least one worker, got {count}")
        if chunk_nonces < 1:
            raise ValueError(f"chunk_nonces must be at least 1, got {chunk_nonces}")
        # spawn (not fork): the parent may be a threaded web server
        ctx = multiprocessing.get_context(start_method)
        self._lock = threading.Lock()
        self._seq = _NO_JOB
        self._current: _Job | None = None
        self._closed = False
        self._shared = _Shared(
            job_seq=ctx.RawValue("Q", _NO_JOB),
            found_seq=ctx.RawValue("Q", _NO_JOB),
            hashes_total=ctx.RawArray("Q", count),
            hashes_job=ctx.RawArray("Q", count),
            hashes_job_seq=ctx.RawArray("Q", count),
            active=ctx.RawArray("Q", count),
        )
        self._results = ctx.Queue()
        self._jobs = [ctx.Queue() for _ in range(count)]
        self._processes = [
            ctx.Process(
                target=_worker_main,
                args=(index, count, chunk_nonces, self._jobs[index], self._results, self._shared),
                name=f"modelchain-miner-{index}",
                daemon=True,
            )
            for index in range(count)
        ]
        for process in self._processes:
            process.start()
        self._pids = tuple(process.pid for process in self._processes if process.pid)

    @property
    def workers(self) -> int:
        return len(self._processes)

    @property
    def total_hashes(self) -> int:
        """Hashes tried by all workers since start, updated once per chunk (for a rate)."""
        return sum(self._shared.hashes_total)

    @property
    def worker_hashes(self) -> tuple[int, ...]:
        """Hashes tried by each worker since start, updated once per chunk."""
        return tuple(self._shared.hashes_total)

    @property
    def idle(self) -> bool:
        """No worker is searching (a replaced or cancelled job ends within a chunk)."""
        return not any(self._shared.active)

    @property
    def alive(self) -> bool:
        """Every worker process is running (False once closed)."""
        return not self._closed and all(process.is_alive() for process in self._processes)

    @property
    def pids(self) -> tuple[int, ...]:
        """The workers' process ids (for tests and monitoring)."""
        return self._pids

    def submit(self, job_id: Any, prefix: bytes, target: int, start_nonce: int = 0) -> None:
        """Search `prefix` + nonce from `start_nonce` up for a hash at most `target`.

        Returns at once; replaces the current job. Raises ValueError for a
        prefix that is not PREFIX_BYTES long or a start outside 0..MAX_NONCE,
        and RuntimeError once closed.
        """
        if len(prefix) != PREFIX_BYTES:
            raise ValueError(f"a header prefix is {PREFIX_BYTES} bytes, got {len(prefix)}")
        if not 0 <= start_nonce <= MAX_NONCE:
            raise ValueError(f"start nonce {start_nonce} is outside 0..{MAX_NONCE}")
        with self._lock:
            if self._closed:
                raise RuntimeError("the miner is closed")
            self._seq += 1
            job = _Job(self._seq, job_id, bytes(prefix), target, start_nonce)
            self._current = job
            self._shared.job_seq.value = job.seq
            for jobs in self._jobs:
                jobs.put(job)  # a feeder thread writes it: put never blocks

    def cancel(self) -> None:
        """Drop the current job; workers stop it within a chunk and wait idle."""
        with self._lock:
            self._seq += 1
            self._current = None
            self._shared.job_seq.value = self._seq

    def poll(self, timeout: float = 0.0) -> MinedResult | None:
        """The current job's result, waiting at most `timeout` seconds; else None.

        A job's result is returned once; results of replaced or cancelled
        jobs are discarded.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                seq, finder, nonce, hashes = self._results.get(
                    timeout=max(0.0, deadline - time.monotonic())
                )
            except queue.Empty:
                return None
            with self._lock:
                job = self._current
                if job is None or job.seq != seq:
                    continue  # stale, or a second worker's find for a job already returned
                self._current = None
                others = sum(
                    self._shared.hashes_job[i]
                    for i in range(self.workers)
                    if i != finder and self._shared.hashes_job_seq[i] == seq
                )
            return MinedResult(job_id=job.job_id, nonce=nonce, hashes=hashes + others)

    def close(self, timeout: float = 5.0) -> None:
        """Stop every worker (terminating any that do not stop within `timeout`)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._seq += 1
            self._current = None
            self._shared.job_seq.value = self._seq
            for jobs in self._jobs:
                jobs.put(None)
        deadline = time.monotonic() + timeout
        for process in self._processes:
            process.join(max(0.0, deadline - time.monotonic()))
        terminated = False
        for process in self._processes:
            if process.is_alive():
                process.terminate()
                process.join()
                terminated = True
        for jobs in self._jobs:
            jobs.close()
            if terminated:
                jobs.cancel_join_thread()  # unread jobs of a killed worker may fill its pipe
            else:
                jobs.join_thread()
        self._results.close()
        for process in self._processes:
            process.close()

    def __enter__(self) -> Miner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def mine_header(
    header: Header,
    miner: Miner | None = None,
    *,
    start_nonce: int = 0,
    timeout: float | None = None,
) -> Header:
    """`header` with a nonce that meets its target, searched from `start_nonce` up.

    Without a miner the search runs in this process and finds the lowest such
    nonce (as does a one-worker miner). Raises TimeoutError when none is found
    within `timeout` seconds (None waits without limit); a miner's job is then
    cancelled; ValueError when no nonce up to MAX_NONCE is valid (in-process
    only). The miner must not be running another caller's job meanwhile.
    """
    prefix = header.to_bytes()[:PREFIX_BYTES]
    deadline = None if timeout is None else time.monotonic() + timeout
    if miner is None:
        lo = start_nonce
        while lo <= MAX_NONCE:
            hi = min(lo + CHUNK_NONCES, MAX_NONCE + 1)
            nonce = search_nonces(prefix, header.target, lo, hi)
            if nonce is not None:
                return replace(header, nonce=nonce)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"no nonce found in {timeout} s (searched {start_nonce}..{hi})")
            lo = hi
        raise ValueError(f"no nonce from {start_nonce} up meets the target")
    job_id = object()
    miner.submit(job_id, prefix, header.target, start_nonce)
    while True:
        wait = 1.0 if deadline is None else deadline - time.monotonic()
        if wait <= 0:
            miner.cancel()
            raise TimeoutError(f"no nonce found in {timeout} s")
        result = miner.poll(min(wait, 1.0))
        if result is not None and result.job_id == job_id:
            return replace(header, nonce=result.nonce)
