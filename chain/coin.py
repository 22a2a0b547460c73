"""The built-in `coin` contract: transfer base units between accounts.

It is the one contract the chain carries itself, so the ledger works with no
`contracts/` package plugged in.
"""

from __future__ import annotations

from typing import Any

from modelchain.chain.contract import CallContext, ContractView
from modelchain.chain.errors import TxBadCall
from modelchain.chain.keys import is_account
from modelchain.chain.params import MAX_AMOUNT


class CoinContract:
    """`coin.transfer {to, amount}`: the sender pays `amount` to `to`."""

    name = "coin"

    def check_call(self, method: str, args: dict[str, Any]) -> None:
        if method != "transfer":
            raise TxBadCall(f"coin has no method {method!r} (it has: transfer)")
        if set(args) != {"to", "amount"}:
            raise TxBadCall(f"coin.transfer takes args to, amount; got {sorted(args)}")
        if not is_account(args["to"]):
            raise TxBadCall("coin.transfer: `to` must be an account (64 lowercase hex)")
        amount = args["amount"]
        if type(amount) is not int or not 0 < amount <= MAX_AMOUNT:
            raise TxBadCall(f"coin.transfer: amount must be in 1..{MAX_AMOUNT}, got {amount!r}")

    def max_spend(self, method: str, args: dict[str, Any]) -> int:
        return int(args["amount"])

    def execute(
        self, view: ContractView, ctx: CallContext, method: str, args: dict[str, Any]
    ) -> None:
        view.transfer(ctx.sender, args["to"], args["amount"])
        view.emit(
            "transfer",
            {"from": ctx.sender, "to": args["to"], "amount": args["amount"]},
            (("account", ctx.sender), ("account", args["to"])),
        )
