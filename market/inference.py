"""The inference engine: registered model versions run in worker processes under limits.

`InferenceService` resolves a model name to its registered version, checks an OIP request
against the registered signature before anything runs (`prepare`), and runs it (`run`) in a
pool of long-lived spawned workers: each caps its own address space, keeps an LRU of sessions
built only from bytes that re-hash to the registered sha256, and is killed and replaced when a
call crashes it or outlives the node's time limit, so a hostile model fails its own call and
the node serves on.
"""

from __future__ import annotations

import logging
import os
import pickle
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from modelchain.chain.keys import KeyPair, verify_signature
from modelchain.chain.node import ChainNode
from modelchain.contracts.registry import StorageReader, VersionInfo, get_model, get_version
from modelchain.contracts.registry import list_versions as registry_versions
from modelchain.market import gilheld
from modelchain.market.config import NodeConfig
from modelchain.market.receipts import ReceiptDraft
from modelchain.market.signer import GuardedKey, GuardedKeyUnavailable, send_key
from modelchain.market.tensors import (
    InferBadInput,
    InferBadRequest,
    InferDuplicateInput,
    InferenceError,
    InferMissingInput,
    InferUnknownInput,
    InferUnknownOutput,
    InferUnsupportedParameter,
    InferUnsupportedType,
    JsonInput,
    array_output_hash,
    bind_symbolic_dims,
    compute_request_hash,
    decode_input,
    decode_json_input,
    encode_output,
    hash_output_records,
    output_element_count,
    output_record_of_value,
)
from modelchain.models_store.signature import ModelSignature, OptionalType, TensorType, ValueInfo
from modelchain.models_store.store import ModelStore

log = logging.getLogger(__name__)

DEFAULT_QUEUE_SECONDS = 1.0
"""How long a call waits for a free inference slot before the node answers infer-busy."""
DEFAULT_MAX_SESSIONS = 16
"""Sessions one worker keeps warm."""
WORKER_START_SECONDS = 120.0
"""How long a fresh worker may take to import ONNX Runtime and report ready."""
WORKER_STOP_SECONDS = 5.0
"""How long close() waits for a worker to exit before it kills it."""
NOWAIT_BYTES = 1 << 16
"""Calls and replies up to this size go through a worker's socket with the GIL held."""
READ_BYTES = 1 << 22
"""The most of a larger reply read at once (each read allocates this much)."""
MAX_WAIT_SECONDS = 2_000_000.0
"""The longest wait for a reply poll(2) is asked for (its timeout is an int of ms)."""
PIPELINE_DEPTH = 2
"""Calls a worker holds at once: the one it runs and the next, already in its socket, so it
starts that one the moment it answers, not when its caller gets around to reading the reply
(on a busy node that wait, for the GIL, is longer than a small model's run). A call goes to
the worker holding the fewest, an idle one first: it waits behind a slow call only when
every worker is busy, and then behind at most PIPELINE_DEPTH - 1 calls."""
MAX_REQUEUES = 3
"""How often a call that was queued behind a call that lost its worker (a crash, a timeout)
goes to a fresh worker before it fails too. It was never answered, so nothing was charged
(the lost worker may have begun it in its last instant: a run has no effect but its reply)."""
SPAWN_RETRY_SECONDS = 1.0
"""How long after a worker failed to start calls try again to start one in its place
(meanwhile they go to the live workers)."""
MAX_CACHED_SIGNATURES = 1024
WORKER_BOOT = "from modelchain.market.inference import worker_entry; worker_entry()"
# One thread for every math library, and few malloc arenas: each thread's stack and arena
# counts against the worker's address-space limit, and a worker runs one call at a time.
WORKER_ENVIRONMENT = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MALLOC_ARENA_MAX": "2",
    "PYTHONDONTWRITEBYTECODE": "1",
}
# Parameters of the binary tensor and other extensions the node does not speak.
UNSUPPORTED_PARAMETERS = frozenset(
    {"shared_memory_region", "shared_memory_byte_size", "shared_memory_offset", "classification"}
)


# --- errors ------------------------------------------------------------------------------


class ModelUnknown(InferenceError):
    code = "model-unknown"
    http_status = 404


class ModelVersionUnknown(InferenceError):
    code = "model-version-unknown"
    http_status = 404


class ModelVersionDeprecated(InferenceError):
    """The version is deprecated: it can be described, not run; detail names its successor."""

    code = "model-version-deprecated"
    http_status = 410


class ModelSignatureInvalid(InferenceError):
    """The registration carries no usable io_signature, so inputs cannot be checked."""

    code = "model-signature-invalid"
    http_status = 422


class ModelSignatureMismatch(InferenceError):
    """The registered io_signature does not describe the file's inputs."""

    code = "model-signature-mismatch"
    http_status = 500


class ModelFileMissing(InferenceError):
    code = "model-file-missing"
    http_status = 503


class ModelFileCorrupt(InferenceError):
    """The stored bytes no longer hash to the registered sha256: never served."""

    code = "model-file-corrupt"
    http_status = 500


class ModelLoadFailed(InferenceError):
    code = "model-load-failed"
    http_status = 500


class InferBusy(InferenceError):
    code = "infer-busy"
    http_status = 503


class InferUnavailable(InferenceError):
    code = "infer-unavailable"
    http_status = 503


class InferTimeout(InferenceError):
    """The call ran past the node's time limit; its worker was killed and replaced."""

    code = "infer-timeout"
    http_status = 422


class InferOutOfMemory(InferenceError):
    """The call asked for more memory than a worker may have."""

    code = "infer-out-of-memory"
    http_status = 422


class InferOutputTooLarge(InferenceError):
    code = "infer-output-too-large"
    http_status = 422


class InferWorkerCrashed(InferenceError):
    """The worker died during the call (a crash in ONNX Runtime, a kill); it was replaced."""

    code = "infer-worker-crashed"
    http_status = 500


class InferInputRejected(InferenceError):
    """ONNX Runtime refused inputs that matched the registered signature."""

    code = "infer-input-rejected"


class InferFailed(InferenceError):
    """ONNX Runtime failed while running the model on these inputs."""

    code = "infer-failed"
    http_status = 422


# Codes a worker reports, and the error each becomes in the node.
class SealRejected(InferenceError):
    """The signature a paid call's seal asked the worker to check does not verify: the
    model was not run (payments turns it into its own payment error)."""

    code = "infer-seal-rejected"
    http_status = 402


_WORKER_ERRORS: dict[str, type[InferenceError]] = {
    cls.code: cls
    for cls in (
        SealRejected,
        ModelFileMissing,
        ModelFileCorrupt,
        ModelLoadFailed,
        ModelSignatureMismatch,
        InferOutOfMemory,
        InferInputRejected,
        InferFailed,
    )
}


# --- values ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PreparedCall:
    """An inference request checked against its version's signature, ready to run or pay."""

    model: str
    version: str
    sha256: str
    price: int
    """Base units for this call (0: free), from the version's current terms."""
    inputs: dict[str, np.ndarray | JsonInput]
    """Decoded inputs by name: arrays in the registered dtypes; maps and sequences as
    JsonInput."""
    outputs: tuple[str, ...]
    """The outputs to return, in the model's order."""
    request_hash: str
    """compute_request_hash(sha256, inputs): what a usage_fee payment binds."""
    request_id: str | None
    """The request's "id", echoed in the response."""
    parameters: dict[str, Any]
    """The request's "parameters", untouched (a payment rides there)."""
    binary_outputs: frozenset[str] = frozenset()
    """Outputs the client asked for in the binary tensor extension."""
    version_info: VersionInfo | None = field(default=None, compare=False)
    """The registered version the call was prepared for (split, registrant...)."""


class Seal(NamedTuple):
    """What a paid call asks of the worker process that runs it, besides the run: Ed25519
    work that would otherwise hold the node's GIL (bench/inference.py).

    The worker checks `check` before the run and refuses the call (SealRejected, nothing
    run) when it fails; after the run, when it can hash the outputs from the arrays alone,
    it signs the receipt drafted in `receipt` with the node's key, which it holds in
    guarded memory (market/signer.py). The worker is sent the check and the draft's
    message around the output hash (`worker_seal`), nothing else.
    """

    check: tuple[str, bytes, bytes] | None = None
    """(account, message, signature): a signature the call's payment rests on."""
    receipt: ReceiptDraft | None = None
    """The receipt to sign once the outputs are hashed."""


def worker_seal(seal: Seal | None) -> tuple[Any, tuple[bytes, bytes] | None] | None:
    """What of `seal` goes to the worker: the check, and the draft's head and tail."""
    if seal is None:
        return None
    draft = seal.receipt
    return seal.check, None if draft is None else (draft.head, draft.tail)


def seal_check_passes(seal: Seal | tuple[Any, Any] | None) -> bool:
    """True unless `seal` (or its worker_seal) holds a signature check that fails (what a
    worker runs first)."""
    return seal is None or seal[0] is None or verify_signature(*seal[0])


@dataclass(frozen=True, slots=True)
class CallResult:
    """What one run produced."""

    outputs: list[dict[str, Any]]
    """OIP output objects, in the model's order."""
    output_hash: str
    """compute_output_hash(outputs)."""
    elapsed_ms: int
    """Wall time of the run in the worker, round trip included, in milliseconds."""
    receipt: tuple[dict[str, Any], bytes] | None = None
    """The seal's receipt as the worker signed it, with its canonical JSON (None when the
    call had no receipt to seal, or the worker left it to the caller)."""


@dataclass(frozen=True, slots=True)
class InferenceStats:
    """Counters since the service started."""

    worker_calls: int
    """Calls sent to a worker (a refused request never gets here)."""
    sessions_created: int
    sessions_evicted: int
    worker_restarts: int
    """Workers replaced after a timeout, a crash or running out of memory."""
    in_flight: int
    """Calls holding an inference slot now."""
    in_workers: int = 0
    """Of those, calls sent to a worker and not yet answered, the ones running included."""
    queue_seconds: float = 0.0
    """Time calls waited for an inference slot and a place on a worker, summed."""
    checkout_seconds: float = 0.0
    """Time calls held a place on a worker, from taking it to giving it back, summed: the
    wait behind the call before it on that worker included."""
    worker_seconds: float = 0.0
    """Of checkout_seconds, the time the workers spent on the calls (signature check, run,
    receipt), as they measured it. The rest is waiting behind another call, the socket,
    pickling, and the calling thread waiting to get the GIL back after the reply came."""


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """What a worker process needs to start."""

    store_root: str
    memory_bytes: int
    """RLIMIT_AS of the worker."""
    max_sessions: int
    max_session_bytes: int
    """Model file bytes the worker's warm sessions may add up to (at least one is kept)."""
    intra_op_threads: int = 1


# --- the service ---------------------------------------------------------------------------


class InferenceService:
    """Resolves, checks and runs inference calls; thread-safe."""

    def __init__(
        self,
        models: ModelStore,
        config: NodeConfig,
        *,
        queue_seconds: float = DEFAULT_QUEUE_SECONDS,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        max_session_bytes: int | None = None,
        receipt_key: KeyPair | None = None,
    ) -> None:
        self.models = models
        self.config = config
        self.queue_seconds = queue_seconds
        self.settings = WorkerSettings(
            store_root=str(models.root),
            memory_bytes=config.inference_memory_bytes,
            max_sessions=max_sessions,
            max_session_bytes=(
                max_session_bytes
                if max_session_bytes is not None
                else config.inference_memory_bytes // 4
            ),
        )
        self._receipt_account = receipt_key.account if receipt_key is not None else None
        self._receipt_seed = receipt_key.seed if receipt_key is not None else None
        """Handed to each worker into guarded memory (market/signer.py), not in its settings."""
        self._slots = threading.BoundedSemaphore(max(1, config.max_concurrent_inferences))
        self._load: list[int] = []
        """Calls placed on each worker (by index in _workers), at most PIPELINE_DEPTH."""
        self._room = threading.Condition(threading.Lock())
        """Guards _load; a call waits on it while every worker holds PIPELINE_DEPTH calls."""
        self._next_place = 0
        """Where the search for the least loaded worker starts: ties are taken in turn."""
        self._spawn_retry_at = 0.0
        """When calls next try to replace a worker that could not be replaced (0: none)."""
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._spawn_lock = threading.Lock()
        """Held while a lost worker's replacement starts: it starts once, however many calls
        find the worker lost."""
        self._started = False
        self._closed = False
        self._signatures: dict[str, ModelSignature] = {}
        self._resolved: dict[tuple[str, str | None], tuple[str, VersionInfo]] = {}
        self._counts = {"calls": 0, "created": 0, "evicted": 0, "restarts": 0, "in_flight": 0}
        self._seconds = {"queue": 0.0, "checkout": 0.0, "worker": 0.0}

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Starts the worker processes (they load ONNX Runtime in the background)."""
        with self._lock:
            if self._closed:
                raise InferUnavailable("the inference service is closed")
            if self._started:
                return
            workers: list[_Worker] = []
            try:
                for _ in range(max(1, self.config.inference_workers)):
                    workers.append(_Worker.spawn(self.settings, self._receipt_seed))
            except OSError as exc:  # all or none: a later start() tries again from scratch
                for worker in workers:
                    worker.end()
                raise InferUnavailable(f"no inference worker could be started: {exc}") from exc
            self._workers = workers
            self._load = [0] * len(workers)
            self._started = True

    def close(self) -> None:
        """Stops every worker once it has answered the calls it holds; a worker still busy
        after WORKER_STOP_SECONDS is killed, and the calls it had not answered fail, as
        every later call does, with infer-unavailable."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            workers = list(self._workers)
        for worker in workers:
            worker.ask_to_stop()
        deadline = time.monotonic() + WORKER_STOP_SECONDS
        for worker in workers:
            worker.end(deadline)

    def worker_pids(self) -> list[int]:
        """The pids of the current workers (for operators and tests)."""
        with self._lock:
            return [worker.pid for worker in self._workers]

    def stats(self) -> InferenceStats:
        with self._lock:
            counts = dict(self._counts)
            seconds = dict(self._seconds)
            workers = list(self._workers)
        return InferenceStats(
            worker_calls=counts["calls"],
            sessions_created=counts["created"],
            sessions_evicted=counts["evicted"],
            worker_restarts=counts["restarts"],
            in_flight=counts["in_flight"],
            in_workers=sum(worker.holding for worker in workers),
            queue_seconds=seconds["queue"],
            checkout_seconds=seconds["checkout"],
            worker_seconds=seconds["worker"],
        )

    # --- resolving -----------------------------------------------------------------------

    def resolve(
        self, reader: StorageReader, name: str, version: str | None, *, runnable: bool = True
    ) -> VersionInfo:
        """The registered version `name@version`, or without a version the newest one that is
        not deprecated. Raises ModelUnknown, ModelVersionUnknown, and, when `runnable` (the
        default: the version is to be run), ModelVersionDeprecated naming the successor; with
        runnable=False a deprecated version is returned to be described.
        """
        model = get_model(reader, name)
        if model is None:
            raise ModelUnknown(f"no model named {name!r} is registered", model=name)
        if version is not None:
            info = get_version(reader, name, version)
            if info is None:
                raise ModelVersionUnknown(
                    f"{name} has no version {version!r}", model=name, version=version
                )
        else:
            versions = registry_versions(reader, name)
            infos = [get_version(reader, name, item) for item in reversed(versions)]
            live = [info for info in infos if info is not None and not info.deprecated]
            newest = next((info for info in infos if info is not None), None)
            if newest is None:
                raise ModelVersionUnknown(f"{name} has no versions", model=name)
            info = live[0] if live else newest
        if runnable:
            validate_runnable(info)
        return info

    def resolve_at_tip(
        self, chain: ChainNode, name: str, version: str | None, *, runnable: bool = True
    ) -> VersionInfo:
        """resolve() on the chain's tip state, remembered until the tip changes (a reorg
        too), so a busy node does not query the registry and take the chain lock per call."""
        key = (name, version)
        remembered = self._resolved.get(key)
        if remembered is not None and remembered[0] == chain.tip.hash:
            info = remembered[1]
        else:
            with chain.lock:  # one consistent state while a block may be connecting
                tip = chain.tip.hash
                info = self.resolve(chain.store, name, version, runnable=False)
            if len(self._resolved) >= MAX_CACHED_SIGNATURES:
                self._resolved.clear()
            self._resolved[key] = (tip, info)
        if runnable:
            validate_runnable(info)
        return info

    def signature_of(self, info: VersionInfo) -> ModelSignature:
        """The registered io_signature of a version; ModelSignatureInvalid if it has none."""
        signature = self._signatures.get(info.sha256)
        if signature is not None:
            return signature
        raw = info.metadata.get("io_signature") if isinstance(info.metadata, dict) else None
        try:
            if not raw:
                raise ValueError("the registration has no io_signature")
            signature = ModelSignature.from_json(raw)
        except (ValueError, TypeError) as err:
            raise ModelSignatureInvalid(
                f"{info.ref} cannot be served: its io_signature is unusable ({err})"
            ) from None
        if len(self._signatures) >= MAX_CACHED_SIGNATURES:
            self._signatures.clear()
        self._signatures[info.sha256] = signature
        return signature

    def require_file(self, info: VersionInfo) -> None:
        """Raises ModelFileMissing unless this node holds the version's file."""
        if not self.models.has(info.sha256):
            raise ModelFileMissing(
                f"this node does not hold the file of {info.ref} (sha256 {info.sha256})",
                sha256=info.sha256,
            )

    # --- preparing -----------------------------------------------------------------------

    def prepare(self, version_info: VersionInfo, body: Any, binary: bytes = b"") -> PreparedCall:
        """The OIP request `body` checked against the version's signature and decoded.

        `binary` is the part of the request after the JSON header in the binary tensor
        extension. Nothing runs and nothing is charged here; every failure is a 4xx
        InferenceError (or ModelSignatureInvalid / ModelFileMissing for the version itself).
        """
        if not isinstance(body, dict):
            raise InferBadRequest("the request body must be a JSON object")
        signature = self.signature_of(version_info)
        request_id = body.get("id")
        if request_id is not None and not isinstance(request_id, str):
            raise InferBadRequest("id must be a string")
        parameters = body.get("parameters", {})
        if not isinstance(parameters, dict):
            raise InferBadRequest("parameters must be an object")
        inputs = self._decode_inputs(signature, body.get("inputs"), binary)
        outputs, binary_outputs = _requested_outputs(signature, body.get("outputs"), parameters)
        self.require_file(version_info)
        return PreparedCall(
            model=version_info.name,
            version=version_info.version,
            sha256=version_info.sha256,
            price=version_info.price,
            inputs=inputs,
            outputs=outputs,
            request_hash=compute_request_hash(version_info.sha256, inputs),
            request_id=request_id,
            parameters=parameters,
            binary_outputs=binary_outputs,
            version_info=version_info,
        )

    def _decode_inputs(
        self, signature: ModelSignature, items: Any, binary: bytes
    ) -> dict[str, np.ndarray | JsonInput]:
        if not isinstance(items, list):
            raise InferBadRequest("inputs must be a list of input objects")
        registered = {value.name: value for value in signature.inputs}
        arrays: dict[str, np.ndarray | JsonInput] = {}
        bound: dict[str, tuple[str, int]] = {}
        offset = 0
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise InferBadInput("each input must be an object with a string name")
            name = item["name"]
            if name not in registered:
                raise InferUnknownInput(
                    f"the model has no input {name!r} (it takes {sorted(registered)})",
                    inputs=sorted(registered),
                )
            if name in arrays:
                raise InferDuplicateInput(f"input {name!r} is given twice")
            raw, offset = _binary_part(name, item.get("parameters"), binary, offset)
            tensor = _tensor_type(registered[name])
            if tensor is None:
                if raw is not None:
                    raise InferBadInput(f"input {name!r} is a JSON value: it has no binary form")
                arrays[name] = decode_json_input(
                    item, registered[name].type, self.config.max_tensor_elements
                )
                continue
            array = decode_input(item, tensor, self.config.max_tensor_elements, raw)
            bind_symbolic_dims(bound, name, array.shape, tensor.shape)
            arrays[name] = array
        if offset != len(binary):
            raise InferBadRequest(
                f"{len(binary) - offset} bytes of binary data follow the inputs unclaimed"
            )
        missing = [
            value.name
            for value in signature.inputs
            if value.name not in arrays and not isinstance(value.type, OptionalType)
        ]
        if missing:
            raise InferMissingInput(f"inputs {missing} are missing", missing=missing)
        return arrays

    # --- running -------------------------------------------------------------------------

    def run(self, prepared: PreparedCall, seal: Seal | None = None) -> CallResult:
        """Runs a prepared call in a worker; returns its outputs and their hash (and the
        seal's receipt, signed in the worker).

        Raises InferBusy when every slot stays taken for queue_seconds, InferTimeout,
        InferOutOfMemory, InferWorkerCrashed (the worker is replaced each time),
        ModelFileCorrupt, InferOutputTooLarge, InferFailed, InferInputRejected, and
        SealRejected when the seal's signature check fails (nothing run).
        """
        self.start()
        queued = time.perf_counter()
        if not self._slots.acquire(blocking=False):
            if seal is not None and seal.check is not None:
                # it would wait: check the payment first, so a forged one neither holds
                # a place in the queue nor hears "busy" instead of "bad signature"
                if not seal_check_passes(seal):
                    raise SealRejected("the payment's signature fails")
                seal = seal._replace(check=None)
            if not self._slots.acquire(timeout=self.queue_seconds):
                raise InferBusy(
                    f"all {self.config.max_concurrent_inferences} inference slots are busy; retry"
                )
        self._count("in_flight", 1)
        try:
            reply, elapsed = self._dispatch(prepared, seal, queued)
        finally:
            self._count("in_flight", -1)
            self._slots.release()
        results, created, evicted, sealed = reply
        draft = seal.receipt if seal is not None else None
        if sealed is not None and draft is not None:
            if draft.receipt["node"] == self._receipt_account:
                # The worker hashed these very arrays (array_output_hash: the tests pin it to
                # the hash of their encoding for every datatype), so they are not hashed
                # twice. A worker could as well lie about the outputs: it is trusted anyway.
                output_hash, sig = sealed
                result = self._result(prepared, results, elapsed, output_hash)
                receipt = draft.signed(output_hash, sig)
                return CallResult(result.outputs, output_hash, result.elapsed_ms, receipt)
            log.error("a worker signed a receipt drafted for another node; signing here")
        return self._result(prepared, results, elapsed)

    def _dispatch(
        self, prepared: PreparedCall, seal: Seal | None, queued: float
    ) -> tuple[Any, float]:
        """Runs the call on a worker with room for it: (results, session created, sessions
        evicted, (output hash, receipt signature) or None) and the seconds from the worker
        starting it to the reply."""
        if self._spawn_retry_at and time.monotonic() >= self._spawn_retry_at:
            self._replace_lost_workers()
        index = self._take_place()
        checked_out = time.perf_counter()
        counts: dict[str, int] = {}
        worker_seconds = 0.0
        try:
            if self._closed:
                raise InferUnavailable("the inference service is closed")
            counts["calls"] = 1
            message = (
                prepared.sha256,
                self._expected_inputs(prepared),
                prepared.outputs,
                {
                    name: value.value if isinstance(value, JsonInput) else value
                    for name, value in prepared.inputs.items()
                },
                worker_seal(seal),
            )
            reply, elapsed = self._call(index, message)
            status, *rest = reply
            if status == "ok":
                results, created, evicted, sealed, worker_seconds = rest
                counts |= {"created": int(created), "evicted": evicted}
                return (results, created, evicted, sealed), elapsed
            code, text, _ = rest
            raise _WORKER_ERRORS.get(code, InferFailed)(text)
        finally:
            returned = time.perf_counter()
            self._give_place(index)
            with self._lock:
                for key, delta in counts.items():
                    self._counts[key] += delta
                self._seconds["queue"] += checked_out - queued
                self._seconds["checkout"] += returned - checked_out
                self._seconds["worker"] += worker_seconds

    def _take_place(self) -> int:
        """The index of a worker with room (fewer than PIPELINE_DEPTH calls): a live worker
        before a lost one, then the one holding the fewest, ties taken in turn. The call is
        counted on it until _give_place."""
        workers = self._workers
        count = len(self._load)
        with self._room:
            while True:
                best, best_key = -1, (True, PIPELINE_DEPTH)
                for step in range(count):
                    index = (self._next_place + step) % count
                    key = (workers[index].lost, self._load[index])
                    if key[1] < PIPELINE_DEPTH and (best < 0 or key < best_key):
                        best, best_key = index, key
                if best >= 0:
                    break
                self._room.wait()
            self._next_place = best + 1
            self._load[best] += 1
            return best

    def _give_place(self, index: int) -> None:
        with self._room:
            self._load[index] -= 1
            self._room.notify()

    def _call(self, index: int, message: Any) -> tuple[Any, float]:
        """The reply of the worker at `index` to `message`, and the seconds it took from when
        the worker started it. A call that never reached the worker (it was gone before the
        call was sent, or was lost with the call still queued behind another) goes to its
        successor, up to MAX_REQUEUES times; a call lost once started fails."""
        worker = self._workers[index]
        requeued = 0
        while True:
            try:
                reply = worker.call(message, self.config.inference_seconds)
            except _WorkerLost as lost:
                if self._closed:
                    raise InferUnavailable("the inference service is closed") from None
                if not lost.requeue:
                    self._start_successor(index)
                    raise lost.error from None
                if requeued == MAX_REQUEUES:
                    raise InferWorkerCrashed(
                        f"the call was queued on {requeued + 1} workers in turn, and each was"
                        " lost before it started"
                    ) from None
                requeued += 1
                worker = self._successor(index)
                continue
            if worker.lost:  # it answered, and retired ("replace me"): its successor starts
                self._start_successor(index)
            return reply

    def _replace_lost_workers(self) -> None:
        """Tries again to start the workers that could not be replaced."""
        self._spawn_retry_at = 0.0
        for index in range(len(self._workers)):
            if self._workers[index].lost:
                self._start_successor(index)

    def _start_successor(self, index: int) -> None:
        """Replaces the lost worker at `index` now, so the next call finds it starting; the
        call that lost it hears of its own failure, not of a failed start (logged)."""
        if self._closed:
            return
        try:
            self._successor(index)
        except InferUnavailable:
            log.exception("the inference worker at %d could not be replaced", index)

    def _successor(self, index: int) -> _Worker:
        """The worker at `index`, replaced now if it is lost (once, however many calls find
        it lost); raises InferUnavailable when none can start (the lost one then stays in
        its place: calling it fails, and asks for a successor again)."""
        with self._spawn_lock:
            lost = self._workers[index]
            if not lost.lost:
                return lost
            if self._closed:
                raise InferUnavailable("the inference service is closed")
            try:
                fresh = _Worker.spawn(self.settings, self._receipt_seed)
            except OSError as exc:
                self._spawn_retry_at = time.monotonic() + SPAWN_RETRY_SECONDS
                raise InferUnavailable(f"no inference worker could be started: {exc}") from exc
            with self._lock:
                closed = self._closed
                if not closed:
                    self._workers[index] = fresh
                    self._counts["restarts"] += 1
            if closed:  # close() has stopped the workers it found: this one served nothing
                fresh.end()
                raise InferUnavailable("the inference service is closed")
        log.warning("inference worker %d replaced by %d", lost.pid, fresh.pid)
        return fresh

    def _expected_inputs(self, prepared: PreparedCall) -> tuple[tuple[str, str | None], ...]:
        info = prepared.version_info
        if info is None:
            return ()
        signature = self.signature_of(info)
        return tuple(
            (value.name, value.type.elem_type if isinstance(value.type, TensorType) else None)
            for value in signature.inputs
        )

    def _result(
        self,
        prepared: PreparedCall,
        results: Mapping[str, Any],
        elapsed: float,
        output_hash: str | None = None,
    ) -> CallResult:
        """The call's OIP outputs and their hash (`output_hash`, when the worker gave it)."""
        outputs: list[dict[str, Any]] = []
        records: list[tuple[str, bytes]] = []
        limit = self.config.max_tensor_elements
        for name in prepared.outputs:
            value = results[name]
            count = output_element_count(value)
            if count > limit:
                raise InferOutputTooLarge(
                    f"output {name!r} has {count} elements, over the node's limit of {limit}",
                    limit=limit,
                )
            encoded = encode_output(name, value)
            outputs.append(encoded)
            if output_hash is None:
                records.append((name, output_record_of_value(name, value, encoded)))
        return CallResult(
            outputs=outputs,
            output_hash=output_hash or hash_output_records(records),
            elapsed_ms=int(elapsed * 1000),
        )

    def _count(self, key: str, delta: int) -> None:
        with self._lock:
            self._counts[key] += delta


def validate_runnable(info: VersionInfo) -> None:
    """Raises ModelVersionDeprecated (naming the successor, if any) for a deprecated version:
    it can be described, not run."""
    if info.deprecated:
        successor = info.successor
        advice = f"; use {info.name}@{successor}" if successor else ""
        raise ModelVersionDeprecated(
            f"{info.ref} is deprecated{advice}",
            model=info.name,
            version=info.version,
            successor=successor,
        )


def _tensor_type(value: ValueInfo) -> TensorType | None:
    """The tensor type of a (possibly optional) tensor input; None for a map or sequence."""
    kind = value.type.elem if isinstance(value.type, OptionalType) else value.type
    return kind if isinstance(kind, TensorType) else None


def _binary_part(
    name: str, parameters: Any, binary: bytes, offset: int
) -> tuple[bytes | None, int]:
    """The input's bytes in the binary tensor extension (None if its data is in JSON)."""
    if parameters is None:
        return None, offset
    if not isinstance(parameters, dict):
        raise InferBadInput(f"input {name!r}: parameters must be an object")
    unsupported = sorted(UNSUPPORTED_PARAMETERS & set(parameters))
    if unsupported:
        raise InferUnsupportedParameter(f"input {name!r}: this node does not support {unsupported}")
    if "binary_data_size" not in parameters:
        return None, offset
    size = parameters["binary_data_size"]
    if type(size) is not int or size < 0:
        raise InferBadInput(f"input {name!r}: binary_data_size must be an integer >= 0")
    if offset + size > len(binary):
        raise InferBadInput(
            f"input {name!r} claims {size} binary bytes; only {len(binary) - offset} remain"
        )
    return binary[offset : offset + size], offset + size


def _requested_outputs(
    signature: ModelSignature, requested: Any, parameters: dict[str, Any]
) -> tuple[tuple[str, ...], frozenset[str]]:
    """The outputs to return, in the model's order, and which of them go binary."""
    tensors = {value.name for value in signature.outputs if isinstance(value.type, TensorType)}
    default_binary = parameters.get("binary_data_output", False)
    if not isinstance(default_binary, bool):
        raise InferBadRequest("parameters.binary_data_output must be true or false")
    order = [value.name for value in signature.outputs]
    if requested is None:
        names = set(order)
        binary = {name for name in names if default_binary}
    else:
        if not isinstance(requested, list):
            raise InferBadRequest("outputs must be a list of {name} objects")
        names, binary = set(), set()
        for item in requested:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise InferBadRequest("each requested output must be an object with a name")
            name = item["name"]
            if name not in order:
                raise InferUnknownOutput(
                    f"the model has no output {name!r} (it has {order})", outputs=order
                )
            if name in names:
                raise InferBadRequest(f"output {name!r} is requested twice")
            options = item.get("parameters", {})
            if not isinstance(options, dict):
                raise InferBadRequest(f"output {name!r}: parameters must be an object")
            unsupported = sorted(UNSUPPORTED_PARAMETERS & set(options))
            if unsupported:
                raise InferUnsupportedParameter(
                    f"output {name!r}: this node does not support {unsupported}"
                )
            wants_binary = options.get("binary_data", default_binary)
            if not isinstance(wants_binary, bool):
                raise InferBadRequest(f"output {name!r}: binary_data must be true or false")
            names.add(name)
            if wants_binary:
                binary.add(name)
    # Non-tensor outputs have no binary form: they stay JSON whatever was asked.
    return tuple(name for name in order if name in names), frozenset(binary & tensors)


# --- worker processes ----------------------------------------------------------------------


def _asks_replacement(reply: tuple[Any, ...]) -> bool:
    """A worker's reply saying it must not take another call (it exits after sending it)."""
    return reply[0] == "error" and bool(reply[3])


class _WorkerLost(Exception):
    """The worker ended or was killed during a call; carries the error to raise."""

    def __init__(self, error: InferenceError, *, requeue: bool = False) -> None:
        super().__init__(error.message)
        self.error = error
        self.requeue = requeue
        """True when the worker never answered the call (it was not sent whole, or was
        queued behind the call that lost the worker): it may go to another one."""


class _Queued:
    """A call on a worker. The worker runs its calls in the order they came; only the call it
    runs, the head of the queue, reads the socket. A call behind it waits on `turn` until the
    call before it has its reply (then it is the head), or until the worker is lost
    (`requeue`: it never started)."""

    __slots__ = ("turn", "sent", "sent_at", "started", "given", "requeue", "abandoned")

    def __init__(self) -> None:
        self.turn = threading.Lock()
        self.turn.acquire()
        self.sent = False
        """The whole call went into the socket."""
        self.sent_at = 0.0
        self.started = 0.0
        """When the call before it got its reply (or the worker became ready)."""
        self.given = False
        """It has the turn: it is the head."""
        self.requeue = False
        self.abandoned = False
        """Its caller left before its turn came: no one will read its reply."""


class _Worker:
    """One worker process and the parent's end of its socket.

    A worker is a fresh interpreter (`python -P -c ...`), not a fork: it shares nothing with
    the node's threads and does not import the node's main module, only this one. It runs one
    call at a time, but holds more: a call is sent as soon as it comes, and waits in the
    socket behind the ones before it (InferenceService gives each worker at most
    PIPELINE_DEPTH). Once lost (crashed, timed out, retired, stopped) a worker takes no call.
    """

    def __init__(self, process: subprocess.Popen[bytes], conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.fd = conn.fileno()
        self._poller = select.poll()
        self._poller.register(self.fd, select.POLLIN)
        self.ready = False
        self.lost = False
        self._stopping = False
        self._queue: deque[_Queued] = deque()
        self._lock = threading.Lock()
        """Guards the queue and the flags; the socket closes under it once the worker is lost
        and no call is left on it (so no call ever uses a closed or reused fd)."""
        self._send_lock = threading.Lock()
        """One call at a time goes into the socket, in the queue's order."""

    @classmethod
    def spawn(cls, settings: WorkerSettings, receipt_seed: bytes | None = None) -> _Worker:
        """Start a worker; with `receipt_seed`, hand it the node's receipt key over a socket
        of its own, which it reads into guarded memory (market/signer.py)."""
        parent_end, child_end = socket.socketpair()
        key_parent, key_child = socket.socketpair() if receipt_seed else (None, None)
        with parent_end, child_end:
            fds = [child_end.fileno()] + ([key_child.fileno()] if key_child else [])
            try:
                process = subprocess.Popen(
                    [sys.executable, "-P", "-c", WORKER_BOOT, *map(str, fds)],
                    pass_fds=fds,
                    stdin=subprocess.DEVNULL,
                    env={**os.environ, **WORKER_ENVIRONMENT},
                )
                if key_parent is not None and receipt_seed is not None:
                    send_key(key_parent, receipt_seed)
            finally:
                for end in (key_parent, key_child):
                    if end is not None:
                        end.close()
            conn = Connection(parent_end.detach())
        conn.send(settings)
        return cls(process, conn)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def holding(self) -> int:
        """Calls queued on the worker now (their sending included) and not answered."""
        return len(self._queue)

    def call(self, message: Any, seconds: float) -> tuple[Any, float]:
        """Queues one call, waits for its turn, then up to `seconds` from its start for its
        reply; returns the reply and the seconds from its start. Raises _WorkerLost.

        Only waits let the GIL go. The call goes out and the reply comes in with the GIL
        held wherever the socket takes or holds them at once (market/gilheld.py): on a busy
        node each system call that lets the GIL go costs the caller a wait to get it back.
        A worker that died while idle (the system's OOM killer, say) is found when the call
        cannot be sent to it.
        """
        data = ForkingPickler.dumps(message)
        frame = struct.pack("!i", len(data)) + bytes(data) if len(data) <= NOWAIT_BYTES else None
        queued = _Queued()
        try:
            with self._send_lock:
                with self._lock:
                    if self.lost or self._stopping:
                        queued.requeue = True
                    else:
                        queued.given = not self._queue
                        self._queue.append(queued)
                if not queued.requeue:
                    queued.sent = self._send(frame, data)
                    queued.sent_at = time.perf_counter()
            if not queued.given and not queued.requeue:
                queued.turn.acquire()  # released by the call before it, or by _lose
        except BaseException:  # it leaves the queue in order, or the worker goes with it
            self._abandon(queued)
            raise
        if queued.requeue:
            raise _WorkerLost(
                InferWorkerCrashed("the inference worker was lost before it answered the call"),
                requeue=True,
            )
        return self._receive(queued, seconds)

    def _send(self, frame: bytes | None, data: bytes) -> bool:
        """Sends the call: `frame` (the one Connection.send makes: length, pickle) with the
        GIL held as far as the socket takes it, or `data` through Connection.send_bytes;
        False when the worker is gone (a call not wholly sent never starts)."""
        try:
            if frame is not None:
                sent = gilheld.send_nowait(self.fd, frame)
                self._send_all(memoryview(frame)[sent:])
            else:
                self.conn.send_bytes(data)
        except Exception:  # EPIPE above all; any failure leaves the stream unusable
            return False
        return True

    def _receive(self, queued: _Queued, seconds: float) -> tuple[Any, float]:
        """The head's part: read the reply, then hand the turn to the call behind it. On any
        failure the worker is lost: this call fails (or goes to the successor, if it never
        reached the worker) and every call behind it goes to the successor."""
        try:
            if not queued.sent:
                raise _WorkerLost(
                    InferWorkerCrashed(self._describe_end("before the call")), requeue=True
                )
            if not self.ready:
                self._wait_ready()
                queued.started = time.perf_counter()
            started = max(queued.started, queued.sent_at)
            wait = started + seconds - time.perf_counter()
            if not self._poller.poll(min(max(wait, 0.0), MAX_WAIT_SECONDS) * 1000):
                self.process.kill()
                raise _WorkerLost(
                    InferTimeout(f"the model ran past the node's {seconds:g} s limit")
                )
            reply = self._read_reply()
        except BaseException:
            self._lose()
            raise
        received = time.perf_counter()
        if _asks_replacement(reply):
            self._lose()
            return reply, received - started
        with self._lock:
            self._queue.popleft()
            following = self._queue[0] if self._queue else None
            if following is None:
                self._close_if_done()
            elif not following.abandoned:
                following.started = received
                following.given = True
                following.turn.release()
                following = None
        if following is not None:  # no one reads the next reply: the stream is lost
            self._lose()
        return reply, received - started

    def _abandon(self, queued: _Queued) -> None:
        """The caller of `queued` leaves before reading its reply (an exception while it
        was queued or sent): a later head loses the worker on reaching it, or, if it is the
        head now, the worker is lost at once."""
        with self._lock:
            if queued.requeue or queued not in self._queue:
                return
            queued.abandoned = not queued.given
        if queued.given:
            self._lose()

    def _read_reply(self) -> Any:
        try:
            (size,) = struct.unpack("!i", self._read(4))
            if size == -1:  # over 2 GiB: Connection's longer header
                (size,) = struct.unpack("!Q", self._read(8))
            return pickle.loads(self._read(size))
        except Exception as exc:  # EOF above all: the worker is gone
            how = self._describe_end("during the call")
            if not isinstance(exc, (EOFError, OSError)):
                how = f"{how}; its reply could not be read ({type(exc).__name__})"
            raise _WorkerLost(InferWorkerCrashed(how)) from None

    def _lose(self) -> None:
        """Kills the worker and sends every call behind the head to the successor. Called by
        the head only: the socket closes once the queue is empty, never under a call still
        reading it."""
        if self.process.poll() is None:
            self.process.kill()
        with self._send_lock:  # a send stuck on a full socket fails now the worker is dead
            with self._lock:
                self.lost = True
                behind = list(self._queue)[1:]
                self._queue.clear()
                self._close_if_done()
        for queued in behind:
            queued.requeue = True
            queued.turn.release()

    def _close_if_done(self) -> None:
        """Under _lock: closes the socket of a lost worker that no call uses any more."""
        if self.lost and not self._queue and self.fd != -1:
            self.process.wait()
            self.conn.close()
            self.fd = -1  # its number may be reused by any file the node opens next

    def _send_all(self, data: memoryview) -> None:
        while data:  # what the socket did not take at once: blocking, the GIL let go
            data = data[os.write(self.fd, data) :]

    def _read(self, size: int) -> bytes:
        """`size` bytes of the reply: what the socket holds taken with the GIL held, the rest
        waited for; raises EOFError when the worker is gone."""
        chunks = []
        while size:
            chunk = gilheld.recv_nowait(self.fd, size) if size <= NOWAIT_BYTES else None
            if chunk is None:
                chunk = os.read(self.fd, min(size, READ_BYTES))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def _wait_ready(self) -> None:
        try:
            if self.conn.poll(WORKER_START_SECONDS):
                message = self.conn.recv()
                if message == ("ready", self.pid):
                    self.ready = True
                    return
        except (EOFError, OSError):
            pass
        raise _WorkerLost(
            InferWorkerCrashed(
                self._describe_end("while starting")
                + " (is inference_memory_bytes too low to load ONNX Runtime?)"
            )
        )

    def _describe_end(self, when: str) -> str:
        try:
            code: int | None = self.process.wait(1.0)
        except subprocess.TimeoutExpired:
            code = None
        if code is None:
            how = "stopped answering"
        elif code < 0:
            try:
                how = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with status {code}"
        return f"the inference worker {how} {when}"

    def ask_to_stop(self) -> None:
        """Ends the worker's input behind the calls it holds: it answers them, then exits.
        Never blocks: a call still being sent is cut short (it never starts); no call is
        queued after."""
        with self._lock:
            if self.lost or self._stopping:
                return
            self._stopping = True
            try:
                with socket.fromfd(self.fd, socket.AF_UNIX, socket.SOCK_STREAM) as end:
                    end.shutdown(socket.SHUT_WR)  # the worker reads EOF after the last call
            except OSError:
                pass

    def end(self, deadline: float = 0.0) -> None:
        """Waits until `deadline` (time.monotonic; by default not at all) for the worker to
        exit, and kills it if it has not (the calls it did not answer then fail)."""
        try:
            self.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        with self._lock:
            self.lost = True
            self._close_if_done()


class SessionCache:
    """An LRU of loaded models bounded by count and by their files' total bytes.

    The newest entry is always kept, even alone over the byte bound, so any model that loads
    can run. `load(sha256)` returns (session, size in bytes).
    """

    def __init__(
        self, max_count: int, max_bytes: int, load: Callable[[str], tuple[Any, int]]
    ) -> None:
        self.max_count = max(1, max_count)
        self.max_bytes = max_bytes
        self._load = load
        self._entries: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self.total_bytes = 0

    def get(self, sha256: str) -> tuple[Any, bool, int]:
        """(session, created now, entries evicted to make room)."""
        entry = self._entries.get(sha256)
        if entry is not None:
            self._entries.move_to_end(sha256)
            return entry[0], False, 0
        session, size = self._load(sha256)
        self._entries[sha256] = (session, size)
        self.total_bytes += size
        evicted = 0
        while len(self._entries) > 1 and (
            len(self._entries) > self.max_count or self.total_bytes > self.max_bytes
        ):
            _, (_, old_size) = self._entries.popitem(last=False)
            self.total_bytes -= old_size
            evicted += 1
        return session, True, evicted

    def keys(self) -> list[str]:
        """Cached sha256s, least recently used first."""
        return list(self._entries)


def _lower_limit(kind: int, value: int) -> None:
    _, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(kind, (value, value))


def worker_entry() -> None:
    """The worker process's entry point (WORKER_BOOT): its socket's fd is argv[1]; the
    socket its receipt key comes over (when the node seals receipts) argv[2]."""
    conn = Connection(int(sys.argv[1]))
    signer = None
    if len(sys.argv) > 2:
        try:
            signer = GuardedKey(int(sys.argv[2]))
        except (GuardedKeyUnavailable, OSError):  # the node signs its receipts instead
            signer = None
    settings = conn.recv()
    worker_main(conn, settings, signer)


def worker_main(
    conn: Connection, settings: WorkerSettings, signer: GuardedKey | None = None
) -> None:
    """A worker's life: cap memory, load ONNX Runtime, then answer calls until told to stop.

    Call: (sha256, expected inputs, output names, feeds, worker_seal). Reply: ("ok", results,
    session created, sessions evicted, (output hash, receipt signature) or None, seconds the
    call took here) or ("error", code, message, replace me).
    """
    _lower_limit(resource.RLIMIT_AS, settings.memory_bytes)
    _lower_limit(resource.RLIMIT_CORE, 0)  # a crash leaves no core file behind
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the node stops its workers itself
    from modelchain.models_store import runtime  # heavy: imported under the limit

    runtime.ort.set_default_logger_severity(4)  # failures come back as exceptions
    store = ModelStore(Path(settings.store_root))
    expected_by_sha: dict[str, tuple[tuple[str, str | None], ...]] = {}

    def load(sha256: str) -> tuple[Any, int]:
        data = store.read_verified(sha256)
        options = runtime.make_session_options(settings.intra_op_threads)
        # Without the arena, memory a big call took goes back at its end instead of staying
        # reserved under the worker's address-space limit.
        options.enable_cpu_mem_arena = False
        session = runtime.ort.InferenceSession(
            data, options, providers=list(runtime.CPU_PROVIDERS), read_config_from_model=0
        )
        _check_session_inputs(session, expected_by_sha.get(sha256, ()), runtime)
        return session, len(data)

    cache = SessionCache(settings.max_sessions, settings.max_session_bytes, load)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        started = time.perf_counter()
        sha256, expected, output_names, feeds, seal = message
        expected_by_sha[sha256] = expected
        try:
            if not seal_check_passes(seal):
                reply = ("error", SealRejected.code, "the payment's signature fails", False)
            else:
                reply = _run_call(cache, sha256, output_names, feeds, runtime)
                if reply[0] == "ok":
                    sealed = _sealed_receipt(signer, seal, reply[1])
                    reply = (*reply, sealed, time.perf_counter() - started)
        except MemoryError:
            reply = (
                "error",
                InferOutOfMemory.code,
                "the call ran out of the worker's memory",
                True,
            )
        del feeds
        try:
            conn.send(reply)
        except MemoryError:
            reply = ("error", InferOutOfMemory.code, "the outputs do not fit in memory", True)
            conn.send(reply)
        if _asks_replacement(reply):  # the calls queued here never start
            return


def _run_call(
    cache: SessionCache, sha256: str, output_names: tuple[str, ...], feeds: Any, runtime: Any
) -> tuple[Any, ...]:
    from modelchain.models_store.errors import (
        InferenceFailed,
        ModelBadInput,
        StoreCorruptFile,
        StoreModelNotFound,
        is_out_of_memory_message,
    )

    try:
        session, created, evicted = cache.get(sha256)
    except StoreCorruptFile as err:
        return ("error", ModelFileCorrupt.code, err.message, False)
    except StoreModelNotFound as err:
        return ("error", ModelFileMissing.code, err.message, False)
    except _SignatureMismatch as err:
        return ("error", ModelSignatureMismatch.code, str(err), False)
    except Exception as err:  # ORT's load errors share no base class
        if is_out_of_memory_message(str(err)):
            return ("error", InferOutOfMemory.code, f"loading the model: {err}"[:500], True)
        return (
            "error",
            ModelLoadFailed.code,
            f"ONNX Runtime could not load it: {err}"[:500],
            False,
        )
    try:
        results = runtime.run(session, feeds)
    except ModelBadInput as err:
        return ("error", InferInputRejected.code, err.message[:1000], False)
    except InferenceFailed as err:
        if is_out_of_memory_message(err.message):
            return (
                "error",
                InferOutOfMemory.code,
                "the model asked for more memory than the node allows a call",
                True,
            )
        return ("error", InferFailed.code, err.message[:1000], False)
    return ("ok", {name: results[name] for name in output_names}, created, evicted)


def _sealed_receipt(
    signer: GuardedKey | None,
    seal: tuple[Any, tuple[bytes, bytes] | None] | None,
    results: Mapping[str, Any],
) -> tuple[str, bytes] | None:
    """(output hash, the node's signature of the seal's receipt with it) signed with the
    worker's guarded key, when there is a receipt to sign and the outputs hash from their
    arrays alone; otherwise None (the caller signs it)."""
    if signer is None or seal is None or seal[1] is None:
        return None
    try:
        output_hash = array_output_hash(results)
    except InferUnsupportedType:
        return None
    if output_hash is None:
        return None
    head, tail = seal[1]
    return output_hash, signer.sign(head + output_hash.encode("ascii") + tail)


class _SignatureMismatch(Exception):
    pass


def _check_session_inputs(
    session: Any, expected: tuple[tuple[str, str | None], ...], runtime: Any
) -> None:
    """Raises _SignatureMismatch if the registered inputs are not the file's inputs."""
    if not expected:
        return
    actual = {arg.name: runtime.tensor_elem_type(arg.type) for arg in session.get_inputs()}
    registered = dict(expected)
    if set(actual) != set(registered):
        raise _SignatureMismatch(
            f"the registered inputs {sorted(registered)} are not the file's {sorted(actual)}"
        )
    for name, elem in registered.items():
        if elem is not None and actual[name] != elem:
            raise _SignatureMismatch(
                f"input {name!r} is registered as {elem}, the file takes {actual[name]}"
            )
