"""Receipt routes of /api/v1: the receipts this node signed, and a verifier for any receipt.

Verifying needs nothing of the node's state: the same check runs offline in
`market.receipts` (and in `modelchain receipt verify`).
"""

from __future__ import annotations

from flask import Response, jsonify, request

from modelchain.chain.keys import is_account
from modelchain.contracts.grammar import is_hash_hex
from modelchain.market.explorer import BadQuery
from modelchain.market.receipts import receipt_problem
from modelchain.web.api import bp, json_body, node


@bp.get("/receipts/<receipt_id>")
def get_receipt(receipt_id: str) -> Response:
    return jsonify(node().payments.receipt(receipt_id))


@bp.get("/receipts")
def list_receipts() -> Response:
    """?txid=T or ?channel=C: ids of the receipts for one payment tx or one channel."""
    txid, channel = request.args.get("txid"), request.args.get("channel")
    if (txid is None) == (channel is None):
        raise BadQuery("give exactly one of txid= or channel=")
    value = txid if txid is not None else channel
    if not is_hash_hex(value):
        raise BadQuery(f"{value!r} is not 64 lowercase hex")
    ids = node().payments.receipt_ids(txid=txid, channel=channel)
    return jsonify({"receipts": ids})


@bp.post("/receipts/verify")
def verify_receipt() -> Response:
    """Body: a receipt. ?node=A also requires that node A signed it. Answers {valid, reason}."""
    account = request.args.get("node")
    if account is not None and not is_account(account):
        raise BadQuery(f"node={account!r} is not an account (64 lowercase hex)")
    problem = receipt_problem(json_body(), account)
    return jsonify({"valid": problem is None, "reason": problem})
