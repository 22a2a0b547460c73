"""The interface between the chain and its contracts: the plug `contracts/` fits.

A contract is named code with three pure methods; the chain calls them with
a narrow view of state and a block context, and keeps what they emit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from modelchain.chain.errors import ModelchainError


class ContractError(ModelchainError):
    """A call failed while executing: the tx is kept, pays its fee, changes nothing else."""

    code = "contract-error"


class InsufficientFunds(ContractError):
    code = "contract-insufficient-funds"


class ForbiddenTransfer(ContractError):
    code = "contract-forbidden-transfer"


@dataclass(frozen=True, slots=True)
class Event:
    """A log line of a contract call: what audit queries read."""

    contract: str
    """The contract that emitted it."""
    type: str
    """Kebab-case kind, e.g. `model-registered`, `usage-paid`."""
    data: dict[str, Any]
    """The event's fields (canonical JSON values)."""
    index: tuple[tuple[str, str], ...] = ()
    """(key, value) pairs to look the event up by: account, model, version, channel."""

    def to_json(self) -> dict[str, Any]:
        return {
            "contract": self.contract,
            "type": self.type,
            "data": self.data,
            "index": [list(pair) for pair in self.index],
        }


@dataclass(frozen=True, slots=True)
class CallContext:
    """What a call may know about where it runs. No clock, no randomness."""

    chain_id: str
    height: int
    """Height of the block executing the call."""
    timestamp: int
    """That block's header time."""
    miner: str
    txid: str
    sender: str
    """Account that signed the tx."""
    fee: int


class ContractView(Protocol):
    """The state a contract may touch during one call."""

    def balance(self, account: str) -> int: ...

    def transfer(self, source: str, dest: str, amount: int) -> None:
        """Move `amount` from the sender or this contract's escrow; raises ContractError."""

    def escrow_account(self) -> str: ...

    def get(self, key: str) -> Any:
        """This contract's stored value at `key`, or None."""

    def put(self, key: str, value: Any) -> None: ...

    def delete(self, key: str) -> None: ...

    def read(self, contract: str, key: str) -> Any:
        """Another contract's stored value (read only), or None."""

    def emit(
        self, type: str, data: dict[str, Any], index: tuple[tuple[str, str], ...] = ()
    ) -> None: ...


class Contract(Protocol):
    """Named, pure, deterministic code the chain runs for txs that call it."""

    name: str

    def check_call(self, method: str, args: dict[str, Any]) -> None:
        """Stateless check of a call's shape; raises TxBadCall naming what is wrong."""

    def max_spend(self, method: str, args: dict[str, Any]) -> int:
        """The most this call can take from the sender's balance beyond the fee."""

    def execute(
        self, view: ContractView, ctx: CallContext, method: str, args: dict[str, Any]
    ) -> None:
        """Run the call; raise ContractError to fail it (its changes are dropped)."""


ContractRegistry = Mapping[str, Contract]


def escrow_account_of(contract: str) -> str:
    """The account holding a contract's escrowed funds (not a key: no one signs for it)."""
    return f"@{contract}"
