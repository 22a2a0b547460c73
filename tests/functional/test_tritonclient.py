"""Triton's own HTTP client against a real node, unchanged: a free model served over /v2.

The data directory is prepared before the node starts (a regtest MarketNode registers an MLP,
a two-output model and a string model, mines the block, closes); then `python -m
modelchain.entry node start --port 0` serves it (tests/node_process.py: the URL from the
node's node.json, /v2/health/ready polled). The test drives the node with
tritonclient.http.InferenceServerClient: health, readiness, metadata, inference with pure JSON
tensors (binary_data=False) and with the binary tensor extension (tritonclient's default),
and an error. The node is stopped by pid (terminate, wait, kill) and its stderr is shown if
anything fails.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from factories_market import (
    ModelSpec,
    add_mul_model,
    identity_model,
    mlp_model,
    register_models,
    regtest_config,
)
from node_process import NodeProcess
from onnx import TensorProto

from modelchain.market.node import MarketNode
from modelchain.models_store import runtime

httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

log = logging.getLogger(__name__)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[NodeProcess, MarketNode]]:
    data = tmp_path / "node"
    prepared = MarketNode(regtest_config(data))
    register_models(
        prepared,
        [
            ModelSpec("mlp", mlp_model()),
            ModelSpec("addmul", add_mul_model()),
            ModelSpec("words", identity_model(TensorProto.STRING, ["n"])),
        ],
    )
    prepared.close()
    node = NodeProcess.start(data, mine=False)
    try:
        yield node, prepared
    except BaseException:
        print(node.stderr(), file=sys.stderr)
        raise
    finally:
        node.stop()


@pytest.mark.slow
def test_tritonclient_runs_a_free_model_unchanged(served: tuple[NodeProcess, MarketNode]) -> None:
    node, prepared = served
    client = httpclient.InferenceServerClient(node.url.removeprefix("http://"))
    assert client.is_server_ready()
    assert client.is_server_live()
    assert client.is_model_ready("mlp") and not client.is_model_ready("nope")
    meta = client.get_model_metadata("mlp")
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 16]}]
    assert client.get_server_metadata()["name"] == "modelchain"

    log.info("pure JSON tensors: binary_data=False in and out")
    x = np.random.default_rng(3).standard_normal((3, 16)).astype(np.float32)
    x_input = httpclient.InferInput("x", [3, 16], "FP32")
    x_input.set_data_from_numpy(x, binary_data=False)
    result = client.infer(
        "mlp",
        [x_input],
        outputs=[httpclient.InferRequestedOutput("y", binary_data=False)],
        request_id="r1",
    )
    session = runtime.create_session(mlp_model().SerializeToString())
    expected = session.run(["y"], {"x": x})[0]
    np.testing.assert_array_equal(result.as_numpy("y"), expected)
    assert result.get_response()["id"] == "r1"

    log.info("tritonclient's defaults: binary tensors both ways, a version in the path")
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([10, 20, 30], dtype=np.float32)
    inputs = [httpclient.InferInput("a", [2, 3], "FP32"), httpclient.InferInput("b", [3], "FP32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(b)
    result = client.infer("addmul", inputs, model_version="1")
    np.testing.assert_array_equal(result.as_numpy("sum"), a + b)
    np.testing.assert_array_equal(result.as_numpy("product"), a * b)

    log.info("strings: BYTES in JSON and in binary")
    words = np.array(["zebra", "café"], dtype=object)
    for binary in (False, True):
        word_input = httpclient.InferInput("x", [2], "BYTES")
        word_input.set_data_from_numpy(words, binary_data=binary)
        out = client.infer(
            "words",
            [word_input],
            outputs=[httpclient.InferRequestedOutput("y", binary_data=binary)],
        )
        got = [w.decode() if isinstance(w, bytes) else w for w in out.as_numpy("y").tolist()]
        assert got == ["zebra", "café"]

    log.info("an error reaches the client with the node's status, code and message")
    wrong = httpclient.InferInput("x", [3, 15], "FP32")
    wrong.set_data_from_numpy(np.zeros((3, 15), dtype=np.float32), binary_data=False)
    with pytest.raises(InferenceServerException) as err:
        client.infer("mlp", [wrong])
    # /v2 answers the Open Inference Protocol's {"error": message} (our code beside it), so
    # tritonclient shows the node's own words
    assert err.value.status() == "400"
    assert "shape" in err.value.message()
    assert "shape" in str(err.value)
    client.close()
