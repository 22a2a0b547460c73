"""Helpers of the UI-2 browser tests: small ONNX models built with onnx.helper, registered
straight through the API by the dev wallet (for pages that only need a model on chain), and
a browser wallet made through wallet.js in the page.

Models differ by a `seed` baked into their weights, so each test registers its own file
(the registry refuses a sha256 twice).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import onnx
from onnx import TensorProto, helper

from modelchain.market.client import NodeClient, sign_call
from modelchain.market.config import dev_wallet
from modelchain.market.upload import default_split, registration_args

OPSET = 21
IR_VERSION = 10


def affine_model(seed: int, scale: float = 2.0) -> bytes:
    """y = x * scale + seed over a float32 [batch, 3] tensor: inputs x, outputs y."""
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "scale"], ["scaled"]),
            helper.make_node("Add", ["scaled", "offset"], ["y"]),
        ],
        f"affine-{seed}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        initializer=[
            helper.make_tensor("scale", TensorProto.FLOAT, [], [scale]),
            helper.make_tensor("offset", TensorProto.FLOAT, [], [float(seed)]),
        ],
    )
    return _serialize(graph)


def image_model(seed: int, size: int = 4) -> bytes:
    """mean per channel of a float32 [1, 3, size, size] image: input image, output mean."""
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
            helper.make_node("Add", ["pooled", "bias"], ["mean"]),
        ],
        f"image-{seed}",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("mean", TensorProto.FLOAT, [1, 3, 1, 1])],
        initializer=[helper.make_tensor("bias", TensorProto.FLOAT, [], [float(seed) / 1000])],
    )
    return _serialize(graph)


def external_data_model(seed: int) -> bytes:
    """A model whose weight lives in an external file: the node must refuse it."""
    weight = helper.make_tensor("w", TensorProto.FLOAT, [3], [1.0, 2.0, float(seed)])
    weight.data_location = TensorProto.EXTERNAL
    weight.ClearField("float_data")
    for key, value in (("location", "weights.bin"), ("offset", "0"), ("length", "12")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        f"external-{seed}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
        initializer=[weight],
    )
    return _serialize(graph)


def _serialize(graph: onnx.GraphProto) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    return model.SerializeToString()


def register_by_dev_wallet(
    client: NodeClient,
    data: bytes,
    *,
    name: str,
    version: str = "1",
    price: int = 0,
    description: str = "",
    tags: tuple[str, ...] = (),
    license: str = "MIT",
) -> str:
    """Upload `data` with a registration signed by the dev wallet; returns the txid (pending)."""
    dry_run = client.request(
        "POST", "/api/v1/models/inspect", data=data, content_type="application/octet-stream"
    )
    key = dev_wallet()
    args = registration_args(
        name=name,
        version=version,
        sha256=dry_run["sha256"],
        price=price,
        split=default_split(key.account),
        io_signature=dry_run["signature"],
        description=description,
        license=license,
        tags=tags,
    )
    nonce = client.account(key.account)["pending_nonce"]
    tx = sign_call(key, client.chain_info()["chain_id"], nonce, "registry", "register", args)
    header = base64.urlsafe_b64encode(json.dumps(tx.to_json()).encode()).decode().rstrip("=")
    result: dict[str, Any] = client.request(
        "POST",
        "/api/v1/models",
        data=data,
        content_type="application/octet-stream",
        headers={"X-Modelchain-Tx": header},
    )
    return result["txid"]


def create_browser_wallet(page: Any, passphrase: str) -> str:
    """Create a wallet in the page's browser through wallet.js; returns its account."""
    return page.evaluate(
        """async (passphrase) => {
            const wallet = await import("/static/js/wallet.js");
            return (await wallet.createWallet(passphrase)).account;
        }""",
        passphrase,
    )
