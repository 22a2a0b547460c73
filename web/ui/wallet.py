"""The wallet page: create, import, unlock, export a browser-held key; balance, history, faucet.

The server renders only the page's frame and what it knows publicly (network, whether the
faucet is on); the key lives in the browser (web/static/js/wallet.js), so nothing of it
ever reaches these views.
"""

from __future__ import annotations

from flask import render_template

from modelchain.web.ui import bp, node


@bp.get("/wallet")
def wallet_page() -> str:
    config = node().config
    return render_template(
        "ui/wallet.html",
        chain_id=node().params.chain_id,
        network=config.network,
        faucet_enabled=config.faucet_enabled,
        faucet_amount=config.faucet_amount,
    )
