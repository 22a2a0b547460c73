"""The JSON API at /api/v1: chain, blocks, txs, accounts, mempool, dev mining.

Views parse the request, call `market`, and return JSON; errors raise our
typed exceptions and the app's handler shapes them. Every other module of
this package adds its routes to the same blueprint (models, audit, channels,
receipts ...); `load_route_modules` imports them all.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from modelchain.chain.block import decode_block
from modelchain.chain.errors import ModelchainError
from modelchain.chain.tx import tx_from_json
from modelchain.market import explorer
from modelchain.market.node import MarketNode

bp = Blueprint("api", __name__, url_prefix="/api/v1")


class BadRequestBody(ModelchainError):
    code = "request-invalid"


class FeatureDisabled(ModelchainError):
    code = "feature-disabled"
    http_status = 403


def node() -> MarketNode:
    return current_app.extensions["modelchain"]


def json_body() -> Any:
    """The request's JSON body; raises BadRequestBody naming what is wrong."""
    if not request.is_json:
        raise BadRequestBody("send a JSON body with Content-Type: application/json")
    body = request.get_json(silent=True)
    if body is None:
        raise BadRequestBody("the body is not valid JSON")
    return body


def int_arg(name: str, default: int | None, low: int = 0, high: int = 2**53 - 1) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise explorer.BadQuery(
            f"query parameter {name}={raw!r} must be an integer in {low}..{high}"
        )
    return int(raw)


@bp.get("/chain")
def get_chain() -> Response:
    info = explorer.chain_info(node().chain)
    info["node_account"] = node().account
    info["channel_margin_blocks"] = node().payments.policy.margin_blocks
    return jsonify(info)


@bp.get("/blocks")
def list_blocks() -> Response:
    limit = int_arg("limit", 20, 1, explorer.MAX_PAGE)
    before = int_arg("before", None)
    assert limit is not None
    return jsonify({"blocks": explorer.latest_blocks(node().chain, limit, before)})


@bp.get("/blocks/<ref>")
def get_block(ref: str) -> Response:
    return jsonify(explorer.block_detail(node().chain, ref))


@bp.get("/blocks/<ref>/raw")
def get_block_raw(ref: str) -> Response:
    block = explorer.find_block(node().chain, ref)
    return Response(block.to_bytes(), mimetype="application/octet-stream")


@bp.post("/blocks")
def submit_block() -> tuple[Response, int]:
    if request.mimetype != "application/octet-stream":
        raise BadRequestBody("send the block's bytes as application/octet-stream")
    block = decode_block(request.get_data(), node().params.max_block_bytes + 1024)
    result = node().chain.submit_block(block)
    status = 202 if result.status in ("orphan",) else 200
    return jsonify(
        {
            "hash": result.hash,
            "status": result.status,
            "code": result.code,
            "height": node().chain.height,
        }
    ), status


@bp.post("/txs")
def submit_tx() -> tuple[Response, int]:
    tx = tx_from_json(json_body())
    result = node().submit_tx(tx)
    return jsonify({"txid": tx.txid, "status": result.status, "replaced": result.replaced}), 202


@bp.get("/txs/<txid>")
def get_tx(txid: str) -> Response:
    return jsonify(explorer.tx_detail(node().chain, txid))


@bp.get("/accounts/<account>")
def get_account(account: str) -> Response:
    return jsonify(explorer.account_info(node().chain, account))


@bp.get("/mempool")
def get_mempool() -> Response:
    limit = int_arg("limit", 100, 1, explorer.MAX_PAGE)
    assert limit is not None
    return jsonify(explorer.mempool_list(node().chain, limit))


@bp.post("/mine")
def mine() -> tuple[Response, int]:
    """Dev and regtest networks: ask the node's miner for blocks."""
    if not node().config.faucet_enabled:
        raise FeatureDisabled("mining on request is for dev and regtest networks only")
    body = json_body() if request.content_length else {}
    count = body.get("blocks", 1) if isinstance(body, dict) else None
    if type(count) is not int or not 1 <= count <= 100:
        raise BadRequestBody("blocks must be an integer in 1..100")
    node().request_blocks(count)
    return jsonify({"requested": count, "height": node().chain.height}), 202


def load_route_modules() -> None:
    """Import every module of this package so its routes land on `bp`."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
