"""Factories for market and web tests: a regtest MarketNode, models registered on its chain,
and small ONNX models (the shared ones from onnx_factories: identity over every dtype, ZipMap,
sequences; here an MLP, graphs that explode or crawl at run time). Nothing is downloaded.

Registration is what a node does for an upload, without the HTTP round: the file goes into
node.models, its signature is read (in-process: the bytes are the test's own), the dev wallet
signs registry.register with it, and a block is mined by hand.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from factories import mine_tip
from onnx import TensorProto, helper, numpy_helper
from onnx_factories import (
    ELEMENT_TYPES,
    all_dtypes_model,
    dict_vectorizer_model,
    identity_model,
    make_model,
    sequence_model,
    tensor_info,
    zipmap_classifier_model,
)

from modelchain.chain.keys import KeyPair
from modelchain.chain.tx import Tx, make_tx
from modelchain.contracts.registry import VersionInfo, get_version
from modelchain.market.client import sign_call
from modelchain.market.config import NodeConfig, dev_wallet
from modelchain.market.demo import build_affine_model
from modelchain.market.node import MarketNode
from modelchain.market.upload import registration_args
from modelchain.models_store.validate import validate_model_bytes

REGISTRATION_TX_FEE = 200_000
"""Covers 1 unit per byte of a register tx with a large io_signature."""


# --- nodes and registration -------------------------------------------------------------------


def regtest_config(data_dir: Path, **overrides: Any) -> NodeConfig:
    """A regtest node's config without a mining loop; small worker pool by default."""
    fields: dict[str, Any] = {
        "data_dir": data_dir,
        "network": "regtest",
        "mine": False,
        "inference_workers": 1,
        "inference_memory_bytes": 2 * 1024**3,
    }
    fields.update(overrides)
    return NodeConfig(**fields)


def signed_call(
    node: MarketNode, method: str, args: dict[str, Any], key: KeyPair | None = None
) -> Tx:
    key = key or dev_wallet()
    return make_tx(
        key,
        chain_id=node.params.chain_id,
        nonce=node.chain.pending_nonce(key.account),
        fee=REGISTRATION_TX_FEE,
        contract="registry",
        method=method,
        args=args,
    )


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One version to register: its bytes and terms."""

    name: str
    model: onnx.ModelProto | bytes
    version: str = "1"
    price: int = 0
    io_signature: dict[str, Any] | None = None
    """None: the signature read from the bytes."""

    @property
    def data(self) -> bytes:
        return self.model if isinstance(self.model, bytes) else self.model.SerializeToString()


def register_models(node: MarketNode, specs: Sequence[ModelSpec]) -> list[VersionInfo]:
    """Stores each file, registers each version from the dev wallet, mines one block; returns
    the registered versions (fails the test if one did not register)."""
    owner = dev_wallet().account
    for spec in specs:
        data = spec.data
        stored = node.models.put_bytes(data)
        signature = spec.io_signature
        if signature is None:
            signature = validate_model_bytes(data).to_json()
        args = {
            "name": spec.name,
            "version": spec.version,
            "sha256": stored.sha256,
            "price": spec.price,
            "split": {"owners": [[owner, 10_000]], "node": 0},
            "metadata": {"io_signature": signature},
        }
        node.submit_tx(signed_call(node, "register", args))
    mine_tip(node.chain)
    infos = []
    for spec in specs:
        info = get_version(node.store, spec.name, spec.version)
        assert info is not None, f"{spec.name}@{spec.version} did not register"
        infos.append(info)
    return infos


def register_model(
    node: MarketNode, name: str, model: onnx.ModelProto | bytes, **kw: Any
) -> VersionInfo:
    return register_models(node, [ModelSpec(name, model, **kw)])[0]


def deprecate_version(
    node: MarketNode, name: str, version: str, successor: str | None = None
) -> None:
    args: dict[str, Any] = {"name": name, "version": version}
    if successor is not None:
        args["successor"] = successor
    node.submit_tx(signed_call(node, "deprecate", args))
    mine_tip(node.chain)
    info = get_version(node.store, name, version)
    assert info is not None and info.deprecated


def flip_byte(path: Path, offset: int = -1) -> None:
    """Changes one byte of a file in place (a corrupt copy on disk)."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# --- models ------------------------------------------------------------------------------------


def add_mul_model(doc: str = "") -> onnx.ModelProto:
    """Two inputs a [n, 3] and b [3] (FP32), two outputs: sum = a + b, product = a * b."""
    return make_model(
        [
            helper.make_node("Add", ["a", "b"], ["sum"]),
            helper.make_node("Mul", ["a", "b"], ["product"]),
        ],
        [tensor_info("a", TensorProto.FLOAT, ["n", 3]), tensor_info("b", TensorProto.FLOAT, [3])],
        [
            tensor_info("sum", TensorProto.FLOAT, ["n", 3]),
            tensor_info("product", TensorProto.FLOAT, ["n", 3]),
        ],
        doc=doc,
    )


def mlp_model(
    features: int = 16, hidden: int = 32, classes: int = 4, seed: int = 7
) -> onnx.ModelProto:
    """A small MLP: x [batch, features] -> Gemm -> Relu -> Gemm -> Softmax -> y [batch, classes]."""
    rng = np.random.default_rng(seed)
    w1 = numpy_helper.from_array(rng.standard_normal((features, hidden)).astype(np.float32), "w1")
    b1 = numpy_helper.from_array(np.zeros(hidden, dtype=np.float32), "b1")
    w2 = numpy_helper.from_array(rng.standard_normal((hidden, classes)).astype(np.float32), "w2")
    b2 = numpy_helper.from_array(np.zeros(classes, dtype=np.float32), "b2")
    return make_model(
        [
            helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("Gemm", ["r", "w2", "b2"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["y"], axis=-1),
        ],
        [tensor_info("x", TensorProto.FLOAT, ["batch", features])],
        [tensor_info("y", TensorProto.FLOAT, ["batch", classes])],
        initializers=[w1, b1, w2, b2],
    )


def concat_sequence_model() -> onnx.ModelProto:
    """items, a sequence of FP32 vectors, concatenated into one: joined [m]."""
    return make_model(
        [helper.make_node("ConcatFromSequence", ["items"], ["joined"], axis=0)],
        [helper.make_tensor_sequence_value_info("items", TensorProto.FLOAT, ["n"])],
        [tensor_info("joined", TensorProto.FLOAT, ["m"])],
        opset=18,
        ir_version=8,
    )


def exploding_model() -> onnx.ModelProto:
    """shape [2] (INT64) -> total: ConstantOfShape(shape) summed. Small shapes run at once; a
    shape of [100000, 100000] asks for 40 GB at run time."""
    one = numpy_helper.from_array(np.array([1.0], dtype=np.float32))
    return make_model(
        [
            helper.make_node("ConstantOfShape", ["shape"], ["ones"], value=one),
            helper.make_node("ReduceSum", ["ones"], ["total"], keepdims=0),
        ],
        [tensor_info("shape", TensorProto.INT64, [2])],
        [tensor_info("total", TensorProto.FLOAT, [])],
    )


def slow_model() -> onnx.ModelProto:
    """size [2] (INT64) -> total: MatMul of two ones matrices of that shape, summed. [4, 4] is
    instant; [6000, 6000] is 432 GFLOP on one thread (5.7 s on the 2-vCPU machines of
    2026-11; tests that need it to outlast a limit set one of 2 s or less)."""
    one = numpy_helper.from_array(np.array([1.0], dtype=np.float32))
    return make_model(
        [
            helper.make_node("ConstantOfShape", ["size"], ["a"], value=one),
            helper.make_node("MatMul", ["a", "a"], ["b"]),
            helper.make_node("ReduceSum", ["b"], ["total"], keepdims=0),
        ],
        [tensor_info("size", TensorProto.INT64, [2])],
        [tensor_info("total", TensorProto.FLOAT, [])],
    )


def lying_signature_model() -> tuple[onnx.ModelProto, dict[str, Any]]:
    """An INT64 identity whose registration claims an FP32 input: the signature lies."""
    model = identity_model(TensorProto.INT64, [2])
    model.doc_string = "lying"
    truth = validate_model_bytes(model.SerializeToString()).to_json()
    lie = {
        **truth,
        "inputs": [{"name": "x", "type": {"tensor": {"elem_type": "float32", "shape": [2]}}}],
    }
    return model, lie


def standard_specs() -> list[ModelSpec]:
    """The models most market and web tests share, registered on one node per module."""
    lying, lie = lying_signature_model()
    return [
        ModelSpec("mlp", mlp_model()),
        # models_store.runtime cannot run string inputs beside bfloat16/float8 outputs (its
        # raw-bits path feeds OrtValues only), so strings get a model of their own
        ModelSpec("dtypes", all_dtypes_model([t for t in ELEMENT_TYPES if t != "string"])),
        ModelSpec("strings", identity_model(TensorProto.STRING, ["batch", 2])),
        ModelSpec("zipmap", zipmap_classifier_model()),
        ModelSpec("zipmap-str", zipmap_classifier_model(string_labels=True)),
        ModelSpec("seq", sequence_model()),
        ModelSpec("vectorizer", dict_vectorizer_model()),
        ModelSpec("concat", concat_sequence_model()),
        ModelSpec("addmul", add_mul_model()),
        ModelSpec("fixed", identity_model(TensorProto.FLOAT, [2, 3])),
        ModelSpec("explode", exploding_model()),
        ModelSpec("slow", slow_model()),
        ModelSpec("versions", add_mul_model("v1"), version="1"),
        ModelSpec("versions", add_mul_model("v2"), version="2"),
        ModelSpec("versions", add_mul_model("v3"), version="3"),
        ModelSpec("old", add_mul_model("old1"), version="1"),
        ModelSpec("priced", add_mul_model("priced"), price=25),
        ModelSpec("absent", add_mul_model("absent")),
        ModelSpec("liar", lying, io_signature=lie),
        ModelSpec("unsigned", add_mul_model("unsigned"), io_signature={}),
    ]


def open_market_node(data_dir: Path, **config: Any) -> tuple[MarketNode, dict[str, VersionInfo]]:
    """A regtest node with standard_specs() registered: versions@3 is deprecated for @2 (so
    @2 is the newest live one), old@1 is deprecated without successor, and absent's file is
    deleted from the store. Returns the node and the versions by "name@version"."""
    node = MarketNode(regtest_config(data_dir, **config))
    infos = register_models(node, standard_specs())
    deprecate_version(node, "versions", "3", successor="2")
    deprecate_version(node, "old", "1")
    by_ref = {info.ref: get_version(node.store, info.name, info.version) for info in infos}
    node.models.delete(by_ref["absent@1"].sha256)
    return node, by_ref  # type: ignore[return-value]


# --- fixtures for the market and web test folders (imported by their conftests) ----------------


@pytest.fixture(scope="module")
def market(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[MarketNode, dict[str, VersionInfo]]]:
    """(node, versions by "name@version") on a fresh data dir; one per test module."""
    node, infos = open_market_node(tmp_path_factory.mktemp("market-node"))
    yield node, infos
    node.close()


@pytest.fixture(scope="module")
def market_node(market: tuple[MarketNode, dict[str, VersionInfo]]) -> MarketNode:
    return market[0]


@pytest.fixture(scope="module")
def versions(market: tuple[MarketNode, dict[str, VersionInfo]]) -> dict[str, VersionInfo]:
    return market[1]


# --- uploads ------------------------------------------------------------------------------------


def affine_bytes(seed: int) -> bytes:
    """A valid model whose bytes (and sha256) differ with `seed`."""
    return build_affine_model(float(seed), 1.0)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def register_tx(
    node: MarketNode,
    data: bytes,
    *,
    key: KeyPair | None = None,
    name: str = "scaler",
    version: str = "1",
    sha256: str | None = None,
    price: int = 10,
    io_signature: dict[str, Any] | None = None,
    nonce: int | None = None,
    fee: int | None = None,
    chain_id: str | None = None,
    **extra: Any,
) -> Tx:
    """A signed registry.register of `data` by the dev wallet (or `key`), right in every field
    unless overridden."""
    key = key or dev_wallet()
    args = registration_args(
        name=name,
        version=version,
        sha256=sha256 or sha256_of(data),
        price=price,
        split={"owners": [[key.account, 9000]], "node": 1000},
        io_signature=(
            validate_model_bytes(data).to_json() if io_signature is None else io_signature
        ),
        **extra,
    )
    return sign_call(
        key,
        chain_id or node.params.chain_id,
        node.chain.pending_nonce(key.account) if nonce is None else nonce,
        "registry",
        "register",
        args,
        fee=fee,
    )
