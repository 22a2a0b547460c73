"""Peer routes of /api/v1: the node's peers, and what its peers ask when they sync.

A peer asks `GET /sync/status` (tip, work, locator), then pulls blocks with
`POST /sync/blocks` (the blocks after its locator's fork point), lists the mempool
with `GET /sync/mempool`, and pushes with the routes everyone uses:
`POST /blocks`, `POST /txs`; model files come from `GET /models/files/<sha256>`.
See docs/network.md.
"""

from __future__ import annotations

from flask import Response, jsonify

from modelchain.chain.peers import validate_locator
from modelchain.market import network
from modelchain.web.api import BadRequestBody, bp, int_arg, json_body, node

SYNC_BODY_KEYS = frozenset({"locator", "max_blocks"})


@bp.get("/peers")
def peers_list() -> Response:
    """The peers this node knows, their state and ban scores."""
    peers = node().network.peer_list()
    return jsonify({"peers": [peer.to_json() for peer in peers]})


@bp.get("/sync/status")
def sync_status() -> Response:
    return jsonify(node().network.sync_status())


@bp.post("/sync/blocks")
def sync_blocks() -> Response:
    body = json_body()
    if not isinstance(body, dict):
        raise BadRequestBody("send a JSON object with `locator` (and `max_blocks`)")
    unknown = sorted(set(body) - SYNC_BODY_KEYS)
    if unknown:
        raise BadRequestBody(f"unknown keys {unknown}; expected `locator` and `max_blocks`")
    locator = validate_locator(body.get("locator"))
    max_blocks = body.get("max_blocks", network.SYNC_BATCH_BLOCKS)
    if type(max_blocks) is not int or not 1 <= max_blocks <= network.MAX_SYNC_BLOCKS:
        raise BadRequestBody(f"max_blocks must be an integer in 1..{network.MAX_SYNC_BLOCKS}")
    return jsonify(network.blocks_after_locator(node().chain, locator, max_blocks))


@bp.get("/sync/mempool")
def sync_mempool() -> Response:
    limit = int_arg("limit", network.MAX_MEMPOOL_IDS, 1, network.MAX_MEMPOOL_IDS)
    assert limit is not None
    return jsonify(network.mempool_txids(node().chain, limit))
