"""Model routes of /api/v1: upload, dry run, catalog, model and version pages, files by hash.

An upload is either multipart/form-data (parts `file` and `tx`, the signed registration
as JSON) or the file itself as application/octet-stream with the tx, base64url-encoded
JSON, in the X-Modelchain-Tx header (what the CLI streams). A dry run takes the file alone.
"""

from __future__ import annotations

import base64
import binascii
from typing import BinaryIO

from flask import Response, jsonify, request, send_file

from modelchain.chain.errors import ModelchainError
from modelchain.market import catalog
from modelchain.market.explorer import BadQuery
from modelchain.market.upload import UploadBadTx, parse_tx_json
from modelchain.web.api import BadRequestBody, bp, node

TX_HEADER = "X-Modelchain-Tx"
UPLOAD_OVERHEAD_BYTES = 1024 * 1024
"""Room above the model size limit for multipart framing and the tx part, so a file over
the limit is refused by the store as model-too-large, naming the limit."""
MAX_TX_PART_BYTES = 1024 * 1024


class UploadBadContentType(ModelchainError):
    code = "upload-bad-content-type"
    http_status = 415


def query_int(name: str, default: int) -> int:
    """An integer query parameter; bounds are the market layer's to check (query-invalid)."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or len(raw) > 15:
        raise BadQuery(f"query parameter {name}={raw!r} must be a non-negative integer")
    return int(raw)


def query_flag(name: str) -> bool:
    raw = request.args.get(name, "0")
    if raw not in ("0", "1", "true", "false"):
        raise BadQuery(f"query parameter {name}={raw!r} must be 0, 1, true or false")
    return raw in ("1", "true")


def _allow_model_sized_body() -> None:
    request.max_content_length = node().config.max_upload_bytes + UPLOAD_OVERHEAD_BYTES


def _model_stream() -> BinaryIO:
    """The model file's bytes from a multipart `file` part or an octet-stream body."""
    if request.mimetype == "multipart/form-data":
        part = request.files.get("file")
        if part is None:
            raise BadRequestBody("send the model file as the multipart part `file`")
        return part.stream
    if request.mimetype == "application/octet-stream":
        return request.stream
    raise UploadBadContentType(
        "send the model as multipart/form-data (part `file`) or as application/octet-stream"
    )


def _tx_bytes() -> bytes:
    """The signed registration tx's JSON: the multipart `tx` part or the X-Modelchain-Tx header."""
    if request.mimetype == "multipart/form-data":
        text = request.form.get("tx")
        if text is not None:
            return text.encode("utf-8")
        part = request.files.get("tx")
        if part is None:
            raise UploadBadTx("send the signed registry.register tx as the multipart part `tx`")
        return part.stream.read(MAX_TX_PART_BYTES)
    header = request.headers.get(TX_HEADER)
    if not header:
        raise UploadBadTx(f"send the signed registry.register tx in the {TX_HEADER} header")
    try:
        return base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
    except (binascii.Error, ValueError):
        raise UploadBadTx(f"the {TX_HEADER} header is not base64url") from None


@bp.post("/models")
def models_upload() -> tuple[Response, int]:
    """Store a model file and admit its signed registration tx: both or neither."""
    _allow_model_sized_body()
    stream = _model_stream()
    tx = parse_tx_json(_tx_bytes())
    result = node().uploads.upload(stream, tx)
    return jsonify(result.to_json()), 202


@bp.post("/models/inspect")
def models_inspect() -> Response:
    """Dry run: validate a model file and return its sha256, size and signature."""
    _allow_model_sized_body()
    return jsonify(node().uploads.inspect(_model_stream()).to_json())


@bp.get("/models")
def models_list() -> Response:
    result = catalog.search_versions(
        node().chain,
        q=request.args.get("q", ""),
        tag=request.args.get("tag", ""),
        owner=request.args.get("owner", ""),
        sort=request.args.get("sort", "newest"),
        limit=query_int("limit", 20),
        offset=query_int("offset", 0),
        include_deprecated=query_flag("deprecated"),
        has_file=node().models.has,
    )
    return jsonify(result)


@bp.get("/models/<name>")
def models_get(name: str) -> Response:
    return jsonify(catalog.model_detail(node().chain, name, has_file=node().models.has))


@bp.get("/models/<name>/versions/<version>")
def models_get_version(name: str, version: str) -> Response:
    detail = catalog.version_detail(node().chain, name, version, has_file=node().models.has)
    return jsonify(detail)


@bp.get("/models/files/<sha256>")
def models_download_file(sha256: str) -> Response:
    """The model file with this sha256, if this node holds it and its bytes still verify."""
    found = catalog.open_model_file(node().chain, node().models, sha256)
    response = send_file(
        found.file,
        mimetype="application/octet-stream",
        as_attachment=True,
        download_name=found.download_name,
        etag=found.sha256,
        max_age=365 * 24 * 3600,  # content-addressed: these bytes never change
    )
    response.headers["X-Modelchain-Sha256"] = found.sha256
    return response
