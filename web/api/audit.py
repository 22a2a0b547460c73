"""Audit routes of /api/v1: a model's history, an account's, a tx's, and events by filter.

Answers come from the chain alone (market.audit); event pages are oldest first and carry a
`next_cursor` that a reorg invalidates loudly (409 audit-cursor-stale) rather than silently.
"""

from __future__ import annotations

from flask import Response, jsonify, request

from modelchain.market import audit
from modelchain.web.api import bp, node
from modelchain.web.api.models import query_int


def _optional_height(name: str) -> int | None:
    return query_int(name, -1) if name in request.args else None


@bp.get("/audit/models/<name>")
def audit_model(name: str) -> Response:
    return jsonify(audit.model_history(node().chain, name, limit=query_int("limit", 20)))


@bp.get("/audit/accounts/<account>")
def audit_account(account: str) -> Response:
    return jsonify(audit.account_history(node().chain, account, limit=query_int("limit", 20)))


@bp.get("/audit/txs/<txid>")
def audit_tx(txid: str) -> Response:
    return jsonify(audit.tx_audit(node().chain, txid))


@bp.get("/audit/events")
def audit_events() -> Response:
    query = audit.EventQuery(
        contract=request.args.get("contract", ""),
        type=request.args.get("type", ""),
        model=request.args.get("model", ""),
        version=request.args.get("version", ""),
        account=request.args.get("account", ""),
        from_height=_optional_height("from_height"),
        to_height=_optional_height("to_height"),
    )
    page = audit.list_events(
        node().chain,
        query,
        limit=query_int("limit", 50),
        cursor=request.args.get("cursor", ""),
    )
    return jsonify(page)
