"""Triton's own HTTP client against a real node, unchanged: a free model served over /v2.

The data directory is prepared before the node starts (a regtest MarketNode registers an MLP,
a two-output model and a string model, mines the block, closes); then `python -m
modelchain.entry node start --port 0` serves it. The test reads the URL from the node's stdout
line, waits for /v2/health/ready by polling, and drives the node with
tritonclient.http.InferenceServerClient: health, readiness, metadata, inference with pure JSON
tensors (binary_data=False) and with the binary tensor extension (tritonclient's default),
and an error. The node is stopped by pid (terminate, wait, kill) and its stderr is shown if
anything fails.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
import time
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
from onnx import TensorProto

from modelchain.market.node import MarketNode
from modelchain.models_store import runtime

httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

log = logging.getLogger(__name__)
START_SECONDS = 60.0
STOP_SECONDS = 20.0


class NodeProcess:
    """A node process on a prepared data dir; stopped by pid."""

    def __init__(self, data: Path) -> None:
        self.stderr_file = tempfile.TemporaryFile()
        command = [sys.executable, "-m", "modelchain.entry", "node", "start"]
        command += ["--data", str(data), "--port", "0", "--network", "regtest"]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self.stderr_file, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until the node reports, or exits
        if "listening on" not in line:
            raise AssertionError(f"the node did not start: {line!r}\n{self.stderr()}")
        self.url = line.rsplit(" ", 1)[1].strip()
        log.info("node %d listening on %s", self.proc.pid, self.url)

    def stderr(self) -> str:
        self.stderr_file.seek(0)
        return self.stderr_file.read().decode("utf-8", errors="replace")[-4000:]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.stderr_file.close()


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
    node = NodeProcess(data)
    try:
        yield node, prepared
    except BaseException:
        print(node.stderr(), file=sys.stderr)
        raise
    finally:
        node.stop()


def wait_ready(client: object, timeout: float = START_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if client.is_server_ready():  # type: ignore[attr-defined]
                return
        except Exception:  # noqa: BLE001 - not listening yet
            pass
        if time.monotonic() > deadline:
            raise AssertionError("the node never became ready")
        time.sleep(0.05)


@pytest.mark.slow
def test_tritonclient_runs_a_free_model_unchanged(served: tuple[NodeProcess, MarketNode]) -> None:
    node, prepared = served
    client = httpclient.InferenceServerClient(node.url.removeprefix("http://"))
    wait_ready(client)
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
