"""The demo model of `modelchain up`: a Celsius-to-Fahrenheit converter anyone can check by eye.

Its weights and terms live in market/demo/celsius-to-fahrenheit.json; the ONNX bytes are
built from them (Mul by 1.8, Add 32) with a pinned opset and IR version, so every start
builds the same file and `ensure_demo_model` is idempotent: it registers the model once,
signed by the dev wallet, and afterwards only puts the file back if the store lost it.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelchain.chain.keys import KeyPair
from modelchain.contracts import registry
from modelchain.market.client import sign_call
from modelchain.market.config import dev_wallet
from modelchain.market.node import MarketNode
from modelchain.market.upload import pending_registrations, registration_args
from modelchain.models_store.store import ModelStore

DEMO_DIR = Path(__file__).parent / "demo"
DEMO_SPEC = DEMO_DIR / "celsius-to-fahrenheit.json"
PRODUCER_NAME = "modelchain-demo"


@dataclass(frozen=True, slots=True)
class DemoSpec:
    """The demo model's data file: its terms, tensor names, weights and worked examples."""

    name: str
    version: str
    description: str
    license: str
    tags: tuple[str, ...]
    price: int
    """Base units per call."""
    owner_bps: int
    node_bps: int
    input: str
    output: str
    scale: float
    offset: float
    opset: int
    ir_version: int
    examples: tuple[tuple[float, float], ...]
    """(input, expected output) pairs a person can check."""

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> DemoSpec:
        return cls(
            name=value["name"],
            version=value["version"],
            description=value["description"],
            license=value["license"],
            tags=tuple(value["tags"]),
            price=value["price"],
            owner_bps=value["owner_bps"],
            node_bps=value["node_bps"],
            input=value["input"],
            output=value["output"],
            scale=value["weights"]["scale"],
            offset=value["weights"]["offset"],
            opset=value["opset"],
            ir_version=value["ir_version"],
            examples=tuple((e[value["input"]], e[value["output"]]) for e in value["examples"]),
        )


def load_demo_spec(path: Path = DEMO_SPEC) -> DemoSpec:
    return DemoSpec.from_json(json.loads(path.read_text(encoding="utf-8")))


def build_affine_model(
    scale: float,
    offset: float,
    *,
    input_name: str = "x",
    output_name: str = "y",
    opset: int = 21,
    ir_version: int = 10,
    producer: str = PRODUCER_NAME,
) -> bytes:
    """The ONNX bytes of y = x * scale + offset over a 1-D float32 tensor of any length.

    The same arguments give the same bytes (no timestamps, pinned opset and IR version).
    """
    from onnx import TensorProto, helper  # heavy: only when a model is built

    x = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["n"])
    y = helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["n"])
    graph = helper.make_graph(
        [
            helper.make_node("Mul", [input_name, "scale"], ["scaled"]),
            helper.make_node("Add", ["scaled", "offset"], [output_name]),
        ],
        f"{input_name}-to-{output_name}",
        [x],
        [y],
        initializer=[
            helper.make_tensor("scale", TensorProto.FLOAT, [], [scale]),
            helper.make_tensor("offset", TensorProto.FLOAT, [], [offset]),
        ],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        ir_version=ir_version,
        producer_name=producer,
        producer_version="1",
    )
    return model.SerializeToString()


def build_demo_model(spec: DemoSpec | None = None) -> bytes:
    """The demo model's ONNX bytes, built from its data file."""
    spec = spec or load_demo_spec()
    return build_affine_model(
        spec.scale,
        spec.offset,
        input_name=spec.input,
        output_name=spec.output,
        opset=spec.opset,
        ir_version=spec.ir_version,
    )


@dataclass(frozen=True, slots=True)
class DemoStatus:
    """What `ensure_demo_model` found or did."""

    ref: str
    sha256: str
    state: str
    """`submitted` (registration tx sent now), `pending` (sent earlier, not yet mined),
    `registered` (on the main chain) or `conflict` (the name@version holds another file)."""
    txid: str | None = None

    def describe(self) -> str:
        if self.state == "submitted":
            return f"demo model {self.ref}: registration submitted (tx {self.txid})"
        if self.state == "conflict":
            return f"demo model {self.ref}: registered on chain with another file, left alone"
        return f"demo model {self.ref}: {self.state}"


def ensure_demo_model(node: MarketNode, key: KeyPair | None = None) -> DemoStatus:
    """Make sure the demo model is registered (by `key`, default the dev wallet) and stored.

    Idempotent across restarts: a registration on chain or in the mempool is left as it is
    and only a missing file is put back. Raises what an upload raises when the
    registration is refused (an unfunded key, for one).
    """
    spec = load_demo_spec()
    data = build_demo_model(spec)
    sha256 = hashlib.sha256(data).hexdigest()
    info = registry.get_version(node.chain.store, spec.name, spec.version)
    if info is not None:
        if info.sha256 != sha256:
            return DemoStatus(spec.ref, info.sha256, "conflict")
        _restore_file(node.models, data, sha256)
        return DemoStatus(spec.ref, sha256, "registered")
    with node.chain.lock:
        pending = [
            tx
            for tx in pending_registrations(node.chain)
            if (tx.args["name"], tx.args["version"]) == (spec.name, spec.version)
        ]
    if pending:
        _restore_file(node.models, data, pending[0].args["sha256"])
        return DemoStatus(spec.ref, sha256, "pending", pending[0].txid)
    key = key or dev_wallet()
    signature = node.uploads.inspect(io.BytesIO(data)).signature
    args = registration_args(
        name=spec.name,
        version=spec.version,
        sha256=sha256,
        price=spec.price,
        split={"owners": [[key.account, spec.owner_bps]], "node": spec.node_bps},
        io_signature=signature,
        description=spec.description,
        license=spec.license,
        tags=spec.tags,
    )
    nonce = node.chain.pending_nonce(key.account)
    tx = sign_call(key, node.params.chain_id, nonce, registry.REGISTRY, "register", args)
    result = node.uploads.upload(io.BytesIO(data), tx)
    return DemoStatus(spec.ref, sha256, "submitted", result.txid)


def _restore_file(models: ModelStore, data: bytes, sha256: str) -> None:
    if hashlib.sha256(data).hexdigest() == sha256 and not models.has(sha256):
        models.put_bytes(data, sha256)
