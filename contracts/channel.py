"""The `channel` contract: escrow between a payer and a serving node for one model version.

The payer deposits into the channel's escrow and signs vouchers for growing
cumulative amounts off-chain; the node claims the latest voucher before the
expiry height, each claim split like a per-call fee; after expiry the payer
takes back whatever was not claimed, and the channel closes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelchain.chain.contract import CallContext, ContractView
from modelchain.chain.keys import is_account
from modelchain.chain.params import MAX_AMOUNT
from modelchain.contracts.errors import (
    ChannelBadAmount,
    ChannelBadArgs,
    ChannelBadExpiry,
    ChannelBadId,
    ChannelBadModel,
    ChannelBadNode,
    ChannelBadSig,
    ChannelBadVersion,
    ChannelClosed,
    ChannelDepositTooLarge,
    ChannelDeprecatedVersion,
    ChannelExpired,
    ChannelExpiryEarlier,
    ChannelExpiryPassed,
    ChannelFreeVersion,
    ChannelNotExpired,
    ChannelNotNode,
    ChannelNotPayer,
    ChannelTopupNoop,
    ChannelUnknown,
    ChannelUnknownMethod,
    ChannelUnknownVersion,
    ChannelVoucherInvalid,
    ChannelVoucherOverDeposit,
    ChannelVoucherStale,
)
from modelchain.contracts.grammar import (
    is_amount,
    is_hash_hex,
    is_model_name,
    is_sig_hex,
    is_version,
    validate_arg_names,
)
from modelchain.contracts.registry import (
    REGISTRY,
    StorageReader,
    VersionInfo,
    account_index,
    version_index,
    version_key,
)
from modelchain.contracts.split import compute_shares
from modelchain.contracts.voucher import verify_voucher

CHANNEL = "channel"
"""The contract's name."""

_METHOD_ARGS: dict[str, frozenset[str]] = {
    "open": frozenset({"model", "version", "node", "deposit", "expiry"}),
    "topup": frozenset({"channel", "deposit", "expiry"}),
    "claim": frozenset({"channel", "amount", "sig"}),
    "refund": frozenset({"channel"}),
}


def channel_key(channel_id: str) -> str:
    """`channel/{id}` -> the channel's record (see ChannelInfo); kept after it closes."""
    return f"channel/{channel_id}"


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """A channel as stored."""

    id: str
    """The txid of the tx that opened it."""
    payer: str
    node: str
    """The only account that may claim; receives the node share of each claim."""
    model: str
    version: str
    sha256: str
    deposit: int
    """Everything the payer put in, opening deposit plus top-ups."""
    claimed: int
    """Cumulative amount paid out by claims: the highest voucher claimed."""
    expiry: int
    """Last block height at which the node may claim; the payer may refund after it."""
    opened_height: int
    closed: bool
    """True once refunded; a closed channel accepts nothing."""

    @property
    def remaining(self) -> int:
        """What the escrow still holds for this channel."""
        return 0 if self.closed else self.deposit - self.claimed

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> ChannelInfo:
        return cls(
            id=value["id"],
            payer=value["payer"],
            node=value["node"],
            model=value["model"],
            version=value["version"],
            sha256=value["sha256"],
            deposit=value["deposit"],
            claimed=value["claimed"],
            expiry=value["expiry"],
            opened_height=value["opened_height"],
            closed=value["closed"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "payer": self.payer,
            "node": self.node,
            "model": self.model,
            "version": self.version,
            "sha256": self.sha256,
            "deposit": self.deposit,
            "claimed": self.claimed,
            "expiry": self.expiry,
            "opened_height": self.opened_height,
            "closed": self.closed,
        }


def get_channel(reader: StorageReader, channel_id: str) -> ChannelInfo | None:
    """The channel opened by tx `channel_id`, or None."""
    if not is_hash_hex(channel_id):
        return None
    value = reader.read_storage(CHANNEL, channel_key(channel_id))
    return None if value is None else ChannelInfo.from_json(value)


def _index(info: ChannelInfo, *accounts: str) -> tuple[tuple[str, str], ...]:
    return (
        (("channel", info.id),)
        + version_index(info.model, info.version, info.sha256)
        + account_index(info.payer, info.node, *accounts)
    )


class ChannelContract:
    """open / topup / claim / refund (docs/contracts.md#channel)."""

    name = CHANNEL

    # --- stateless -----------------------------------------------------------

    def check_call(self, method: str, args: dict[str, Any]) -> None:
        """Raises a ChannelBadCall subclass naming the first broken shape rule."""
        if method not in _METHOD_ARGS:
            raise ChannelUnknownMethod(
                f"channel has no method {method!r} (it has: {', '.join(_METHOD_ARGS)})"
            )
        where = f"channel.{method}"
        validate_arg_names(where, args, _METHOD_ARGS[method], ChannelBadArgs)
        if method == "open":
            if not is_model_name(args["model"]):
                raise ChannelBadModel(f"{where}: model {args['model']!r} is not a model name")
            if not is_version(args["version"]):
                raise ChannelBadVersion(f"{where}: version {args['version']!r} is not a version")
            if not is_account(args["node"]):
                raise ChannelBadNode(f"{where}: node {args['node']!r} is not an account")
        else:
            if not is_hash_hex(args["channel"]):
                raise ChannelBadId(f"{where}: channel {args['channel']!r} is not a channel id")
        if method in ("open", "topup"):
            minimum = 1 if method == "open" else 0
            if not is_amount(args["deposit"], minimum=minimum):
                raise ChannelBadAmount(
                    f"{where}: deposit must be an integer in {minimum}..{MAX_AMOUNT}, "
                    f"got {args['deposit']!r}"
                )
            if not is_amount(args["expiry"]):
                raise ChannelBadExpiry(
                    f"{where}: expiry must be a block height, got {args['expiry']!r}"
                )
        if method == "claim":
            if not is_amount(args["amount"], minimum=1):
                raise ChannelBadAmount(
                    f"{where}: amount must be an integer in 1..{MAX_AMOUNT}, got {args['amount']!r}"
                )
            if not is_sig_hex(args["sig"]):
                raise ChannelBadSig(f"{where}: sig must be 128 lowercase hex characters")

    def max_spend(self, method: str, args: dict[str, Any]) -> int:
        return int(args["deposit"]) if method in ("open", "topup") else 0

    # --- stateful ------------------------------------------------------------

    def execute(
        self, view: ContractView, ctx: CallContext, method: str, args: dict[str, Any]
    ) -> None:
        handlers = {
            "open": self._open,
            "topup": self._topup,
            "claim": self._claim,
            "refund": self._refund,
        }
        handlers[method](view, ctx, args)

    def _open(self, view: ContractView, ctx: CallContext, args: dict[str, Any]) -> None:
        model, version, deposit, expiry = (
            args["model"],
            args["version"],
            args["deposit"],
            args["expiry"],
        )
        record = view.read(REGISTRY, version_key(model, version))
        if record is None:
            raise ChannelUnknownVersion(f"{model}@{version} is not registered")
        terms = VersionInfo.from_json(record)
        if terms.deprecated:
            raise ChannelDeprecatedVersion(f"{model}@{version} is deprecated")
        if terms.price == 0:
            raise ChannelFreeVersion(f"{model}@{version} is free: there is nothing to pay")
        if expiry <= ctx.height:
            raise ChannelExpiryPassed(f"expiry {expiry} is not after this block ({ctx.height})")
        info = ChannelInfo(
            id=ctx.txid,
            payer=ctx.sender,
            node=args["node"],
            model=model,
            version=version,
            sha256=terms.sha256,
            deposit=deposit,
            claimed=0,
            expiry=expiry,
            opened_height=ctx.height,
            closed=False,
        )
        view.transfer(ctx.sender, view.escrow_account(), deposit)
        view.put(channel_key(info.id), info.to_json())
        view.emit(
            "channel-opened",
            {
                "channel": info.id,
                "payer": info.payer,
                "node": info.node,
                "model": model,
                "version": version,
                "sha256": info.sha256,
                "deposit": deposit,
                "expiry": expiry,
            },
            _index(info),
        )

    def _load(self, view: ContractView, channel_id: str) -> ChannelInfo:
        value = view.get(channel_key(channel_id))
        if value is None:
            raise ChannelUnknown(f"no channel {channel_id[:16]}")
        info = ChannelInfo.from_json(value)
        if info.closed:
            raise ChannelClosed(f"channel {channel_id[:16]} is closed")
        return info

    def _topup(self, view: ContractView, ctx: CallContext, args: dict[str, Any]) -> None:
        added, expiry = args["deposit"], args["expiry"]
        info = self._load(view, args["channel"])
        if ctx.sender != info.payer:
            raise ChannelNotPayer(f"only the payer {info.payer[:16]} may top up")
        if expiry < info.expiry:
            raise ChannelExpiryEarlier(f"expiry {expiry} is before the current {info.expiry}")
        if expiry <= ctx.height:
            raise ChannelExpiryPassed(f"expiry {expiry} is not after this block ({ctx.height})")
        if added == 0 and expiry == info.expiry:
            raise ChannelTopupNoop("a top-up must add a deposit or extend the expiry")
        if info.deposit + added > MAX_AMOUNT:
            raise ChannelDepositTooLarge(
                f"deposit {info.deposit} + {added} would exceed {MAX_AMOUNT}"
            )
        terms = VersionInfo.from_json(view.read(REGISTRY, version_key(info.model, info.version)))
        if terms.deprecated:
            raise ChannelDeprecatedVersion(f"{info.model}@{info.version} is deprecated")
        view.transfer(ctx.sender, view.escrow_account(), added)
        new = {**info.to_json(), "deposit": info.deposit + added, "expiry": expiry}
        view.put(channel_key(info.id), new)
        view.emit(
            "channel-topped-up",
            {
                "channel": info.id,
                "payer": info.payer,
                "added": added,
                "deposit": info.deposit + added,
                "old_expiry": info.expiry,
                "expiry": expiry,
            },
            _index(info),
        )

    def _claim(self, view: ContractView, ctx: CallContext, args: dict[str, Any]) -> None:
        amount, sig = args["amount"], args["sig"]
        info = self._load(view, args["channel"])
        if ctx.sender != info.node:
            raise ChannelNotNode(f"only the node {info.node[:16]} may claim")
        if ctx.height > info.expiry:
            raise ChannelExpired(f"channel expired at {info.expiry}, this block is {ctx.height}")
        if amount > info.deposit:
            raise ChannelVoucherOverDeposit(f"voucher {amount} exceeds the deposit {info.deposit}")
        if amount <= info.claimed:
            raise ChannelVoucherStale(f"voucher {amount} is not above claimed {info.claimed}")
        if not verify_voucher(info.payer, ctx.chain_id, info.id, amount, sig):
            raise ChannelVoucherInvalid(
                f"sig is not the payer's voucher for {amount} on channel {info.id[:16]} "
                f"of chain {ctx.chain_id!r}"
            )
        # a deprecated version still settles: the node did the work the payer signed for
        terms = VersionInfo.from_json(view.read(REGISTRY, version_key(info.model, info.version)))
        paid = amount - info.claimed
        shares = compute_shares(paid, terms.split, info.node)
        for share in shares:
            if share.amount:  # a zero share touches no account
                view.transfer(view.escrow_account(), share.account, share.amount)
        view.put(channel_key(info.id), {**info.to_json(), "claimed": amount})
        view.emit(
            "channel-claimed",
            {
                "channel": info.id,
                "payer": info.payer,
                "node": info.node,
                "model": info.model,
                "version": info.version,
                "sha256": info.sha256,
                "amount": amount,
                "paid": paid,
                "remaining": info.deposit - amount,
                "shares": [share.to_json() for share in shares],
            },
            _index(info, *(share.account for share in shares)),
        )

    def _refund(self, view: ContractView, ctx: CallContext, args: dict[str, Any]) -> None:
        info = self._load(view, args["channel"])
        if ctx.sender != info.payer:
            raise ChannelNotPayer(f"only the payer {info.payer[:16]} may take the refund")
        if ctx.height <= info.expiry:
            raise ChannelNotExpired(
                f"channel expires at {info.expiry}; refund from height {info.expiry + 1}"
            )
        refunded = info.deposit - info.claimed
        if refunded:
            view.transfer(view.escrow_account(), info.payer, refunded)
        view.put(channel_key(info.id), {**info.to_json(), "closed": True})
        view.emit(
            "channel-refunded",
            {
                "channel": info.id,
                "payer": info.payer,
                "node": info.node,
                "refunded": refunded,
                "claimed": info.claimed,
                "deposit": info.deposit,
            },
            _index(info),
        )
