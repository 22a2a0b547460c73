"""Channel routes of /api/v1: a channel as this node sees it, channels of an account, claims.

A channel's record is on-chain; what the node adds is the highest voucher it
accepted, what it has claimed, and any claim tx still waiting in its mempool.
"""

from __future__ import annotations

from flask import Response, jsonify, request

from modelchain.chain.keys import is_account
from modelchain.contracts.grammar import is_hash_hex
from modelchain.market.explorer import MAX_PAGE, BadQuery
from modelchain.web.api import bp, int_arg, node


def _channel_id(channel_id: str) -> str:
    if not is_hash_hex(channel_id):
        raise BadQuery(f"{channel_id!r} is not a channel id (64 lowercase hex)")
    return channel_id


@bp.get("/channels/<channel_id>")
def get_channel_status(channel_id: str) -> Response:
    return jsonify(node().payments.channel_status(_channel_id(channel_id)))


@bp.get("/channels")
def list_channels() -> Response:
    """?account=A: channels A pays or serves, newest first; none: those with vouchers here."""
    account = request.args.get("account")
    if account is not None and not is_account(account):
        raise BadQuery(f"account={account!r} is not an account (64 lowercase hex)")
    limit = int_arg("limit", 50, 1, MAX_PAGE)
    assert limit is not None
    return jsonify({"channels": node().payments.list_channels(account, limit)})


@bp.post("/channels/<channel_id>/claim")
def claim_channel(channel_id: str) -> tuple[Response, int]:
    """Claim the highest accepted voucher now (the node's claim loop normally does it)."""
    return jsonify(node().payments.claim_now(_channel_id(channel_id))), 202
