"""One JSON error body for every failure: {"error": {"code", "message", ...}}.

Our exceptions carry their own code and HTTP status; routing errors and
oversize bodies get a code too; anything unexpected is logged and answered
with a JSON 500 that shows no traceback. Under /v2 the body follows the Open
Inference Protocol, whose clients read `error` as a string: there it is
{"error": message, "code": code, ...details beside them}.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from modelchain.chain.errors import ModelchainError

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad-request",
    404: "not-found",
    405: "method-not-allowed",
    411: "length-required",
    413: "request-too-large",
    415: "unsupported-media-type",
    429: "too-many-requests",
}


def error_response(status: int, code: str, message: str, **detail: Any) -> Response:
    if request.path.startswith("/v2"):
        # the Open Inference Protocol's error shape, so tritonclient & co. can show it
        response = jsonify({"error": message, "code": code, **detail})
    else:
        body: dict[str, Any] = {"code": code, "message": message}
        body.update(detail)
        response = jsonify({"error": body})
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ModelchainError)
    def handle_ours(error: ModelchainError) -> Response:
        return error_response(error.http_status, error.code, error.message, **error.detail)

    @app.errorhandler(HTTPException)
    def handle_http(error: HTTPException) -> Response | HTTPException:
        status = error.code or 500
        if not _wants_json():
            return error
        code = HTTP_CODES.get(status, f"http-{status}")
        message = error.description or code
        if status == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH")
            message = f"the request body is over the {limit}-byte limit"
        return error_response(status, code, message)

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal-error", "the node failed to answer; see its log")


def _wants_json() -> bool:
    path = request.path
    return path.startswith("/api/") or path.startswith("/v2")
