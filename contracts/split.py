"""Revenue splits: how a payment for a model version is shared, in integers only.

Each party gets `amount * bps // 10000` (rounded down) and the rounding
remainder, always less than the number of parties, goes to the first owner
listed, so the shares add up to the amount exactly: nothing created or lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelchain.chain.keys import is_account

BPS_TOTAL = 10_000
"""Basis points in a whole: a split's owner and node shares add up to this."""

MAX_OWNERS = 8
"""The most owners one version's split may list."""

ROLE_OWNER = "owner"
ROLE_NODE = "node"


@dataclass(frozen=True, slots=True)
class RevenueSplit:
    """The terms a version was registered with; fixed for ever."""

    owners: tuple[tuple[str, int], ...]
    """(account, basis points) of each owner; the first one takes the rounding remainder."""
    node_bps: int
    """Basis points of the node that served the call."""

    def to_json(self) -> dict[str, Any]:
        return {"owners": [[account, bps] for account, bps in self.owners], "node": self.node_bps}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> RevenueSplit:
        return cls(
            owners=tuple((account, bps) for account, bps in value["owners"]),
            node_bps=value["node"],
        )


@dataclass(frozen=True, slots=True)
class Share:
    """One party's part of a payment."""

    account: str
    role: str
    """`owner` or `node`."""
    amount: int

    def to_json(self) -> dict[str, Any]:
        return {"account": self.account, "role": self.role, "amount": self.amount}


def split_problem(value: Any) -> str | None:
    """Why `value` is not a valid split object, or None if it is.

    Valid: `{"owners": [[account, bps], ...], "node": bps}` with 1..MAX_OWNERS
    distinct owner accounts, each owner bps in 1..10000, node bps in 0..10000,
    all adding up to exactly 10000.
    """
    if not isinstance(value, dict) or set(value) != {"owners", "node"}:
        return "split must be an object with exactly the keys owners, node"
    owners, node_bps = value["owners"], value["node"]
    if type(node_bps) is not int or not 0 <= node_bps <= BPS_TOTAL:
        return f"node share must be an integer in 0..{BPS_TOTAL} bps, got {node_bps!r}"
    if not isinstance(owners, list) or not 1 <= len(owners) <= MAX_OWNERS:
        return f"owners must be a list of 1..{MAX_OWNERS} [account, bps] pairs"
    seen: set[str] = set()
    total = node_bps
    for pair in owners:
        if not isinstance(pair, list) or len(pair) != 2:
            return f"owner entry {pair!r} is not an [account, bps] pair"
        account, bps = pair
        if not is_account(account):
            return f"owner {account!r} is not an account (64 lowercase hex)"
        if account in seen:
            return f"owner {account[:16]} is listed twice"
        if type(bps) is not int or not 0 < bps <= BPS_TOTAL:
            return f"owner share must be an integer in 1..{BPS_TOTAL} bps, got {bps!r}"
        seen.add(account)
        total += bps
    if total != BPS_TOTAL:
        return f"shares add up to {total} bps, must be exactly {BPS_TOTAL}"
    return None


def compute_shares(amount: int, split: RevenueSplit, node: str) -> tuple[Share, ...]:
    """The owners' shares in listed order, then the node's; they sum to `amount` exactly.

    Each share is rounded down; the remainder goes to the first owner.
    """
    shares = [
        Share(account, ROLE_OWNER, amount * bps // BPS_TOTAL) for account, bps in split.owners
    ]
    shares.append(Share(node, ROLE_NODE, amount * split.node_bps // BPS_TOTAL))
    remainder = amount - sum(share.amount for share in shares)
    first = shares[0]
    shares[0] = Share(first.account, first.role, first.amount + remainder)
    return tuple(shares)
