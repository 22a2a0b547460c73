"""The mempool: valid txs waiting for a block, checked against the pending state.

Pending state is the chain state after the txs already in the pool: a sender's
next nonce counts its pooled txs and its balance is reduced by what they may
spend. One tx per (sender, nonce); replacing it takes a higher fee; the pool
is bounded by count and bytes and evicts the lowest fee rate first; txs whose
nonce leaves a gap wait, bounded in number and time, until the gap fills.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction

from modelchain.chain.contract import ContractRegistry
from modelchain.chain.errors import (
    MempoolAlreadyKnown,
    MempoolFeeTooLow,
    MempoolFull,
    MempoolFutureNonceFull,
    MempoolReplacementFeeTooLow,
    TxInsufficientBalance,
    TxNonceTooHigh,
    TxNonceTooLow,
)
from modelchain.chain.execute import check_call_shape, compute_tx_spend
from modelchain.chain.state import StateReader
from modelchain.chain.tx import Tx

READY = "ready"
FUTURE = "future"


@dataclass(frozen=True, slots=True)
class MempoolPolicy:
    """Local policy (not consensus): what this node keeps and relays."""

    min_fee_per_byte: int = 1
    """A tx pays at least this many base units per byte of its encoding."""
    max_count: int = 50_000
    max_bytes: int = 64_000_000
    max_future_per_sender: int = 16
    """Txs with a nonce gap kept per sender."""
    max_future_total: int = 2_000
    future_ttl_seconds: int = 600
    """A tx waiting on a nonce gap is dropped after this long."""


@dataclass(frozen=True, slots=True)
class PoolEntry:
    tx: Tx
    spend: int
    """Fee plus what the call may take from the sender."""
    added: int
    """Node clock (unix seconds) when the tx arrived."""


@dataclass(frozen=True, slots=True)
class AddResult:
    status: str
    """`ready` (minable now) or `future` (waits for a nonce gap to fill)."""
    replaced: str | None = None
    """The txid this one replaced, if any."""
    evicted: tuple[str, ...] = ()
    """Txids dropped to make room for this one (the lowest fee rates)."""


def fee_rate(tx: Tx) -> Fraction:
    """Fee per byte, exact (no floats near money)."""
    return Fraction(tx.fee, tx.size)


class Mempool:
    """Txs by id, by sender and nonce (ready and future), with bounds."""

    def __init__(self, contracts: ContractRegistry, policy: MempoolPolicy | None = None) -> None:
        self.contracts = contracts
        self.policy = policy or MempoolPolicy()
        self.ready: dict[str, dict[int, PoolEntry]] = {}
        self.future: dict[str, dict[int, PoolEntry]] = {}
        self.by_id: dict[str, PoolEntry] = {}
        self.total_bytes = 0
        self.future_count = 0
        self.ready_spend: dict[str, int] = {}
        """Per sender, the sum of its ready txs' spends (kept as they come and go)."""

    # --- reading ---------------------------------------------------------

    def __len__(self) -> int:
        return len(self.by_id)

    def __contains__(self, txid: object) -> bool:
        return txid in self.by_id

    def get(self, txid: str) -> Tx | None:
        entry = self.by_id.get(txid)
        return entry.tx if entry else None

    def entries(self) -> Iterator[PoolEntry]:
        return iter(self.by_id.values())

    def status_of(self, txid: str) -> str | None:
        entry = self.by_id.get(txid)
        if entry is None:
            return None
        pooled = self.ready.get(entry.tx.sender, {})
        return READY if pooled.get(entry.tx.nonce) is entry else FUTURE

    def pending_nonce(self, account: str, state: StateReader) -> int:
        """The next nonce `account` should use, counting its ready pooled txs."""
        return state.read_account(account)[1] + len(self.ready.get(account, {}))

    def pending_balance(self, account: str, state: StateReader) -> int:
        """Balance minus what the account's ready pooled txs may spend."""
        return state.read_account(account)[0] - self.ready_spend.get(account, 0)

    # --- adding ----------------------------------------------------------

    def add(self, tx: Tx, state: StateReader, now: int) -> AddResult:
        """Admit a tx already checked statelessly (chain id, signature); raises on refusal.

        Nothing changes when it raises.
        """
        entry, replaced, future = self._admission(tx, state, now)
        if future:
            return self._add_future(entry, now)
        if replaced is not None:
            self._drop(replaced)
        self._insert_ready(entry)
        try:
            evicted = self._enforce_bounds(entry)
        except MempoolFull:
            self._drop(entry)
            if replaced is not None:
                self._insert_ready(replaced)
            raise
        self._promote(tx.sender, state)
        return AddResult(READY, replaced.tx.txid if replaced else None, evicted)

    def check_ready(self, tx: Tx, state: StateReader, now: int) -> None:
        """Raise unless `tx` would enter the pool as ready (minable now); change nothing.

        Paid inference uses it: a payment must be good now, not after a gap fills.
        """
        _, _, future = self._admission(tx, state, now)
        if future:
            expected = self.pending_nonce(tx.sender, state)
            raise TxNonceTooHigh(f"nonce {tx.nonce}, expected {expected}", expected=expected)

    def _admission(
        self, tx: Tx, state: StateReader, now: int
    ) -> tuple[PoolEntry, PoolEntry | None, bool]:
        """The checks before a tx enters: (its entry, the tx it replaces, waits on a gap)."""
        if tx.txid in self.by_id:
            raise MempoolAlreadyKnown(f"tx {tx.txid[:16]} is already in the mempool")
        check_call_shape(tx, self.contracts)
        minimum = self.policy.min_fee_per_byte * tx.size
        if tx.fee < minimum:
            raise MempoolFeeTooLow(
                f"fee {tx.fee} is under {minimum} ({self.policy.min_fee_per_byte}/byte x "
                f"{tx.size} bytes)",
                minimum=minimum,
            )
        entry = PoolEntry(tx, compute_tx_spend(tx, self.contracts), now)
        balance, base_nonce = state.read_account(tx.sender)
        if tx.nonce < base_nonce:
            raise TxNonceTooLow(f"nonce {tx.nonce}, expected {base_nonce}", expected=base_nonce)
        ready = self.ready.get(tx.sender, {})
        if tx.nonce > base_nonce + len(ready):
            return entry, None, True
        replaced = ready.get(tx.nonce)
        if replaced is not None and tx.fee <= replaced.tx.fee:
            raise MempoolReplacementFeeTooLow(
                f"a tx with nonce {tx.nonce} pays {replaced.tx.fee}; a replacement must pay more"
            )
        others = self.ready_spend.get(tx.sender, 0) - (replaced.spend if replaced else 0)
        if balance - others < entry.spend:
            raise TxInsufficientBalance(
                f"pending balance {balance - others} does not cover {entry.spend}",
                balance=balance - others,
                needed=entry.spend,
            )
        return entry, replaced, False

    def _add_future(self, entry: PoolEntry, now: int) -> AddResult:
        tx = entry.tx
        waiting = self.future.setdefault(tx.sender, {})
        old = waiting.get(tx.nonce)
        if old is not None and tx.fee <= old.tx.fee:
            raise MempoolReplacementFeeTooLow(
                f"a waiting tx with nonce {tx.nonce} pays {old.tx.fee}; a replacement must pay more"
            )
        if old is None and (
            len(waiting) >= self.policy.max_future_per_sender
            or self.future_count >= self.policy.max_future_total
        ):
            if not waiting:
                del self.future[tx.sender]
            raise MempoolFutureNonceFull(
                f"too many txs wait on a nonce gap; nonce {tx.nonce} is not yet the next one"
            )
        if old is not None:
            self._drop(old)
        self._insert_future(entry)
        # waiting txs count against the pool's bounds like ready ones
        try:
            evicted = self._enforce_bounds(entry)
        except MempoolFull:
            self._drop(entry)
            if old is not None:
                self._insert_future(old)
            raise
        return AddResult(FUTURE, old.tx.txid if old else None, evicted)

    def _insert_future(self, entry: PoolEntry) -> None:
        self.future.setdefault(entry.tx.sender, {})[entry.tx.nonce] = entry
        self.by_id[entry.tx.txid] = entry
        self.total_bytes += entry.tx.size
        self.future_count += 1

    def _insert_ready(self, entry: PoolEntry) -> None:
        sender = entry.tx.sender
        self.ready.setdefault(sender, {})[entry.tx.nonce] = entry
        self.ready_spend[sender] = self.ready_spend.get(sender, 0) + entry.spend
        self.by_id[entry.tx.txid] = entry
        self.total_bytes += entry.tx.size

    def _drop(self, entry: PoolEntry) -> None:
        tx = entry.tx
        if self.by_id.get(tx.txid) is not entry:
            return
        del self.by_id[tx.txid]
        self.total_bytes -= tx.size
        for table, is_future in ((self.ready, False), (self.future, True)):
            pooled = table.get(tx.sender)
            if pooled is not None and pooled.get(tx.nonce) is entry:
                del pooled[tx.nonce]
                if not pooled:
                    del table[tx.sender]
                if is_future:
                    self.future_count -= 1
                else:
                    left = self.ready_spend[tx.sender] - entry.spend
                    if left or tx.sender in self.ready:
                        self.ready_spend[tx.sender] = left
                    else:
                        del self.ready_spend[tx.sender]
                return

    def _tails(self) -> Iterator[PoolEntry]:
        """Each sender's highest ready tx and every waiting tx: what may be evicted."""
        for pooled in self.ready.values():
            yield pooled[max(pooled)]
        for pooled in self.future.values():
            yield from pooled.values()

    def _enforce_bounds(self, newcomer: PoolEntry) -> tuple[str, ...]:
        """Evict until within bounds; returns the evicted txids.

        Raises MempoolFull, having put every victim back, when the newcomer
        itself would have to go: a refused tx evicts nothing.
        """
        evicted: list[tuple[PoolEntry, bool]] = []
        while len(self.by_id) > self.policy.max_count or self.total_bytes > self.policy.max_bytes:
            # lowest fee rate first; among equals the newest goes
            victim = min(self._tails(), key=lambda e: (fee_rate(e.tx), -e.added))
            if victim is newcomer:
                for entry, was_future in reversed(evicted):
                    (self._insert_future if was_future else self._insert_ready)(entry)
                raise MempoolFull("the mempool is full of txs paying a higher fee rate")
            evicted.append((victim, self.status_of(victim.tx.txid) == FUTURE))
            self._drop(victim)
        return tuple(entry.tx.txid for entry, _ in evicted)

    def _promote(self, sender: str, state: StateReader) -> None:
        """Move waiting txs whose nonce is now next into the ready set, if paid for."""
        waiting = self.future.get(sender)
        while waiting:
            nonce = self.pending_nonce(sender, state)
            entry = waiting.get(nonce)
            if entry is None:
                return
            if self.pending_balance(sender, state) < entry.spend:
                return
            self._drop(entry)
            self._insert_ready(entry)
            waiting = self.future.get(sender)

    # --- after the chain moves -------------------------------------------

    def remove(self, txids: Iterable[str]) -> None:
        for txid in txids:
            entry = self.by_id.get(txid)
            if entry is not None:
                self._drop(entry)

    def revalidate(self, state: StateReader, now: int) -> list[str]:
        """Re-check every pooled tx against a new chain state; returns the txids dropped.

        Stale nonces and txs no longer paid for leave; waiting txs past their time
        leave; txs whose gap filled become ready.
        """
        dropped: list[str] = []
        for sender in list(self.ready):
            balance, nonce = state.read_account(sender)
            expected = nonce
            for n in sorted(self.ready[sender]):
                entry = self.ready[sender][n]
                if n == expected and balance >= entry.spend:
                    balance -= entry.spend
                    expected += 1
                    continue
                dropped.append(entry.tx.txid)
                self._drop(entry)
                if sender not in self.ready:
                    break
        ttl = self.policy.future_ttl_seconds
        for sender in list(self.future):
            nonce = state.read_account(sender)[1]
            for n, entry in list(self.future[sender].items()):
                if n < nonce or now - entry.added > ttl:
                    dropped.append(entry.tx.txid)
                    self._drop(entry)
        for sender in list(self.future):
            self._promote(sender, state)
        return dropped

    def select(self, max_bytes: int) -> list[Tx]:
        """Ready txs by fee rate, each sender's in nonce order, within `max_bytes`.

        Deterministic: equal rates go by sender, so the same pool gives the same block.
        """
        heads: list[tuple[Fraction, str, int]] = []
        for sender, pooled in self.ready.items():
            first = min(pooled)
            tx = pooled[first].tx
            heads.append((-fee_rate(tx), sender, first))
        heapq.heapify(heads)
        chosen: list[Tx] = []
        used = 0
        while heads:
            _, sender, nonce = heapq.heappop(heads)
            entry = self.ready[sender][nonce]
            size = entry.tx.size + 4
            if used + size > max_bytes:
                continue
            chosen.append(entry.tx)
            used += size
            following = self.ready[sender].get(nonce + 1)
            if following is not None:
                heapq.heappush(heads, (-fee_rate(following.tx), sender, nonce + 1))
        return chosen
