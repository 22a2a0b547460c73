"""The inference engine: resolving registered versions, checking requests before anything
runs, running them in worker processes, and surviving models that crash, explode or crawl.

A regtest node per module carries the standard models (tests/factories_market.py). Tests that
need their own limits build their own InferenceService over the node's model store; each
counts worker calls and session creations through stats().
"""

from __future__ import annotations

import errno
import os
import pickle
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from factories import key_for, wait_until
from factories_market import flip_byte, mlp_model, register_model

from modelchain.contracts.registry import VersionInfo
from modelchain.market import inference as inference_module
from modelchain.market.inference import (
    CallResult,
    InferenceService,
    PreparedCall,
    Seal,
    SessionCache,
)
from modelchain.market.node import MarketNode
from modelchain.market.receipts import (
    ReceiptDraft,
    draft_receipt,
    sign_receipt_encoded,
    verify_receipt,
)
from modelchain.market.tensors import InferenceError, compute_output_hash, compute_request_hash
from modelchain.models_store import runtime

MLP_INPUT = {"name": "x", "datatype": "FP32", "shape": [2, 16], "data": [0.25] * 32}
ADDMUL_INPUTS = [
    {"name": "a", "datatype": "FP32", "shape": [2, 3], "data": [[1, 2, 3], [4, 5, 6]]},
    {"name": "b", "datatype": "FP32", "shape": [3], "data": [10, 20, 30]},
]
SLOW_INPUTS = [{"name": "size", "datatype": "INT64", "shape": [2], "data": [6000, 6000]}]
"""slow@1 on these runs for seconds (5.7 s here): a call that outlasts the limits of 2 s or
less that tests set when they need it to."""


@pytest.fixture
def make_service(market_node: MarketNode) -> Iterator[Any]:
    """Factory: an InferenceService over the node's store with config overrides; closed after."""
    made: list[InferenceService] = []

    def make(**overrides: Any) -> InferenceService:
        service_options = {
            key: overrides.pop(key)
            for key in ("queue_seconds", "max_sessions", "max_session_bytes", "receipt_key")
            if key in overrides
        }
        config = replace(market_node.config, **overrides)
        service = InferenceService(market_node.models, config, **service_options)
        made.append(service)
        return service

    yield make
    for service in made:
        service.close()


def raises_code(code: str, call: Any, *args: Any, **kwargs: Any) -> InferenceError:
    with pytest.raises(InferenceError) as err:
        call(*args, **kwargs)
    assert err.value.code == code, err.value.message
    return err.value


def prepare(
    service: InferenceService, info: VersionInfo, inputs: list[dict[str, Any]], **body: Any
) -> PreparedCall:
    return service.prepare(info, {"inputs": inputs, **body})


# --- resolving -------------------------------------------------------------------------------


def test_without_a_version_the_newest_live_version_is_resolved(market_node: MarketNode) -> None:
    info = market_node.inference.resolve(market_node.store, "versions", None)
    assert info.version == "2"  # @3 is deprecated in favour of @2


def test_unknown_model_and_version_are_404s(market_node: MarketNode) -> None:
    service = market_node.inference
    error = raises_code("model-unknown", service.resolve, market_node.store, "nope", None)
    assert error.http_status == 404
    error = raises_code("model-version-unknown", service.resolve, market_node.store, "mlp", "9")
    assert error.http_status == 404


def test_a_deprecated_version_is_described_but_not_run(market_node: MarketNode) -> None:
    service = market_node.inference
    error = raises_code(
        "model-version-deprecated", service.resolve, market_node.store, "versions", "3"
    )
    assert error.http_status == 410 and error.detail["successor"] == "2"
    assert "versions@2" in error.message
    described = service.resolve(market_node.store, "versions", "3", runnable=False)
    assert described.deprecated and described.successor == "2"


def test_a_model_whose_only_version_is_deprecated_cannot_run(market_node: MarketNode) -> None:
    error = raises_code(
        "model-version-deprecated", market_node.inference.resolve, market_node.store, "old", None
    )
    assert error.detail["successor"] is None


def test_resolving_at_the_tip_follows_new_blocks(
    market_node: MarketNode, versions: dict[str, VersionInfo]
) -> None:
    service = market_node.inference
    assert service.resolve_at_tip(market_node.chain, "mlp", None).version == "1"
    register_model(market_node, "mlp", mlp_model(features=16, seed=8), version="2")
    assert service.resolve_at_tip(market_node.chain, "mlp", None).version == "2"


# --- preparing: every rule broken, nothing run ------------------------------------------------

GOOD_A, GOOD_B = ADDMUL_INPUTS
BROKEN_REQUESTS: dict[str, tuple[Any, str]] = {
    "body-not-object": ([GOOD_A, GOOD_B], "infer-bad-request"),
    "inputs-missing": ({}, "infer-bad-request"),
    "inputs-not-list": ({"inputs": GOOD_A}, "infer-bad-request"),
    "input-not-object": ({"inputs": [GOOD_A, "b"]}, "infer-bad-input"),
    "input-without-name": ({"inputs": [GOOD_A, {**GOOD_B, "name": None}]}, "infer-bad-input"),
    "input-unknown": ({"inputs": [GOOD_A, GOOD_B, {**GOOD_B, "name": "c"}]}, "infer-unknown-input"),
    "input-twice": ({"inputs": [GOOD_A, GOOD_B, GOOD_B]}, "infer-duplicate-input"),
    "input-missing": ({"inputs": [GOOD_A]}, "infer-missing-input"),
    "datatype-wrong": ({"inputs": [GOOD_A, {**GOOD_B, "datatype": "FP64"}]}, "infer-bad-datatype"),
    "fixed-dim-wrong": (
        {"inputs": [GOOD_A, {**GOOD_B, "shape": [4], "data": [1, 2, 3, 4]}]},
        "infer-bad-shape",
    ),
    "rank-wrong": (
        {"inputs": [{**GOOD_A, "shape": [6], "data": [1] * 6}, GOOD_B]},
        "infer-bad-shape",
    ),
    "data-not-shape": ({"inputs": [GOOD_A, {**GOOD_B, "data": [1, 2]}]}, "infer-bad-shape"),
    "data-not-numbers": (
        {"inputs": [GOOD_A, {**GOOD_B, "data": ["1", "2", "3"]}]},
        "infer-bad-data",
    ),
    "too-many-elements": (
        {"inputs": [{**GOOD_A, "shape": [400, 3], "data": [0] * 1200}, GOOD_B]},
        "infer-too-many-elements",
    ),
    "output-unknown": (
        {"inputs": ADDMUL_INPUTS, "outputs": [{"name": "quotient"}]},
        "infer-unknown-output",
    ),
    "output-twice": (
        {"inputs": ADDMUL_INPUTS, "outputs": [{"name": "sum"}, {"name": "sum"}]},
        "infer-bad-request",
    ),
    "outputs-not-list": (
        {"inputs": ADDMUL_INPUTS, "outputs": {"name": "sum"}},
        "infer-bad-request",
    ),
    "id-not-string": ({"inputs": ADDMUL_INPUTS, "id": 7}, "infer-bad-request"),
    "parameters-not-object": ({"inputs": ADDMUL_INPUTS, "parameters": []}, "infer-bad-request"),
    "shared-memory": (
        {"inputs": [GOOD_A, {**GOOD_B, "parameters": {"shared_memory_region": "r"}}]},
        "infer-unsupported-parameter",
    ),
    "classification": (
        {
            "inputs": ADDMUL_INPUTS,
            "outputs": [{"name": "sum", "parameters": {"classification": 2}}],
        },
        "infer-unsupported-parameter",
    ),
    "binary-size-past-end": (
        {
            "inputs": [
                GOOD_A,
                {
                    "name": "b",
                    "datatype": "FP32",
                    "shape": [3],
                    "parameters": {"binary_data_size": 12},
                },
            ]
        },
        "infer-bad-input",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_REQUESTS))
def test_a_request_breaking_one_rule_is_refused_before_anything_runs(
    case: str, make_service: Any, versions: dict[str, VersionInfo]
) -> None:
    service = make_service(max_tensor_elements=1000)
    body, code = BROKEN_REQUESTS[case]
    error = raises_code(code, service.prepare, versions["addmul@1"], body)
    assert 400 <= error.http_status < 500
    assert service.stats().worker_calls == 0
    assert service.worker_pids() == []  # not even a worker was started


def test_a_version_without_a_usable_signature_cannot_be_served(
    market_node: MarketNode, versions: dict[str, VersionInfo]
) -> None:
    raises_code(
        "model-signature-invalid",
        prepare,
        market_node.inference,
        versions["unsigned@1"],
        ADDMUL_INPUTS,
    )


def test_a_version_whose_file_this_node_lacks_is_503(
    market_node: MarketNode, versions: dict[str, VersionInfo]
) -> None:
    error = raises_code(
        "model-file-missing", prepare, market_node.inference, versions["absent@1"], ADDMUL_INPUTS
    )
    assert error.http_status == 503


def test_a_prepared_call_carries_terms_hash_id_and_untouched_parameters(
    market_node: MarketNode, versions: dict[str, VersionInfo]
) -> None:
    info = versions["priced@1"]
    parameters = {"payment": {"tx": {"anything": 1}}, "binary_data_output": False}
    call = prepare(market_node.inference, info, ADDMUL_INPUTS, id="req-1", parameters=parameters)
    assert (call.model, call.version, call.sha256, call.price) == ("priced", "1", info.sha256, 25)
    assert call.request_id == "req-1" and call.parameters is parameters
    assert call.outputs == ("sum", "product")
    assert call.request_hash == compute_request_hash(info.sha256, call.inputs)
    assert call.inputs["b"].dtype == np.float32


# --- running -----------------------------------------------------------------------------------


def test_a_run_gives_what_onnx_runtime_gives_in_process(
    market_node: MarketNode, versions: dict[str, VersionInfo]
) -> None:
    info = versions["mlp@1"]
    call = prepare(market_node.inference, info, [MLP_INPUT])
    result = market_node.inference.run(call)
    session = runtime.create_session(market_node.models.read_verified(info.sha256))
    expected = session.run(["y"], {"x": np.full((2, 16), 0.25, dtype=np.float32)})[0]
    (output,) = result.outputs
    assert output["name"] == "y" and output["datatype"] == "FP32" and output["shape"] == [2, 4]
    assert output["data"] == expected.reshape(-1).tolist()
    assert result.output_hash == compute_output_hash(result.outputs)
    assert result.elapsed_ms >= 0


def test_several_inputs_and_outputs_and_a_chosen_output(
    market_node: MarketNode, versions: dict[str, VersionInfo]
) -> None:
    service = market_node.inference
    result = service.run(prepare(service, versions["addmul@1"], ADDMUL_INPUTS))
    assert [o["name"] for o in result.outputs] == ["sum", "product"]
    assert result.outputs[0]["data"] == [11, 22, 33, 14, 25, 36]
    assert result.outputs[1]["data"] == [10, 40, 90, 40, 100, 180]
    chosen = service.run(
        prepare(service, versions["addmul@1"], ADDMUL_INPUTS, outputs=[{"name": "product"}])
    )
    assert [o["name"] for o in chosen.outputs] == ["product"]


def test_zipmap_and_sequence_outputs_come_back_as_json(
    market_node: MarketNode, versions: dict[str, VersionInfo]
) -> None:
    service = market_node.inference
    features = [
        {"name": "features", "datatype": "FP32", "shape": [2, 3], "data": [[1, 2, 3], [0, 0, 0]]}
    ]
    label, probabilities = service.run(prepare(service, versions["zipmap-str@1"], features)).outputs
    assert label["datatype"] == "BYTES" and set(label["data"]) <= {"cat", "dog"}
    assert probabilities["datatype"] == "JSON" and probabilities["shape"] == []
    assert [sorted(row) for row in probabilities["data"]] == [["cat", "dog"], ["cat", "dog"]]
    assert all(abs(sum(row.values()) - 1) < 1e-6 for row in probabilities["data"])
    pair, maybe = service.run(
        prepare(
            service,
            versions["seq@1"],
            [{"name": "a", "datatype": "FP32", "shape": [2], "data": [1, 2]}],
        )
    ).outputs
    assert pair == {
        "name": "pair",
        "datatype": "JSON",
        "shape": [],
        "data": [[1.0, 2.0], [1.0, 2.0]],
    }
    assert maybe["data"] == [1.0, 2.0]


# --- sealed paid calls: Ed25519 work done in the worker -----------------------------------

NODE_KEY = key_for("sealing node")
PAYER_KEY = key_for("sealing payer")


def receipt_fields(call: PreparedCall) -> dict[str, Any]:
    """A receipt's fields but the output hash, as Payments seals them."""
    return {
        "chain_id": "regtest",
        "height": 7,
        "model": call.model,
        "model_version": call.version,
        "model_sha256": call.sha256,
        "input_hash": call.request_hash,
        "price": 1_000,
        "payment": {"kind": "channel", "channel": "cd" * 32, "amount": 3_000},
        "request_id": None,
    }


def receipt_draft(call: PreparedCall) -> ReceiptDraft:
    """The draft of receipt_fields(call) that Payments seals a call with."""
    return draft_receipt(NODE_KEY.account, receipt_fields(call))


def test_a_seal_whose_signature_fails_refuses_the_call_before_the_model_loads(
    make_service: Any, versions: dict[str, VersionInfo]
) -> None:
    service = make_service(inference_workers=1, receipt_key=NODE_KEY)
    call = prepare(service, versions["addmul@1"], ADDMUL_INPUTS)
    message = b"a voucher's message"
    forged = (PAYER_KEY.account, message, key_for("someone else").sign(message))
    error = raises_code("infer-seal-rejected", service.run, call, Seal(check=forged))
    assert error.http_status == 402
    assert service.stats().sessions_created == 0  # nothing was loaded, let alone run
    signed = (PAYER_KEY.account, message, PAYER_KEY.sign(message))
    assert service.run(call, Seal(check=signed)).outputs[0]["data"] == [11, 22, 33, 14, 25, 36]
    assert service.stats().sessions_created == 1


def test_a_sealed_receipt_is_signed_in_the_worker_as_the_node_signs_it(
    make_service: Any, versions: dict[str, VersionInfo]
) -> None:
    service = make_service(inference_workers=1, receipt_key=NODE_KEY)
    call = prepare(service, versions["addmul@1"], ADDMUL_INPUTS)
    fields = receipt_fields(call)
    result = service.run(call, Seal(receipt=draft_receipt(NODE_KEY.account, fields)))
    assert result.receipt is not None
    receipt, body = result.receipt
    assert verify_receipt(receipt, NODE_KEY.account)
    assert receipt["output_hash"] == result.output_hash == compute_output_hash(result.outputs)
    # Ed25519 is deterministic: the worker's receipt is byte for byte the node's own
    assert (receipt, body) == sign_receipt_encoded(
        NODE_KEY, {**fields, "output_hash": result.output_hash}
    )


def test_a_sealed_calls_outputs_are_hashed_once_in_the_worker(
    make_service: Any, versions: dict[str, VersionInfo], monkeypatch: pytest.MonkeyPatch
) -> None:
    service = make_service(inference_workers=1, receipt_key=NODE_KEY)
    call = prepare(service, versions["addmul@1"], ADDMUL_INPUTS)
    hashed_here = []
    real = inference_module.hash_output_records
    monkeypatch.setattr(
        inference_module,
        "hash_output_records",
        lambda records: hashed_here.append(1) or real(records),
    )
    sealed = service.run(call, Seal(receipt=receipt_draft(call)))
    assert hashed_here == [] and sealed.receipt is not None
    assert sealed.output_hash == sealed.receipt[0]["output_hash"]
    assert sealed.output_hash == compute_output_hash(sealed.outputs)
    assert service.run(call).output_hash == sealed.output_hash  # unsealed: hashed here
    assert hashed_here == [1]


def test_outputs_a_worker_cannot_hash_alone_leave_the_receipt_to_the_caller(
    make_service: Any, versions: dict[str, VersionInfo]
) -> None:
    service = make_service(inference_workers=1, receipt_key=NODE_KEY)
    features = [{"name": "features", "datatype": "FP32", "shape": [1, 3], "data": [[1, 2, 3]]}]
    call = prepare(service, versions["zipmap-str@1"], features)  # a map output: JSON
    assert service.run(call, Seal(receipt=receipt_draft(call))).receipt is None
    unkeyed = make_service(inference_workers=1)  # no key to sign with
    addmul = prepare(unkeyed, versions["addmul@1"], ADDMUL_INPUTS)
    assert unkeyed.run(addmul, Seal(receipt=receipt_draft(addmul))).receipt is None


def test_a_worker_signature_for_a_receipt_drafted_for_another_node_is_not_used(
    make_service: Any, versions: dict[str, VersionInfo]
) -> None:
    """The node completes a worker's signature only into its own receipts: a draft of
    someone else's is left to the caller to sign (and refuse)."""
    service = make_service(inference_workers=1, receipt_key=NODE_KEY)
    call = prepare(service, versions["addmul@1"], ADDMUL_INPUTS)
    other = draft_receipt(key_for("another node").account, receipt_fields(call))
    result = service.run(call, Seal(receipt=other))
    assert result.receipt is None
    assert result.outputs[0]["data"] == [11, 22, 33, 14, 25, 36]


def memory_holds(pid: int, needle: bytes) -> bool:
    """True when `needle` is anywhere in the memory process `pid` may read (regions
    mapped without read access are skipped)."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as memory:
        for line in maps:
            fields = line.split()
            if not fields[1].startswith("r") or fields[-1] in ("[vvar]", "[vsyscall]"):
                continue
            start, end = (int(bound, 16) for bound in fields[0].split("-"))
            try:
                memory.seek(start)
                if needle in memory.read(end - start):
                    return True
            except (OSError, ValueError, OverflowError):
                continue
    return False


def test_a_worker_holds_the_node_key_only_in_memory_it_cannot_read_unless_signing(
    make_service: Any, versions: dict[str, VersionInfo]
) -> None:
    service = make_service(inference_workers=1, receipt_key=NODE_KEY)
    call = prepare(service, versions["addmul@1"], ADDMUL_INPUTS)
    assert service.run(call, Seal(receipt=receipt_draft(call))).receipt is not None
    (pid,) = service.worker_pids()
    if not os.access(f"/proc/{pid}/mem", os.R_OK):
        pytest.skip("this machine does not let a parent read its children's memory")
    assert memory_holds(os.getpid(), NODE_KEY.seed)  # the scan finds a key where it is
    assert not memory_holds(pid, NODE_KEY.seed)  # readable worker memory: nowhere
    assert NODE_KEY.seed not in pickle.dumps(service.settings)


def test_on_a_busy_node_a_forged_seal_is_refused_at_once_not_queued(
    make_service: Any, versions: dict[str, VersionInfo]
) -> None:
    service = make_service(
        inference_workers=1, max_concurrent_inferences=1, inference_seconds=2, queue_seconds=0.3
    )
    addmul = prepare(service, versions["addmul@1"], ADDMUL_INPUTS)
    service.run(addmul)  # the worker is up
    slow = prepare(service, versions["slow@1"], SLOW_INPUTS)
    occupier = threading.Thread(target=_run_catching, args=(service, slow, []))
    occupier.start()
    wait_until(lambda: service.stats().in_flight == 1, what="the slow call to take the slot")
    message = b"a voucher's message"
    forged = (PAYER_KEY.account, message, key_for("someone else").sign(message))
    raises_code("infer-seal-rejected", service.run, addmul, Seal(check=forged))  # not busy
    signed = (PAYER_KEY.account, message, PAYER_KEY.sign(message))
    raises_code("infer-busy", service.run, addmul, Seal(check=signed))  # a good one queues
    occupier.join(30)


def test_sessions_are_created_once_and_shared_across_requests(
    make_service: Any, versions: dict[str, VersionInfo]
) -> None:
    service = make_service(inference_workers=1)
    call = prepare(service, versions["addmul@1"], ADDMUL_INPUTS)
    for _ in range(5):
        service.run(call)
    stats = service.stats()
    assert stats.worker_calls == 5 and stats.sessions_created == 1


def test_stats_time_each_call_and_what_the_worker_spent_fits_in_its_checkout(
    make_service: Any, versions: dict[str, VersionInfo]
) -> None:
    service = make_service(inference_workers=1)
    call = prepare(service, versions["addmul@1"], ADDMUL_INPUTS)
    service.run(call)  # the worker is up: waiting for its start is no later call's
    before = service.stats()
    started = time.perf_counter()
    for _ in range(5):
        service.run(call)
    wall = time.perf_counter() - started
    after = service.stats()
    queue = after.queue_seconds - before.queue_seconds
    checkout = after.checkout_seconds - before.checkout_seconds
    worker = after.worker_seconds - before.worker_seconds
    # the worker's own clock runs inside the checkout, and both inside the calls
    assert 0 < worker <= checkout
    assert 0 <= queue and queue + checkout <= wall


def test_a_call_past_the_time_limit_holds_its_worker_that_long_and_counts_no_worker_time(
    make_service: Any, versions: dict[str, VersionInfo]
) -> None:
    service = make_service(inference_workers=1, inference_seconds=0.5)
    service.run(prepare(service, versions["addmul@1"], ADDMUL_INPUTS))  # the worker is up
    before = service.stats()
    raises_code("infer-timeout", service.run, prepare(service, versions["slow@1"], SLOW_INPUTS))
    after = service.stats()
    assert after.checkout_seconds - before.checkout_seconds >= 0.5
    assert after.worker_seconds == before.worker_seconds  # it never answered


def test_warm_sessions_are_evicted_least_recently_used_first_beyond_the_count(
    make_service: Any, versions: dict[str, VersionInfo]
) -> None:
    service = make_service(inference_workers=1, max_sessions=2)
    calls = {
        ref: prepare(service, versions[ref], ADDMUL_INPUTS)
        for ref in ("addmul@1", "versions@1", "versions@2")
    }
    created = []
    for ref in ("addmul@1", "versions@1", "versions@2", "versions@1", "addmul@1"):
        before = service.stats().sessions_created
        service.run(calls[ref])
        created.append(service.stats().sessions_created - before)
    # addmul@1 was evicted by versions@2; versions@1 was used since, so it stayed
    assert created == [1, 1, 1, 0, 1]
    assert service.stats().sessions_evicted == 2


def test_warm_sessions_are_evicted_beyond_the_byte_budget(
    make_service: Any, versions: dict[str, VersionInfo], market_node: MarketNode
) -> None:
    sizes = [
        len(market_node.models.read_verified(versions[r].sha256))
        for r in ("versions@1", "versions@2")
    ]
    service = make_service(inference_workers=1, max_session_bytes=sum(sizes) - 1)
    first = prepare(service, versions["versions@1"], ADDMUL_INPUTS)
    second = prepare(service, versions["versions@2"], ADDMUL_INPUTS)
    for call in (first, second, first):
        service.run(call)
    assert service.stats().sessions_created == 3 and service.stats().sessions_evicted == 2


def test_session_cache_keeps_the_newest_entry_even_alone_over_budget() -> None:
    loaded: list[str] = []

    def load(sha: str) -> tuple[str, int]:
        loaded.append(sha)
        return f"session-{sha}", {"a": 10, "b": 10, "c": 50}[sha]

    cache = SessionCache(max_count=3, max_bytes=25, load=load)
    assert cache.get("a") == ("session-a", True, 0)
    assert cache.get("b") == ("session-b", True, 0)
    assert cache.get("a") == ("session-a", False, 0)
    assert cache.get("c") == ("session-c", True, 2)
    assert cache.keys() == ["c"] and cache.total_bytes == 50
    assert loaded == ["a", "b", "c"]


def test_a_stored_file_that_no_longer_matches_its_hash_is_refused(
    make_service: Any, market_node: MarketNode
) -> None:
    info = register_model(market_node, "tampered", mlp_model(seed=11))
    service = make_service(inference_workers=1)
    call = prepare(service, info, [MLP_INPUT])
    flip_byte(market_node.models.path_of(info.sha256))
    error = raises_code("model-file-corrupt", service.run, call)
    assert error.http_status == 500
    assert service.stats().sessions_created == 0


def test_a_registration_that_misdescribes_the_file_is_refused_at_load(
    market_node: MarketNode, versions: dict[str, VersionInfo]
) -> None:
    service = market_node.inference
    call = prepare(
        service,
        versions["liar@1"],
        [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1, 2]}],
    )
    raises_code("model-signature-mismatch", service.run, call)


# --- limits: the node serves on ----------------------------------------------------------------


def test_a_graph_that_explodes_at_run_time_fails_its_call_and_the_node_serves_on(
    make_service: Any, versions: dict[str, VersionInfo]
) -> None:
    service = make_service(inference_workers=1, inference_memory_bytes=1024**3)
    small = prepare(
        service,
        versions["explode@1"],
        [{"name": "shape", "datatype": "INT64", "shape": [2], "data": [3, 4]}],
    )
    assert service.run(small).outputs[0]["data"] == [12.0]
    huge = prepare(
        service,
        versions["explode@1"],
        [{"name": "shape", "datatype": "INT64", "shape": [2], "data": [100000, 100000]}],
    )
    error = raises_code("infer-out-of-memory", service.run, huge)
    assert error.http_status == 422
    assert (
        service.run(prepare(service, versions["addmul@1"], ADDMUL_INPUTS)).outputs[0]["data"][0]
        == 11
    )
    assert service.stats().worker_restarts == 1


def test_a_call_past_the_time_limit_fails_and_the_node_serves_on(
    make_service: Any, versions: dict[str, VersionInfo]
) -> None:
    service = make_service(inference_workers=1, inference_seconds=0.5)
    service.run(prepare(service, versions["addmul@1"], ADDMUL_INPUTS))  # the worker is up
    (pid,) = service.worker_pids()
    slow = prepare(service, versions["slow@1"], SLOW_INPUTS)
    raises_code("infer-timeout", service.run, slow)
    wait_until(lambda: not _alive(pid), what="the timed-out worker to be gone")
    assert (
        service.run(prepare(service, versions["addmul@1"], ADDMUL_INPUTS)).outputs[0]["data"][0]
        == 11
    )
    assert service.worker_pids() != [pid]


def test_a_worker_killed_mid_call_fails_that_call_and_is_replaced(
    make_service: Any, versions: dict[str, VersionInfo]
) -> None:
    service = make_service(inference_workers=1, max_concurrent_inferences=1, queue_seconds=0)
    service.run(prepare(service, versions["addmul@1"], ADDMUL_INPUTS))  # the worker is up
    (pid,) = service.worker_pids()
    slow = prepare(service, versions["slow@1"], SLOW_INPUTS)
    errors: list[InferenceError] = []
    thread = threading.Thread(target=_run_catching, args=(service, slow, errors))
    thread.start()
    wait_until(lambda: service.stats().in_flight == 1, what="the slow call to be in flight")
    # the one slot is taken: the next call is turned away at once, nothing queued
    raises_code("infer-busy", service.run, prepare(service, versions["addmul@1"], ADDMUL_INPUTS))
    os.kill(pid, signal.SIGKILL)
    thread.join(60)
    assert [e.code for e in errors] == ["infer-worker-crashed"]
    assert "SIGKILL" in errors[0].message
    assert (
        service.run(prepare(service, versions["addmul@1"], ADDMUL_INPUTS)).outputs[0]["data"][0]
        == 11
    )
    assert service.worker_pids() != [pid] and service.stats().worker_restarts == 1


def test_a_worker_that_cannot_start_under_its_memory_limit_is_a_clear_error(
    make_service: Any, versions: dict[str, VersionInfo]
) -> None:
    service = make_service(inference_workers=1, inference_memory_bytes=64 * 1024**2)
    error = raises_code(
        "infer-worker-crashed", service.run, prepare(service, versions["addmul@1"], ADDMUL_INPUTS)
    )
    assert "inference_memory_bytes" in error.message


def test_outputs_over_the_element_limit_are_refused(
    make_service: Any, versions: dict[str, VersionInfo]
) -> None:
    service = make_service(inference_workers=1, max_tensor_elements=3)
    call = prepare(
        service,
        versions["seq@1"],
        [{"name": "a", "datatype": "FP32", "shape": [3], "data": [1, 2, 3]}],
    )
    error = raises_code("infer-output-too-large", service.run, call)  # pair holds 6 numbers
    assert error.http_status == 422


def test_a_closed_service_refuses_calls(
    make_service: Any, versions: dict[str, VersionInfo]
) -> None:
    service = make_service(inference_workers=1)
    service.close()
    raises_code(
        "infer-unavailable", service.run, prepare(service, versions["addmul@1"], ADDMUL_INPUTS)
    )


def _run_catching(
    service: InferenceService, call: PreparedCall, errors: list[InferenceError]
) -> None:
    try:
        service.run(call)
    except InferenceError as err:
        errors.append(err)


def _spawn_without_memory(*args: Any, **kwargs: Any) -> Any:
    """Stands in for _Worker.spawn on a machine out of memory."""
    raise OSError(errno.ENOMEM, "Cannot allocate memory")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_worker_that_died_while_idle_is_replaced_before_the_next_call(
    make_service: Any, versions: dict[str, VersionInfo]
) -> None:
    service = make_service(inference_workers=1)
    call = prepare(service, versions["addmul@1"], ADDMUL_INPUTS)
    service.run(call)
    (pid,) = service.worker_pids()
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not _alive_unreaped(pid), what="the worker to be dead")
    assert service.run(call).outputs[0]["data"][0] == 11
    assert service.worker_pids() != [pid]


def test_a_worker_that_cannot_be_replaced_fails_later_calls_503_until_one_starts(
    make_service: Any, versions: dict[str, VersionInfo], monkeypatch: pytest.MonkeyPatch
) -> None:
    service = make_service(inference_workers=1, inference_seconds=0.5)
    call = prepare(service, versions["addmul@1"], ADDMUL_INPUTS)
    service.run(call)  # the worker is up
    spawn = inference_module._Worker.spawn

    monkeypatch.setattr(inference_module._Worker, "spawn", _spawn_without_memory)
    # the timed-out call hears of its own failure, not of the failed replacement
    raises_code("infer-timeout", service.run, prepare(service, versions["slow@1"], SLOW_INPUTS))
    error = raises_code("infer-unavailable", service.run, call)  # never sent down a stale fd
    assert error.http_status == 503 and "Cannot allocate memory" in error.message
    monkeypatch.setattr(inference_module._Worker, "spawn", spawn)
    assert service.run(call).outputs[0]["data"][0] == 11


# --- calls queued on a worker ------------------------------------------------------------------


def _addmul_of(service: InferenceService, info: VersionInfo, value: int) -> PreparedCall:
    """addmul@1 on a = [[value] * 3], b = [0] * 3: its sum output is the value back."""
    return prepare(
        service,
        info,
        [
            {"name": "a", "datatype": "FP32", "shape": [1, 3], "data": [value] * 3},
            {"name": "b", "datatype": "FP32", "shape": [3], "data": [0, 0, 0]},
        ],
    )


def _start_call(
    service: InferenceService, call: PreparedCall
) -> tuple[threading.Thread, list[Any]]:
    """Runs `call` on a thread; the list gets its CallResult or its InferenceError."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(service.run(call))
        except InferenceError as err:
            outcome.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _outcome_of(started: tuple[threading.Thread, list[Any]]) -> Any:
    thread, outcome = started
    thread.join(60)
    assert not thread.is_alive(), "the call never came back"
    (result,) = outcome
    return result


def _sums_to(result: Any, value: int) -> bool:
    return isinstance(result, CallResult) and result.outputs[0]["data"] == [float(value)] * 3


def test_concurrent_callers_each_get_the_reply_to_their_own_call(
    make_service: Any, versions: dict[str, VersionInfo]
) -> None:
    service = make_service(inference_workers=2, max_concurrent_inferences=8, queue_seconds=60)
    service.run(_addmul_of(service, versions["addmul@1"], 0))
    answers: dict[int, Any] = {}

    def caller(first: int) -> None:
        for value in range(first, first + 15):
            try:
                answers[value] = service.run(_addmul_of(service, versions["addmul@1"], value))
            except InferenceError as err:
                answers[value] = err

    threads = [threading.Thread(target=caller, args=(100 * n,), daemon=True) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
        assert not thread.is_alive()
    assert len(answers) == 16 * 15
    assert all(_sums_to(answer, value) for value, answer in answers.items())
    stats = service.stats()
    assert stats.worker_calls == 1 + 16 * 15 and stats.worker_restarts == 0
    assert stats.in_flight == 0 and stats.in_workers == 0


def test_a_call_goes_to_an_idle_worker_not_behind_a_busy_one(
    make_service: Any, versions: dict[str, VersionInfo]
) -> None:
    service = make_service(inference_workers=2, inference_seconds=60)
    for value in (0, 1):  # ties are taken in turn: both workers up
        service.run(_addmul_of(service, versions["addmul@1"], value))
    pids = service.worker_pids()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    busy = _start_call(service, _addmul_of(service, versions["addmul@1"], 1))
    wait_until(lambda: service.stats().in_workers == 1, what="the call to be sent")
    (held,) = [worker.pid for worker in service._workers if worker.holding]
    (idle,) = set(pids) - {held}
    os.kill(idle, signal.SIGCONT)
    for value in range(2, 8):  # each would wait for a minute behind the held call
        assert _sums_to(service.run(_addmul_of(service, versions["addmul@1"], value)), value)
    assert service.stats().in_workers == 1  # the held call still waits for its answer
    os.kill(held, signal.SIGKILL)
    assert _outcome_of(busy).code == "infer-worker-crashed"


@pytest.mark.parametrize(
    ("loss", "code"),
    [
        ("timeout", "infer-timeout"),
        ("kill", "infer-worker-crashed"),
        ("out-of-memory", "infer-out-of-memory"),
    ],
)
def test_a_call_queued_behind_one_that_loses_the_worker_runs_on_its_successor(
    make_service: Any, versions: dict[str, VersionInfo], loss: str, code: str
) -> None:
    service = make_service(
        inference_workers=1,
        max_concurrent_inferences=2,
        inference_seconds=1.5 if loss == "timeout" else 60,
        inference_memory_bytes=1024**3,
    )
    if loss == "timeout":  # held while it boots: the call's time counts from when it is up
        service.start()
    else:  # held mid-call, under a limit far longer than the test
        service.run(_addmul_of(service, versions["addmul@1"], 0))
    (pid,) = service.worker_pids()
    os.kill(pid, signal.SIGSTOP)
    if loss == "timeout":
        doomed = prepare(service, versions["slow@1"], SLOW_INPUTS)
    elif loss == "out-of-memory":
        shape = {"name": "shape", "datatype": "INT64", "shape": [2], "data": [100000, 100000]}
        doomed = prepare(service, versions["explode@1"], [shape])
    else:
        doomed = _addmul_of(service, versions["addmul@1"], 1)
    first = _start_call(service, doomed)
    wait_until(lambda: service.stats().in_workers == 1, what="the first call to be sent")
    second = _start_call(service, _addmul_of(service, versions["addmul@1"], 2))
    wait_until(lambda: service.stats().in_workers == 2, what="the second call to queue")
    os.kill(pid, signal.SIGKILL if loss == "kill" else signal.SIGCONT)
    error = _outcome_of(first)
    assert isinstance(error, InferenceError) and error.code == code, error
    assert _sums_to(_outcome_of(second), 2)
    stats = service.stats()
    assert service.worker_pids() != [pid] and stats.worker_restarts == 1
    assert stats.in_workers == 0


def test_a_queued_call_gets_the_whole_time_limit_from_when_its_worker_starts_it(
    make_service: Any, versions: dict[str, VersionInfo]
) -> None:
    """Two calls wait more than twice the limit on a worker that is not up yet (it is
    importing ONNX Runtime, which takes far longer than the test takes to hold it): neither
    times out."""
    service = make_service(inference_workers=1, max_concurrent_inferences=2, inference_seconds=2)
    service.start()
    (pid,) = service.worker_pids()
    os.kill(pid, signal.SIGSTOP)
    calls = [
        _start_call(service, _addmul_of(service, versions["addmul@1"], value)) for value in (1, 2)
    ]
    wait_until(lambda: service.stats().in_workers == 2, what="both calls to be sent")
    held_since = time.monotonic()
    wait_until(lambda: time.monotonic() > held_since + 4.5, what="the hold to pass the limit")
    os.kill(pid, signal.SIGCONT)
    for started, value in zip(calls, (1, 2), strict=True):
        assert _sums_to(_outcome_of(started), value)
    assert service.stats().worker_restarts == 0


def test_closing_lets_a_worker_answer_the_calls_it_holds_then_refuses_new_ones(
    make_service: Any, versions: dict[str, VersionInfo]
) -> None:
    service = make_service(inference_workers=1, max_concurrent_inferences=2)
    service.run(_addmul_of(service, versions["addmul@1"], 0))
    (pid,) = service.worker_pids()
    os.kill(pid, signal.SIGSTOP)
    calls = [
        _start_call(service, _addmul_of(service, versions["addmul@1"], value)) for value in (1, 2)
    ]
    wait_until(lambda: service.stats().in_workers == 2, what="both calls to be sent")
    closing = threading.Thread(target=service.close, daemon=True)
    closing.start()
    wait_until(lambda: service._workers[0]._stopping, what="the close to end the input")
    os.kill(pid, signal.SIGCONT)
    closing.join(60)
    assert not closing.is_alive()
    for started, value in zip(calls, (1, 2), strict=True):
        assert _sums_to(_outcome_of(started), value)
    assert not _alive_unreaped(pid)
    raises_code("infer-unavailable", service.run, _addmul_of(service, versions["addmul@1"], 3))


def test_closing_kills_a_worker_still_busy_after_the_grace_and_its_calls_fail_503(
    make_service: Any, versions: dict[str, VersionInfo], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inference_module, "WORKER_STOP_SECONDS", 0.5)
    service = make_service(inference_workers=1, max_concurrent_inferences=2, inference_seconds=60)
    service.run(_addmul_of(service, versions["addmul@1"], 0))
    (pid,) = service.worker_pids()
    slow = _start_call(service, prepare(service, versions["slow@1"], SLOW_INPUTS))
    wait_until(lambda: service.stats().in_workers == 1, what="the slow call to be sent")
    queued = _start_call(service, _addmul_of(service, versions["addmul@1"], 1))
    wait_until(lambda: service.stats().in_workers == 2, what="a call to queue behind it")
    service.close()
    assert not _alive_unreaped(pid)
    for started in (slow, queued):
        error = _outcome_of(started)
        assert isinstance(error, InferenceError) and error.code == "infer-unavailable", error


def test_a_pool_that_cannot_start_whole_starts_none_and_a_later_call_starts_it(
    make_service: Any, versions: dict[str, VersionInfo], monkeypatch: pytest.MonkeyPatch
) -> None:
    service = make_service(inference_workers=2)
    spawn = inference_module._Worker.spawn
    started: list[Any] = []

    def second_fails(*args: Any, **kwargs: Any) -> Any:
        if started:
            raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
        started.append(spawn(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(inference_module._Worker, "spawn", second_fails)
    call = _addmul_of(service, versions["addmul@1"], 1)
    error = raises_code("infer-unavailable", service.run, call)
    assert error.http_status == 503 and "Resource temporarily unavailable" in error.message
    assert service.worker_pids() == [] and not _alive_unreaped(started[0].pid)
    monkeypatch.setattr(inference_module._Worker, "spawn", spawn)
    assert _sums_to(service.run(call), 1)
    assert len(service.worker_pids()) == 2


def test_while_a_lost_worker_cannot_be_replaced_calls_go_to_the_live_one(
    make_service: Any, versions: dict[str, VersionInfo], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inference_module, "SPAWN_RETRY_SECONDS", 0.2)
    service = make_service(inference_workers=2)
    call = _addmul_of(service, versions["addmul@1"], 1)
    for _ in range(2):
        service.run(call)
    dead, alive = service.worker_pids()
    spawn = inference_module._Worker.spawn

    monkeypatch.setattr(inference_module._Worker, "spawn", _spawn_without_memory)
    os.kill(dead, signal.SIGKILL)
    wait_until(lambda: not _alive_unreaped(dead), what="the worker to be dead")
    failures = 0
    while not any(worker.lost for worker in service._workers):  # a call finds it dead
        try:
            service.run(call)
        except InferenceError as err:
            assert err.code in ("infer-unavailable", "infer-worker-crashed"), err
            failures += 1
    assert failures == 1
    for _ in range(10):
        assert _sums_to(service.run(call), 1)
    assert alive in service.worker_pids()
    monkeypatch.setattr(inference_module._Worker, "spawn", spawn)
    wait_until(
        lambda: _sums_to(service.run(call), 1) and service.stats().worker_restarts == 1,
        what="the lost worker to be replaced once spawning works again",
    )
    assert dead not in service.worker_pids() and alive in service.worker_pids()


def test_a_caller_interrupted_mid_call_takes_its_worker_with_it_and_the_next_call_runs(
    make_service: Any, versions: dict[str, VersionInfo], monkeypatch: pytest.MonkeyPatch
) -> None:
    service = make_service(inference_workers=1)
    call = _addmul_of(service, versions["addmul@1"], 1)
    service.run(call)
    (pid,) = service.worker_pids()
    send = inference_module._Worker._send

    def interrupted(worker: Any, frame: Any, data: bytes) -> bool:
        monkeypatch.setattr(inference_module._Worker, "_send", send)
        raise KeyboardInterrupt

    monkeypatch.setattr(inference_module._Worker, "_send", interrupted)
    with pytest.raises(KeyboardInterrupt):
        service.run(call)
    stats = service.stats()
    assert stats.in_flight == 0 and stats.in_workers == 0
    assert _sums_to(service.run(call), 1)
    assert service.worker_pids() != [pid] and service.stats().worker_restarts == 1


def test_a_call_whose_every_worker_is_lost_before_it_starts_fails_after_a_few_tries(
    make_service: Any, versions: dict[str, VersionInfo], monkeypatch: pytest.MonkeyPatch
) -> None:
    service = make_service(inference_workers=1)
    call = _addmul_of(service, versions["addmul@1"], 1)
    service.run(call)

    def lost_before_it_starts(worker: Any, message: Any, seconds: float) -> Any:
        worker._lose()  # as a crash found on sending would
        error = inference_module.InferWorkerCrashed("lost")
        raise inference_module._WorkerLost(error, requeue=True)

    monkeypatch.setattr(inference_module._Worker, "call", lost_before_it_starts)
    error = raises_code("infer-worker-crashed", service.run, call)
    assert "each was lost before it started" in error.message
    assert service.stats().worker_restarts == inference_module.MAX_REQUEUES


def _alive_unreaped(pid: int) -> bool:
    """False once every thread of the process has exited (a zombie that its parent has not
    reaped counts as exited; its leader turns zombie before the other threads are gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
        return state != "Z" or len(os.listdir(f"/proc/{pid}/task")) > 1
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("rows", [1, 3000, 60000])
def test_calls_and_replies_of_any_size_reach_the_worker_and_come_back_whole(
    make_service: Any, versions: dict[str, VersionInfo], rows: int
) -> None:
    """Sizes around what a worker's socket takes at once (NOWAIT_BYTES, its buffer)."""
    service = make_service(inference_workers=1)
    a = np.arange(rows * 3, dtype=np.float32).reshape(rows, 3)
    inputs = [
        {"name": "a", "datatype": "FP32", "shape": [rows, 3], "data": a.ravel().tolist()},
        {"name": "b", "datatype": "FP32", "shape": [3], "data": [1, 2, 3]},
    ]
    result = service.run(prepare(service, versions["addmul@1"], inputs))
    by_name = {output["name"]: output["data"] for output in result.outputs}
    assert by_name["sum"] == (a + np.float32([1, 2, 3])).ravel().tolist()
    assert by_name["product"] == (a * np.float32([1, 2, 3])).ravel().tolist()


def test_map_and_sequence_inputs_run_as_json_values(
    market_node: MarketNode, versions: dict[str, VersionInfo]
) -> None:
    service = market_node.inference
    features = {"name": "features", "datatype": "JSON", "shape": [], "data": {"a": 1, "c": 2.5}}
    call = prepare(service, versions["vectorizer@1"], [features])
    assert call.request_hash == compute_request_hash(call.sha256, call.inputs)
    (vector,) = service.run(call).outputs
    assert vector["data"] == [1.0, 0.0, 2.5]
    items = {"name": "items", "datatype": "JSON", "shape": [], "data": [[1, 2], [3]]}
    (joined,) = service.run(prepare(service, versions["concat@1"], [items])).outputs
    assert joined == {"name": "joined", "datatype": "FP32", "shape": [3], "data": [1.0, 2.0, 3.0]}
    binary = {**items, "parameters": {"binary_data_size": 0}}
    raises_code("infer-bad-input", prepare, service, versions["concat@1"], [binary])
