"""The `usage_fee` contract: pay for one inference of a model version, split by its terms.

The payer signs the exact amount; it must equal the version's price in the
block that includes the tx, so a price change never takes money the payer
did not sign for. The event binds payer, version, node and request hash.
"""

from __future__ import annotations

from typing import Any

from modelchain.chain.contract import CallContext, ContractView
from modelchain.chain.keys import is_account
from modelchain.contracts.errors import (
    UsageBadAmount,
    UsageBadArgs,
    UsageBadModel,
    UsageBadNode,
    UsageBadRequest,
    UsageBadVersion,
    UsageDeprecatedVersion,
    UsageFreeVersion,
    UsageUnknownMethod,
    UsageUnknownVersion,
    UsageWrongPrice,
)
from modelchain.contracts.grammar import (
    is_amount,
    is_hash_hex,
    is_model_name,
    is_version,
    validate_arg_names,
)
from modelchain.contracts.registry import (
    REGISTRY,
    VersionInfo,
    account_index,
    version_index,
    version_key,
)
from modelchain.contracts.split import compute_shares

USAGE_FEE = "usage_fee"
"""The contract's name."""

PAY_ARGS = frozenset({"model", "version", "amount", "node", "request"})


class UsageFeeContract:
    """`usage_fee.pay {model, version, amount, node, request}` (docs/contracts.md#usage_fee)."""

    name = USAGE_FEE

    def check_call(self, method: str, args: dict[str, Any]) -> None:
        """Raises a UsageBadCall subclass naming the first broken shape rule."""
        if method != "pay":
            raise UsageUnknownMethod(f"usage_fee has no method {method!r} (it has: pay)")
        where = "usage_fee.pay"
        validate_arg_names(where, args, PAY_ARGS, UsageBadArgs)
        if not is_model_name(args["model"]):
            raise UsageBadModel(f"{where}: model {args['model']!r} is not a model name")
        if not is_version(args["version"]):
            raise UsageBadVersion(f"{where}: version {args['version']!r} is not a version")
        if not is_amount(args["amount"], minimum=1):
            raise UsageBadAmount(
                f"{where}: amount must be a positive integer, got {args['amount']!r}"
            )
        if not is_account(args["node"]):
            raise UsageBadNode(f"{where}: node {args['node']!r} is not an account")
        if not is_hash_hex(args["request"]):
            raise UsageBadRequest(f"{where}: request must be a sha256 as 64 lowercase hex")

    def max_spend(self, method: str, args: dict[str, Any]) -> int:
        return int(args["amount"])

    def execute(
        self, view: ContractView, ctx: CallContext, method: str, args: dict[str, Any]
    ) -> None:
        """Move `amount` from the payer to the version's owners and the node, or raise."""
        model, version, amount, node = args["model"], args["version"], args["amount"], args["node"]
        record = view.read(REGISTRY, version_key(model, version))
        if record is None:
            raise UsageUnknownVersion(f"{model}@{version} is not registered")
        info = VersionInfo.from_json(record)
        if info.deprecated:
            raise UsageDeprecatedVersion(f"{model}@{version} is deprecated")
        if info.price == 0:
            raise UsageFreeVersion(f"{model}@{version} is free: there is nothing to pay")
        if amount != info.price:
            raise UsageWrongPrice(f"{model}@{version} costs {info.price}, the tx pays {amount}")
        shares = compute_shares(amount, info.split, node)
        for share in shares:
            if share.amount:  # a zero share touches no account
                view.transfer(ctx.sender, share.account, share.amount)
        view.emit(
            "usage-paid",
            {
                "payer": ctx.sender,
                "model": model,
                "version": version,
                "sha256": info.sha256,
                "amount": amount,
                "node": node,
                "request": args["request"],
                "shares": [share.to_json() for share in shares],
            },
            version_index(model, version, info.sha256)
            + account_index(ctx.sender, *(share.account for share in shares)),
        )
