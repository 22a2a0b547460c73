"""A tiny ledger for contract tests: real keys, real signed txs, the chain's apply_tx.

`Ledger` funds accounts in a `StateOverlay(MemoryState())`, signs each call
with the sender's next nonce, executes it at the current height through
`chain.execute.apply_tx` and credits the fee to a miner account, so the sum
of all balances stays equal to the genesis supply. Its small interface
(`call`, `advance`, `height`, `balance`, `read_storage`, `total_balance`,
`supply`) is all the property machine needs, so a node-backed ledger that
mines each call into a block could run the same machine.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from typing import Any

from modelchain.chain.contract import CallContext
from modelchain.chain.execute import Receipt, apply_tx
from modelchain.chain.keys import KeyPair
from modelchain.chain.state import MemoryState, StateOverlay
from modelchain.chain.tx import Tx, make_tx
from modelchain.contracts import default_contracts

CHAIN_ID = "modelchain-test"
DEFAULT_FEE = 10
START_HEIGHT = 1
BLOCK_SECONDS = 10
GENESIS_TIME = 1_700_000_000
FUNDS = 10**12
"""Genesis balance of each named test account."""
PRICE = 1_000
"""Price per call of the test model."""
DEPOSIT = 10_000
"""Opening deposit of the test channel."""
CHANNEL_BLOCKS = 10
"""The test channel expires this many blocks after the block that opens it."""


def key_for(label: str) -> KeyPair:
    """A deterministic key pair named by `label`."""
    return KeyPair.from_seed(hashlib.sha256(f"modelchain-test/{label}".encode()).digest())


def digest(label: str) -> str:
    """A deterministic sha256 hex standing for a model file or a request."""
    return hashlib.sha256(label.encode()).hexdigest()


MINER = key_for("miner")


class Ledger:
    """Accounts and contract storage, changed only through signed txs and apply_tx."""

    def __init__(
        self,
        balances: Mapping[str, int],
        *,
        chain_id: str = CHAIN_ID,
        height: int = START_HEIGHT,
        miner: str = MINER.account,
    ) -> None:
        self.state = StateOverlay(MemoryState())
        for account, balance in balances.items():
            self.state.set_account(account, balance, 0)
        self.contracts = default_contracts()
        self.chain_id = chain_id
        self.height = height
        self.miner = miner
        self.supply = sum(balances.values())

    # --- txs -----------------------------------------------------------------

    def make(
        self,
        key: KeyPair,
        contract: str,
        method: str,
        args: dict[str, Any],
        *,
        fee: int = DEFAULT_FEE,
        nonce: int | None = None,
    ) -> Tx:
        """A signed tx from `key` with its next nonce (unless given)."""
        return make_tx(
            key,
            chain_id=self.chain_id,
            nonce=self.state.nonce(key.account) if nonce is None else nonce,
            fee=fee,
            contract=contract,
            method=method,
            args=args,
        )

    def context(self, tx: Tx) -> CallContext:
        return CallContext(
            chain_id=self.chain_id,
            height=self.height,
            timestamp=GENESIS_TIME + self.height * BLOCK_SECONDS,
            miner=self.miner,
            txid=tx.txid,
            sender=tx.sender,
            fee=tx.fee,
        )

    def apply(self, tx: Tx) -> Receipt:
        """Execute `tx` in the current block; the miner earns its fee.

        Raises InvalidTransaction (TxBadCall included) when the tx may not be included.
        """
        receipt = apply_tx(self.state, tx, 1, self.context(tx), self.contracts)
        self.state.credit(self.miner, tx.fee)
        return receipt

    def call(
        self,
        key: KeyPair,
        contract: str,
        method: str,
        args: dict[str, Any],
        *,
        fee: int = DEFAULT_FEE,
    ) -> Receipt:
        return self.apply(self.make(key, contract, method, args, fee=fee))

    def advance(self, blocks: int = 1) -> None:
        self.height += blocks

    # --- reading -------------------------------------------------------------

    def balance(self, account: str) -> int:
        return self.state.balance(account)

    def nonce(self, account: str) -> int:
        return self.state.nonce(account)

    def read_storage(self, contract: str, key: str) -> Any:
        return self.state.read_storage(contract, key)

    def total_balance(self) -> int:
        """Sum of every account's balance, escrow accounts and the miner included."""
        return sum(balance for balance, _ in self.state.changes.accounts.values())

    def snapshot(self) -> dict[str, Any]:
        """A deep copy of every account and storage value (the base state is empty)."""
        return {
            "accounts": copy.deepcopy(dict(self.state.changes.accounts)),
            "storage": copy.deepcopy(
                {key: value for key, value in self.state.changes.storage.items()}
            ),
        }

    def expect_fee_only(self, before: dict[str, Any], sender: str, fee: int) -> dict[str, Any]:
        """`before` with only the sender's fee and nonce taken and the miner paid."""
        expected = copy.deepcopy(before)
        accounts = expected["accounts"]
        balance, nonce = accounts.get(sender, (0, 0))
        accounts[sender] = (balance - fee, nonce + 1)
        miner_balance, miner_nonce = accounts.get(self.miner, (0, 0))
        accounts[self.miner] = (miner_balance + fee, miner_nonce)
        return expected
