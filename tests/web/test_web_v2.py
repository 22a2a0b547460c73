"""The /v2 Open Inference Protocol face through the Flask test client: metadata, readiness,
every datatype round trip, JSON outputs, the binary tensor extension, limits and errors in
the one JSON error body, and priced versions never run without payment."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient

from modelchain.contracts.registry import VersionInfo
from modelchain.market.node import MarketNode
from modelchain.market.tensors import compute_output_hash, compute_request_hash, tensor_bytes

ADDMUL_INPUTS = [
    {"name": "a", "datatype": "FP32", "shape": [2, 3], "data": [[1, 2, 3], [4, 5, 6]]},
    {"name": "b", "datatype": "FP32", "shape": [3], "data": [10, 20, 30]},
]
# Per element type: the v2 datatype and two rows of values it holds exactly.
DTYPE_VALUES: dict[str, tuple[str, list[Any]]] = {
    "float32": ("FP32", [0.5, -1.25, 3.0, 0.10000000149011612]),
    "float64": ("FP64", [0.1, -2.5, 1e300, 5e-324]),
    "float16": ("FP16", [0.5, -2.0, 65504.0, 0.0009765625]),
    "bfloat16": ("BF16", [0.5, -2.0, 1.0078125, 3.0]),
    "int8": ("INT8", [-128, -1, 0, 127]),
    "int16": ("INT16", [-32768, -1, 0, 32767]),
    "int32": ("INT32", [-(2**31), -1, 0, 2**31 - 1]),
    "int64": ("INT64", [-(2**63), -1, 2**53 + 1, 2**63 - 1]),
    "uint8": ("UINT8", [0, 1, 200, 255]),
    "uint16": ("UINT16", [0, 1, 60000, 65535]),
    "uint32": ("UINT32", [0, 1, 4_000_000_000, 7]),
    "uint64": ("UINT64", [0, 1, 2**64 - 1, 2**53 + 1]),
    "bool": ("BOOL", [True, False, False, True]),
    "string": ("BYTES", ["", "cat", "café ☕", "a\u0000b"]),
    "float8e4m3fn": ("FP8E4M3FN", [0.5, -2.0, 448.0, 0.015625]),
    "float8e4m3fnuz": ("FP8E4M3FNUZ", [0.5, -2.0, 240.0, 0.015625]),
    "float8e5m2": ("FP8E5M2", [0.5, -2.0, 57344.0, 0.0009765625]),
    "float8e5m2fnuz": ("FP8E5M2FNUZ", [0.5, -2.0, 57344.0, 0.0009765625]),
}


def error_of(response: Any, status: int) -> dict[str, Any]:
    """The error of a /v2 answer, in the Open Inference Protocol's shape
    ({"error": message} with our code beside it), as {"code", "message", ...}."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert isinstance(body["error"], str) and isinstance(body["code"], str), body
    return {"message": body["error"]} | {k: v for k, v in body.items() if k != "error"}


def infer(client: FlaskClient, model: str, body: Any, version: str | None = None) -> Any:
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    return client.post(path, json=body)


# --- server and model metadata -----------------------------------------------------------------


def test_server_metadata_and_health(client: FlaskClient) -> None:
    meta = client.get("/v2").get_json()
    assert meta["name"] == "modelchain" and "binary_tensor_data" in meta["extensions"]
    assert client.get("/v2/health/live").get_json() == {"live": True}
    assert client.get("/v2/health/ready").get_json() == {"ready": True}


def test_model_metadata_lists_inputs_and_outputs_with_symbolic_dims_as_minus_one(
    client: FlaskClient, versions: dict[str, VersionInfo]
) -> None:
    meta = client.get("/v2/models/addmul").get_json()
    assert meta["name"] == "addmul" and meta["platform"] == "onnxruntime_onnx"
    assert meta["versions"] == ["1"]
    assert meta["inputs"] == [
        {"name": "a", "datatype": "FP32", "shape": [-1, 3]},
        {"name": "b", "datatype": "FP32", "shape": [3]},
    ]
    assert [o["name"] for o in meta["outputs"]] == ["sum", "product"]
    assert meta["parameters"]["sha256"] == versions["addmul@1"].sha256
    zipmap = client.get("/v2/models/zipmap/versions/1").get_json()
    assert zipmap["outputs"][1] == {"name": "probabilities", "datatype": "JSON", "shape": []}


def test_a_deprecated_version_is_described_with_its_successor(client: FlaskClient) -> None:
    meta = client.get("/v2/models/versions/versions/3").get_json()
    assert meta["versions"] == ["1", "2", "3"]
    assert meta["parameters"]["deprecated"] is True and meta["parameters"]["successor"] == "2"


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v2/models/nope", 404, "model-unknown"),
        ("/v2/models/mlp/versions/9", 404, "model-version-unknown"),
        ("/v2/models/nope/ready", 404, "model-unknown"),
        ("/v2/models/versions/versions/3/ready", 410, "model-version-deprecated"),
        ("/v2/models/old/ready", 410, "model-version-deprecated"),
        ("/v2/models/absent/ready", 503, "model-file-missing"),
        ("/v2/models/unsigned/ready", 422, "model-signature-invalid"),
    ],
)
def test_metadata_and_readiness_errors_carry_a_code(
    client: FlaskClient, path: str, status: int, code: str
) -> None:
    assert error_of(client.get(path), status)["code"] == code


def test_a_servable_version_is_ready(client: FlaskClient) -> None:
    assert client.get("/v2/models/addmul/ready").get_json() == {
        "name": "addmul",
        "version": "1",
        "ready": True,
    }
    assert client.get("/v2/models/versions/ready").get_json()["version"] == "2"


# --- inference ---------------------------------------------------------------------------------


@pytest.mark.parametrize("elem_type", sorted(DTYPE_VALUES))
def test_every_datatype_round_trips_through_v2(client: FlaskClient, elem_type: str) -> None:
    datatype, values = DTYPE_VALUES[elem_type]
    if elem_type == "string":
        model, output_name = "strings", "y"
        inputs = [{"name": "x", "datatype": datatype, "shape": [2, 2], "data": values}]
    else:
        model, output_name = "dtypes", f"out_{elem_type}"
        inputs = [
            {"name": f"in_{name}", "datatype": dt, "shape": [2, 2], "data": data}
            for name, (dt, data) in DTYPE_VALUES.items()
            if name != "string"
        ]
    body = {"inputs": inputs, "outputs": [{"name": output_name}]}
    response = infer(client, model, body)
    assert response.status_code == 200, response.get_data(as_text=True)
    (output,) = response.get_json()["outputs"]
    assert output == {"name": output_name, "datatype": datatype, "shape": [2, 2], "data": values}


def test_an_inference_answer_echoes_the_id_and_binds_request_and_outputs(
    client: FlaskClient, versions: dict[str, VersionInfo]
) -> None:
    response = infer(client, "addmul", {"id": "call-7", "inputs": ADDMUL_INPUTS})
    assert response.status_code == 200
    body = response.get_json()
    assert (body["model_name"], body["model_version"], body["id"]) == ("addmul", "1", "call-7")
    assert body["outputs"][0] == {
        "name": "sum",
        "datatype": "FP32",
        "shape": [2, 3],
        "data": [11, 22, 33, 14, 25, 36],
    }
    sha = versions["addmul@1"].sha256
    inputs = {
        "a": np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32),
        "b": np.array([10, 20, 30], dtype=np.float32),
    }
    assert body["parameters"] == {
        "model_sha256": sha,
        "request_hash": compute_request_hash(sha, inputs),
        "output_hash": compute_output_hash(body["outputs"]),
    }


def test_versions_are_reached_by_path(client: FlaskClient) -> None:
    assert (
        infer(client, "versions", {"inputs": ADDMUL_INPUTS}, "1").get_json()["model_version"] == "1"
    )
    assert infer(client, "versions", {"inputs": ADDMUL_INPUTS}).get_json()["model_version"] == "2"
    error = error_of(infer(client, "versions", {"inputs": ADDMUL_INPUTS}, "3"), 410)
    assert error["code"] == "model-version-deprecated" and error["successor"] == "2"


def test_json_outputs_of_a_zipmap_classifier(client: FlaskClient) -> None:
    body = {
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]
    }
    label, probabilities = infer(client, "zipmap", body).get_json()["outputs"]
    assert label["datatype"] == "INT64" and label["shape"] == [1]
    assert probabilities["datatype"] == "JSON" and list(probabilities["data"][0]) == ["0", "1"]


def test_an_unknown_output_is_400_and_nothing_runs(
    client: FlaskClient, market_node: MarketNode
) -> None:
    before = market_node.inference.stats().worker_calls
    error = error_of(
        infer(client, "addmul", {"inputs": ADDMUL_INPUTS, "outputs": [{"name": "nope"}]}), 400
    )
    assert error["code"] == "infer-unknown-output" and error["outputs"] == ["sum", "product"]
    assert market_node.inference.stats().worker_calls == before


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"inputs": [ADDMUL_INPUTS[0]]}, "infer-missing-input"),
        ({"inputs": [*ADDMUL_INPUTS, {**ADDMUL_INPUTS[1], "name": "c"}]}, "infer-unknown-input"),
        (
            {"inputs": [ADDMUL_INPUTS[0], {**ADDMUL_INPUTS[1], "datatype": "INT32"}]},
            "infer-bad-datatype",
        ),
        (
            {"inputs": [ADDMUL_INPUTS[0], {**ADDMUL_INPUTS[1], "shape": [2], "data": [1, 2]}]},
            "infer-bad-shape",
        ),
        (
            {"inputs": [ADDMUL_INPUTS[0], {**ADDMUL_INPUTS[1], "data": [1, "x", 3]}]},
            "infer-bad-data",
        ),
        ({"input": ADDMUL_INPUTS}, "infer-bad-request"),
    ],
)
def test_broken_inputs_are_4xx_with_a_code_and_nothing_runs(
    client: FlaskClient, market_node: MarketNode, body: Any, code: str
) -> None:
    before = market_node.inference.stats().worker_calls
    assert error_of(infer(client, "addmul", body), 400)["code"] == code
    assert market_node.inference.stats().worker_calls == before


def test_a_body_that_is_not_json_is_400(client: FlaskClient) -> None:
    response = client.post(
        "/v2/models/addmul/infer", data=b"{nope", content_type="application/json"
    )
    assert error_of(response, 400)["code"] == "infer-bad-request"


def test_unknown_models_and_versions_are_404_on_infer(client: FlaskClient) -> None:
    assert error_of(infer(client, "nope", {"inputs": []}), 404)["code"] == "model-unknown"
    assert (
        error_of(infer(client, "addmul", {"inputs": []}, "7"), 404)["code"]
        == "model-version-unknown"
    )


def test_a_body_over_the_request_limit_is_413(
    client: FlaskClient, market_node: MarketNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(market_node, "config", replace(market_node.config, max_request_bytes=200))
    body = {
        "inputs": [ADDMUL_INPUTS[0], {**ADDMUL_INPUTS[1], "data": [1.0000001] * 3}],
        "id": "x" * 200,
    }
    assert error_of(infer(client, "addmul", body), 413)["code"] == "infer-request-too-large"


def test_an_input_over_the_element_limit_is_413(
    client: FlaskClient, market_node: MarketNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = market_node.inference
    monkeypatch.setattr(service, "config", replace(service.config, max_tensor_elements=5))
    error = error_of(infer(client, "addmul", {"inputs": ADDMUL_INPUTS}), 413)
    assert error["code"] == "infer-too-many-elements" and error["limit"] == 5


def test_a_model_file_missing_here_is_503(client: FlaskClient) -> None:
    assert (
        error_of(infer(client, "absent", {"inputs": ADDMUL_INPUTS}), 503)["code"]
        == "model-file-missing"
    )


# --- priced versions -----------------------------------------------------------------------------


def test_a_priced_version_without_payment_is_402_with_a_quote_and_nothing_runs(
    client: FlaskClient, market_node: MarketNode, versions: dict[str, VersionInfo]
) -> None:
    before = market_node.inference.stats().worker_calls
    error = error_of(infer(client, "priced", {"inputs": ADDMUL_INPUTS}), 402)
    assert error["code"] == "payment-required"
    quote = error["quote"]
    assert (quote["price"], quote["node"], quote["sha256"]) == (
        25,
        market_node.account,
        versions["priced@1"].sha256,
    )
    assert market_node.inference.stats().worker_calls == before


def test_a_node_without_payments_never_runs_a_priced_version(
    client: FlaskClient,
    market_node: MarketNode,
    versions: dict[str, VersionInfo],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(market_node, "payments")
    error = error_of(infer(client, "priced", {"inputs": ADDMUL_INPUTS}), 402)
    assert error["code"] == "payment-required"
    assert error["quote"]["model"] == "priced" and error["quote"]["version"] == "1"
    assert error["quote"]["price"] == 25 and error["quote"]["node"] == market_node.account


# --- the binary tensor extension ------------------------------------------------------------------


def test_binary_inputs_and_outputs_as_tritonclient_sends_and_reads_them(
    client: FlaskClient,
) -> None:
    a = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32)
    b = np.array([10, 20, 30], dtype=np.float32)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "a",
                    "datatype": "FP32",
                    "shape": [2, 3],
                    "parameters": {"binary_data_size": a.nbytes},
                },
                {
                    "name": "b",
                    "datatype": "FP32",
                    "shape": [3],
                    "parameters": {"binary_data_size": b.nbytes},
                },
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    response = client.post(
        "/v2/models/addmul/infer",
        data=header + a.tobytes() + b.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header))},
        content_type="application/octet-stream",
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    data = response.get_data()
    split = int(response.headers["Inference-Header-Content-Length"])
    body = json.loads(data[:split])
    sizes = [o["parameters"]["binary_data_size"] for o in body["outputs"]]
    assert [o["name"] for o in body["outputs"]] == ["sum", "product"] and "data" not in body[
        "outputs"
    ][0]
    raw = data[split:]
    assert np.frombuffer(raw[: sizes[0]], dtype=np.float32).tolist() == (a + b).reshape(-1).tolist()
    assert raw[sizes[0] :] == tensor_bytes(a * b)


def test_binary_data_left_unclaimed_is_400(client: FlaskClient) -> None:
    header = json.dumps({"inputs": ADDMUL_INPUTS}).encode()
    response = client.post(
        "/v2/models/addmul/infer",
        data=header + b"\x00" * 8,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert error_of(response, 400)["code"] == "infer-bad-request"


def test_a_map_input_is_described_and_sent_as_json(client: FlaskClient) -> None:
    meta = client.get("/v2/models/vectorizer").get_json()
    assert meta["inputs"] == [{"name": "features", "datatype": "JSON", "shape": []}]
    body = {"inputs": [{"name": "features", "datatype": "JSON", "shape": [], "data": {"b": 4}}]}
    (vector,) = infer(client, "vectorizer", body).get_json()["outputs"]
    assert vector["data"] == [0.0, 4.0, 0.0]
