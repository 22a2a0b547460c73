"""The explorer pages: latest blocks and txs (updated live in the browser), a block, a tx,
an account, the mempool, and a chart of block times and difficulty.

Pages render from the same `market.explorer` / `market.audit` queries as the JSON API;
web/static/js/explorer.js then polls that API to keep the index live.
"""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request
from werkzeug.wrappers import Response

from modelchain.chain.keys import is_account
from modelchain.market import audit, explorer
from modelchain.market.explorer import BadQuery
from modelchain.web.ui import bp, node

LATEST_BLOCKS = 10
CHART_BLOCKS = 60


def _latest_txs(blocks: list[dict[str, Any]], limit: int = 15) -> list[dict[str, Any]]:
    """The newest txs of these blocks (newest block first, its txs in block order)."""
    txs: list[dict[str, Any]] = []
    for summary in blocks:
        detail = explorer.block_detail(node().chain, summary["hash"])
        for tx in detail["txs"]:
            txs.append(tx | {"height": summary["height"], "block_hash": summary["hash"]})
            if len(txs) >= limit:
                return txs
    return txs


@bp.get("/explorer")
def explorer_index() -> str:
    chain = node().chain
    blocks = explorer.latest_blocks(chain, LATEST_BLOCKS)
    return render_template(
        "ui/explorer.html",
        info=explorer.chain_info(chain),
        blocks=blocks,
        txs=_latest_txs(blocks),
        chart_blocks=CHART_BLOCKS,
    )


@bp.get("/explorer/search")
def explorer_search() -> Response:
    """A height, block hash, txid or account: to its page."""
    query = request.args.get("q", "").strip().lower()
    chain = node().chain
    if query.isdigit():
        return redirect(f"/explorer/block/{query}")
    if len(query) == 64 and all(c in "0123456789abcdef" for c in query):
        if chain.get_block(query) is not None:
            return redirect(f"/explorer/block/{query}")
        if chain.store.tx_location(query) is not None or chain.mempool.get(query) is not None:
            return redirect(f"/explorer/tx/{query}")
        if is_account(query):
            return redirect(f"/explorer/account/{query}")
    raise BadQuery(f"{query!r} is not a height, block hash, txid or account")


@bp.get("/explorer/block/<ref>")
def explorer_block(ref: str) -> str:
    return render_template("ui/explorer_block.html", block=explorer.block_detail(node().chain, ref))


@bp.get("/explorer/tx/<txid>")
def explorer_tx(txid: str) -> str:
    return render_template("ui/explorer_tx.html", detail=explorer.tx_detail(node().chain, txid))


@bp.get("/explorer/account/<account>")
def explorer_account(account: str) -> str:
    history = audit.account_history(node().chain, account, limit=50)
    return render_template("ui/explorer_account.html", account=account, history=history)


@bp.get("/explorer/mempool")
def explorer_mempool() -> str:
    return render_template("ui/explorer_mempool.html", mempool=explorer.mempool_list(node().chain))
