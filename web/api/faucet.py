"""The dev faucet: POST /api/v1/faucet {account} sends the dev wallet's coins to a new user.

Dev and regtest networks only (their dev wallet's seed is public anyway): the node signs
a `coin.transfer` of `faucet_amount` from the dev wallet and submits it like any tx. One
lock serializes the faucet so that two requests never take the same nonce.
"""

from __future__ import annotations

import threading

from flask import Response, jsonify

from modelchain.chain.keys import is_account
from modelchain.market.client import sign_call
from modelchain.market.config import dev_wallet
from modelchain.web.api import BadRequestBody, FeatureDisabled, bp, json_body, node

_faucet_lock = threading.Lock()


@bp.post("/faucet")
def faucet() -> tuple[Response, int]:
    """Send `faucet_amount` base units from the dev wallet to `account`; 202 with the txid."""
    market = node()
    if not market.config.faucet_enabled:
        raise FeatureDisabled("the faucet is for dev and regtest networks only")
    body = json_body()
    account = body.get("account") if isinstance(body, dict) else None
    if not is_account(account):
        raise BadRequestBody("account must be 64 lowercase hex characters (a public key)")
    amount = market.config.faucet_amount
    key = dev_wallet()
    with _faucet_lock:
        nonce = market.chain.pending_nonce(key.account)
        tx = sign_call(
            key,
            market.params.chain_id,
            nonce,
            "coin",
            "transfer",
            {"to": account, "amount": amount},
        )
        result = market.submit_tx(tx)
    return jsonify(
        {"txid": tx.txid, "account": account, "amount": amount, "status": result.status}
    ), 202
