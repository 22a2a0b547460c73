"""The Open Inference Protocol (KServe/Triton v2 REST) face of the node.

Health endpoints now; model metadata and inference arrive with the model
services.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

bp = Blueprint("inference", __name__, url_prefix="/v2")


@bp.get("/health/live")
def live() -> Response:
    return jsonify({"live": True})


@bp.get("/health/ready")
def ready() -> Response:
    return jsonify({"ready": True})
