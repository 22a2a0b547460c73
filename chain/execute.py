"""Executing txs and blocks against a state overlay, and their receipts.

`apply_tx` checks the rules that need state (nonce, balance), charges the
fee and runs the call in a child overlay that is kept only if the call
succeeds; `apply_block` does that for a block and pays its reward.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modelchain.chain.block import Block
from modelchain.chain.contract import (
    CallContext,
    ContractError,
    ContractRegistry,
    Event,
    ForbiddenTransfer,
    InsufficientFunds,
    escrow_account_of,
)
from modelchain.chain.encoding import check_canonical_value
from modelchain.chain.errors import (
    BlockBadReward,
    BlockBadTx,
    BlockRewardTooHigh,
    InvalidTransaction,
    NonCanonicalValue,
    TxBadCall,
    TxInsufficientBalance,
    TxNonceTooHigh,
    TxNonceTooLow,
    TxUnknownContract,
)
from modelchain.chain.params import MAX_AMOUNT, ChainParams, block_subsidy
from modelchain.chain.state import StateOverlay, StateReader
from modelchain.chain.tx import Tx

STATUS_OK = "ok"
STATUS_FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Receipt:
    """The outcome of one tx in one block: kept for audits, failed or not."""

    txid: str
    index: int
    """Position of the tx in its block (0 is the reward)."""
    status: str
    """`ok`, or `failed` when the call raised (fee and nonce still taken)."""
    code: str
    """The failure's reason code; "" when ok."""
    message: str
    fee: int
    events: tuple[Event, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "txid": self.txid,
            "index": self.index,
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "fee": self.fee,
            "events": [event.to_json() for event in self.events],
        }


class _View:
    """The ContractView a call sees: its own storage, the sender's and its escrow money."""

    __slots__ = ("_state", "_contract", "_ctx", "events")

    def __init__(self, state: StateOverlay, contract: str, ctx: CallContext) -> None:
        self._state = state
        self._contract = contract
        self._ctx = ctx
        self.events: list[Event] = []

    def balance(self, account: str) -> int:
        return self._state.balance(account)

    def escrow_account(self) -> str:
        return escrow_account_of(self._contract)

    def transfer(self, source: str, dest: str, amount: int) -> None:
        if source not in (self._ctx.sender, self.escrow_account()):
            raise ForbiddenTransfer(f"{self._contract} may not move money from {source}")
        if type(amount) is not int or not 0 <= amount <= MAX_AMOUNT:
            raise ContractError(f"transfer amount {amount!r} out of range")
        have = self._state.balance(source)
        if have < amount:
            raise InsufficientFunds(f"{source} has {have}, needs {amount}")
        self._state.set_balance(source, have - amount)
        self._state.credit(dest, amount)

    def get(self, key: str) -> Any:
        return self._state.read_storage(self._contract, key)

    def put(self, key: str, value: Any) -> None:
        try:
            check_canonical_value(value)
        except NonCanonicalValue as exc:
            raise ContractError(f"cannot store {key!r}: {exc.message}") from exc
        self._state.set_storage(self._contract, key, value)

    def delete(self, key: str) -> None:
        self._state.set_storage(self._contract, key, None)

    def read(self, contract: str, key: str) -> Any:
        return self._state.read_storage(contract, key)

    def emit(
        self, type: str, data: dict[str, Any], index: tuple[tuple[str, str], ...] = ()
    ) -> None:
        try:
            check_canonical_value(data)
        except NonCanonicalValue as exc:
            raise ContractError(f"event {type!r} is not canonical: {exc.message}") from exc
        self.events.append(Event(self._contract, type, data, tuple(index)))


def check_call_shape(tx: Tx, contracts: ContractRegistry) -> None:
    """The tx names a known contract and a well-formed call; raises InvalidTransaction."""
    contract = contracts.get(tx.contract)
    if contract is None:
        raise TxUnknownContract(f"no contract named {tx.contract!r}")
    contract.check_call(tx.method, tx.args)


def compute_tx_spend(tx: Tx, contracts: ContractRegistry) -> int:
    """Fee plus the most the call can take from the sender."""
    return tx.fee + contracts[tx.contract].max_spend(tx.method, tx.args)


def validate_tx_against_state(state: StateOverlay, tx: Tx, contracts: ContractRegistry) -> int:
    """Nonce is the next one and the balance covers fee + spend; returns the spend."""
    check_call_shape(tx, contracts)
    balance, nonce = state.read_account(tx.sender)
    if tx.nonce < nonce:
        raise TxNonceTooLow(f"nonce {tx.nonce}, expected {nonce}", expected=nonce)
    if tx.nonce > nonce:
        raise TxNonceTooHigh(f"nonce {tx.nonce}, expected {nonce}", expected=nonce)
    spend = compute_tx_spend(tx, contracts)
    if balance < spend:
        raise TxInsufficientBalance(
            f"{tx.sender[:16]} has {balance}, the tx may spend {spend}",
            balance=balance,
            needed=spend,
        )
    return spend


def apply_tx(
    state: StateOverlay,
    tx: Tx,
    index: int,
    ctx: CallContext,
    contracts: ContractRegistry,
) -> Receipt:
    """Execute one signed tx. Raises InvalidTransaction if it may not be included at all;
    otherwise the fee and nonce are taken and the receipt says whether the call held."""
    validate_tx_against_state(state, tx, contracts)
    balance, nonce = state.read_account(tx.sender)
    state.set_account(tx.sender, balance - tx.fee, nonce + 1)
    call_state = state.child()
    view = _View(call_state, tx.contract, ctx)
    try:
        contracts[tx.contract].execute(view, ctx, tx.method, tx.args)
    except ContractError as exc:
        return Receipt(tx.txid, index, STATUS_FAILED, exc.code, exc.message, tx.fee, ())
    call_state.commit()
    return Receipt(tx.txid, index, STATUS_OK, "", "", tx.fee, tuple(view.events))


@dataclass(frozen=True, slots=True)
class BlockOutcome:
    receipts: tuple[Receipt, ...]
    fees: int
    reward: int


def apply_block_txs(
    state: StateOverlay,
    txs: Sequence[Tx],
    *,
    height: int,
    timestamp: int,
    miner: str,
    params: ChainParams,
    contracts: ContractRegistry,
) -> BlockOutcome:
    """Apply a block's txs (txs[0] the reward) onto `state`; raises InvalidBlock.

    The caller has checked the block's shape (reward first and only there).
    """
    fees = 0
    receipts: list[Receipt] = []
    for index, tx in enumerate(txs[1:], start=1):
        ctx = CallContext(
            chain_id=params.chain_id,
            height=height,
            timestamp=timestamp,
            miner=miner,
            txid=tx.txid,
            sender=tx.sender,
            fee=tx.fee,
        )
        try:
            receipts.append(apply_tx(state, tx, index, ctx, contracts))
        except (InvalidTransaction, TxBadCall) as exc:
            raise BlockBadTx(
                f"tx {index} ({tx.txid[:16]}): {exc.message}", tx_code=exc.code, txid=tx.txid
            ) from exc
        fees += tx.fee
    reward_tx = txs[0]
    reward = reward_tx.args["amount"]
    allowed = block_subsidy(height, params) + fees
    if reward > allowed:
        raise BlockRewardTooHigh(f"reward {reward}, at most {allowed} (subsidy + fees)")
    state.credit(reward_tx.args["to"], reward)
    reward_event = Event(
        "reward",
        "block-reward",
        {"to": reward_tx.args["to"], "amount": reward, "fees": fees},
        (("account", reward_tx.args["to"]),),
    )
    receipts.insert(0, Receipt(reward_tx.txid, 0, STATUS_OK, "", "", 0, (reward_event,)))
    return BlockOutcome(tuple(receipts), fees, reward)


def accounts_touched(block: Block) -> set[str]:
    """The accounts `block` obviously reads: its miner, its senders, their `to` arguments
    (what a node reads from its store in bulk before executing it)."""
    touched = {block.header.miner}
    for tx in block.txs[1:]:
        touched.add(tx.sender)
        to = tx.args.get("to")
        if isinstance(to, str):
            touched.add(to)
    return touched


def execute_block(
    state: StateReader,
    block: Block,
    params: ChainParams,
    contracts: ContractRegistry,
    preloaded: dict[str, tuple[int, int]] | None = None,
) -> tuple[StateOverlay, BlockOutcome]:
    """The changes and receipts of executing `block` on `state` (which stays unchanged).
    `preloaded`: accounts already read from `state` in bulk (StateOverlay.preload_accounts)."""
    overlay = StateOverlay(state)
    if preloaded:
        overlay.preload_accounts(preloaded)
    outcome = apply_block_txs(
        overlay,
        block.txs,
        height=block.height,
        timestamp=block.header.timestamp,
        miner=block.header.miner,
        params=params,
        contracts=contracts,
    )
    return overlay, outcome


def check_reward_shape(reward_tx: Tx, height: int, miner: str, params: ChainParams) -> None:
    """The reward tx's own fields fit its block; raises BlockBadReward."""
    args = reward_tx.args
    if reward_tx.chain_id != params.chain_id:
        raise BlockBadReward(f"reward is for chain {reward_tx.chain_id!r}")
    if reward_tx.nonce != height:
        raise BlockBadReward(f"reward nonce {reward_tx.nonce} must equal height {height}")
    if set(args) != {"to", "amount"} or reward_tx.method != "coinbase" or reward_tx.fee != 0:
        raise BlockBadReward("reward must be coinbase {to, amount} with fee 0")
    amount = args["amount"]
    if type(amount) is not int or not 0 <= amount <= MAX_AMOUNT:
        raise BlockBadReward(f"reward amount {amount!r} out of range")
    if args["to"] != miner:
        raise BlockBadReward("reward must pay the header's miner")
