"""The Open Inference Protocol (KServe/Triton v2 REST) face of the node.

Server and model metadata, health and readiness, and inference: views parse the request, ask
the inference service to resolve, check and run it, and shape the v2 answer (JSON, or the
binary tensor extension when the client asks for it). A priced version is never run here
without the payments service taking its payment first.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

import modelchain
from modelchain.chain.errors import ModelchainError
from modelchain.contracts.registry import VersionInfo, list_versions
from modelchain.market.inference import InferenceService, PreparedCall
from modelchain.market.node import MarketNode
from modelchain.market.tensors import (
    JSON_DATATYPE,
    InferBadRequest,
    InferenceError,
    datatype_for_elem_type,
    output_tensor_bytes,
    v2_shape,
)
from modelchain.models_store.signature import OptionalType, TensorType, ValueInfo

bp = Blueprint("inference", __name__, url_prefix="/v2")

PLATFORM = "onnxruntime_onnx"
HEADER_LENGTH = "Inference-Header-Content-Length"
"""The binary tensor extension's header: bytes of JSON before the binary data."""
EXTENSIONS = ["binary_tensor_data", "modelchain_payments"]


class InferRequestTooLarge(InferenceError):
    code = "infer-request-too-large"
    http_status = 413


class PaymentRequired(ModelchainError):
    """A priced version asked of a node without a payments service; detail has the quote."""

    code = "payment-required"
    http_status = 402


def node() -> MarketNode:
    return current_app.extensions["modelchain"]


def service() -> InferenceService:
    return node().inference


# --- server --------------------------------------------------------------------------------


@bp.get("")
def server_metadata() -> Response:
    return jsonify(
        {"name": "modelchain", "version": modelchain.__version__, "extensions": EXTENSIONS}
    )


@bp.get("/health/live")
def live() -> Response:
    return jsonify({"live": True})


@bp.get("/health/ready")
def ready() -> Response:
    return jsonify({"ready": True})


# --- models --------------------------------------------------------------------------------


@bp.get("/models/<name>")
@bp.get("/models/<name>/versions/<version>")
def model_metadata(name: str, version: str | None = None) -> Response:
    """The model's inputs and outputs as registered; deprecated versions too."""
    chain = node().chain
    info = service().resolve_at_tip(chain, name, version, runnable=False)
    with chain.lock:
        versions = list(list_versions(chain.store, name))
    signature = service().signature_of(info)
    return jsonify(
        {
            "name": name,
            "versions": versions,
            "platform": PLATFORM,
            "inputs": [describe_value(value) for value in signature.inputs],
            "outputs": [describe_value(value) for value in signature.outputs],
            "parameters": _version_parameters(info),
        }
    )


@bp.get("/models/<name>/ready")
@bp.get("/models/<name>/versions/<version>/ready")
def model_ready(name: str, version: str | None = None) -> Response:
    """200 when the version can run here; otherwise the error saying why not."""
    info = _resolve_runnable(name, version)
    service().signature_of(info)
    service().require_file(info)
    return jsonify({"name": name, "version": info.version, "ready": True})


@bp.post("/models/<name>/infer")
@bp.post("/models/<name>/versions/<version>/infer")
def infer(name: str, version: str | None = None) -> Response:
    body, binary = _read_infer_request(node().config.max_request_bytes)
    info = _resolve_runnable(name, version)
    prepared = service().prepare(info, body, binary)
    if prepared.price == 0:
        result = service().run(prepared)
        answer: dict[str, Any] = {"model_name": prepared.model, "model_version": prepared.version}
        if prepared.request_id is not None:
            answer["id"] = prepared.request_id
        answer["outputs"] = result.outputs
        answer["parameters"] = {
            "model_sha256": prepared.sha256,
            "request_hash": prepared.request_hash,
            "output_hash": result.output_hash,
        }
    else:
        payments = getattr(node(), "payments", None)
        if payments is None:
            raise PaymentRequired(
                f"{prepared.model}@{prepared.version} costs {prepared.price} per call",
                quote=_quote(prepared),
            )
        answer = payments.infer_paid(prepared, service().run)
    return _respond(answer, prepared.binary_outputs)


def describe_value(value: ValueInfo) -> dict[str, Any]:
    """A registered input or output as v2 metadata: tensors by datatype and shape (-1 for a
    symbolic or unknown dim), anything else as a JSON value of shape []."""
    kind = value.type.elem if isinstance(value.type, OptionalType) else value.type
    if not isinstance(kind, TensorType):
        return {"name": value.name, "datatype": JSON_DATATYPE, "shape": []}
    datatype = datatype_for_elem_type(kind.elem_type)
    return {
        "name": value.name,
        "datatype": datatype.name if datatype is not None else kind.elem_type.upper(),
        "shape": v2_shape(kind.shape),
    }


def _version_parameters(info: VersionInfo) -> dict[str, Any]:
    return {
        "version": info.version,
        "sha256": info.sha256,
        "price": info.price,
        "deprecated": info.deprecated,
        "successor": info.successor,
    }


def _resolve_runnable(name: str, version: str | None) -> VersionInfo:
    return service().resolve_at_tip(node().chain, name, version)


def _quote(prepared: PreparedCall) -> dict[str, Any]:
    return {
        "price": prepared.price,
        "node": node().account,
        "model": prepared.model,
        "version": prepared.version,
        "sha256": prepared.sha256,
        "request": prepared.request_hash,
    }


# --- the wire --------------------------------------------------------------------------------


def _read_infer_request(limit: int) -> tuple[Any, bytes]:
    """The JSON header and the binary part of an inference request (binary tensor extension:
    the header's length is in Inference-Header-Content-Length)."""
    length = request.content_length
    if length is not None and length > limit:
        raise InferRequestTooLarge(
            f"the request body is {length} bytes, over the node's {limit}-byte limit",
            limit=limit,
        )
    request.max_content_length = limit  # a body without Content-Length is cut off too
    data = request.get_data(cache=False)
    header_length = request.headers.get(HEADER_LENGTH)
    binary = b""
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(data):
            raise InferBadRequest(
                f"{HEADER_LENGTH} must be a byte count within the {len(data)}-byte body"
            )
        split = int(header_length)
        data, binary = data[:split], data[split:]
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise InferBadRequest("the request is not JSON") from None
    return body, binary


def _respond(answer: dict[str, Any], binary_outputs: frozenset[str]) -> Response:
    """The v2 response: JSON, or a JSON header followed by the binary outputs' bytes."""
    if not binary_outputs:
        return jsonify(answer)
    chunks: list[bytes] = []
    outputs = []
    for output in answer["outputs"]:
        if output["name"] in binary_outputs and output["datatype"] != JSON_DATATYPE:
            raw = output_tensor_bytes(output)
            output = {key: value for key, value in output.items() if key != "data"}
            output["parameters"] = {**output.get("parameters", {}), "binary_data_size": len(raw)}
            chunks.append(raw)
        outputs.append(output)
    header = current_app.json.dumps({**answer, "outputs": outputs}).encode("utf-8")
    response = Response(header + b"".join(chunks), mimetype="application/octet-stream")
    response.headers[HEADER_LENGTH] = str(len(header))
    return response
