"""The node's side of payment channels: the voucher book and the claim loop.

The book holds, per channel, the highest voucher the node answered for, in
memory for the per-call check and in the market's receipt log and
market.sqlite so a restart never forgets one. The claim loop turns those
vouchers into money: it claims a channel on-chain once the unclaimed amount
passes a threshold, and in any case before the channel's expiry with a margin
of blocks that covers a reorg.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelchain.chain.errors import ModelchainError
from modelchain.chain.node import TipChange
from modelchain.chain.store import ChainStore
from modelchain.chain.tx import Tx
from modelchain.contracts.channel import CHANNEL, ChannelInfo, get_channel
from modelchain.contracts.registry import get_version
from modelchain.market.client import sign_call
from modelchain.market.marketdb import MarketDB, ReceiptRow, VoucherRow

if TYPE_CHECKING:
    from modelchain.market.node import MarketNode

log = logging.getLogger(__name__)

CLAIM_MARGIN_BLOCKS = 6
"""Blocks before expiry at which the node stops taking vouchers and claims.

A claim must be mined at a height <= expiry; six blocks leave room for the
claim to wait a few blocks and to be mined again after a reorg of that depth.
"""
CLAIM_THRESHOLD_CALLS = 10
"""Claim once the unclaimed amount reaches this many calls at the version's price."""
CLAIM_POLL_SECONDS = 5.0
"""How often the loop looks at its channels when no block arrives."""
MAX_FAILED_CLAIMS = 3
"""Claims of one channel that failed on-chain before the loop gives the channel up."""


class ChannelNotFound(ModelchainError):
    code = "channel-unknown"
    http_status = 404


class NothingToClaim(ModelchainError):
    code = "channel-nothing-to-claim"
    http_status = 409


@dataclass(frozen=True, slots=True)
class ClaimPolicy:
    """When the node claims its channels."""

    margin_blocks: int = CLAIM_MARGIN_BLOCKS
    """Vouchers are taken while height + margin < expiry; claims start at expiry - margin."""
    threshold_calls: int = CLAIM_THRESHOLD_CALLS
    poll_seconds: float = CLAIM_POLL_SECONDS


def compute_claim_reason(
    accepted: int, covered: int, price: int, height: int, expiry: int, policy: ClaimPolicy
) -> str | None:
    """Why the node should claim now ("expiry" or "threshold"), or None.

    `covered` is what is claimed on-chain or already pending in a claim tx.
    A claim can only be mined at a height <= expiry, so from `height` =
    expiry on it is too late.
    """
    if accepted <= covered or height >= expiry:
        return None
    if height >= expiry - policy.margin_blocks:
        return "expiry"
    if accepted - covered >= policy.threshold_calls * max(price, 1):
        return "threshold"
    return None


def is_accepting_vouchers(height: int, expiry: int, policy: ClaimPolicy) -> bool:
    """True while a voucher taken now leaves the claim its margin before expiry."""
    return height + policy.margin_blocks < expiry


def channel_ids_of_account(store: ChainStore, account: str, limit: int) -> list[str]:
    """Ids of the channels `account` opened or serves, newest first (from the event index)."""
    rows = store.db.execute(
        "SELECT e.data FROM event_index i JOIN events e ON e.id = i.event_id"
        " WHERE i.key = 'account' AND i.value = ? AND e.contract = ? AND e.type = 'channel-opened'"
        " ORDER BY e.id DESC LIMIT ?",
        [account, CHANNEL, limit],
    ).fetchall()
    return [json.loads(data)["channel"] for (data,) in rows]


class VoucherBook:
    """The highest accepted voucher per channel: memory for reads, market.sqlite for keeps."""

    def __init__(self, db: MarketDB) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._rows = {row.channel: row for row in db.load_vouchers()}

    def get(self, channel: str) -> VoucherRow | None:
        return self._rows.get(channel)

    def amount(self, channel: str) -> int:
        """The highest cumulative amount accepted on `channel` (0 for none)."""
        row = self._rows.get(channel)
        return row.amount if row is not None else 0

    def all(self) -> list[VoucherRow]:
        with self._lock:
            return list(self._rows.values())

    def record(self, receipt: ReceiptRow) -> None:
        """Keep the receipt of a call paid by voucher (MarketDB.write), then count its voucher.

        Raises MarketStoreError with nothing kept or counted.
        """
        assert receipt.channel is not None and receipt.amount is not None and receipt.sig
        row = VoucherRow(
            receipt.channel,
            receipt.amount,
            receipt.sig,
            receipt.payer,
            receipt.model,
            receipt.version,
        )
        self.db.write([receipt])
        with self._lock:
            current = self._rows.get(row.channel)
            if current is None or row.amount > current.amount:
                self._rows[row.channel] = row


@dataclass(frozen=True, slots=True)
class PendingClaim:
    txid: str
    amount: int


class ClaimLoop:
    """Claims the book's vouchers on-chain, on every new tip and every few seconds."""

    def __init__(
        self, node: MarketNode, book: VoucherBook, policy: ClaimPolicy | None = None
    ) -> None:
        self.node = node
        self.book = book
        self.policy = policy or ClaimPolicy()
        self._lock = threading.Lock()
        """One pass (or one forced claim) at a time: they share the node's nonce."""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unmined: dict[str, list[str]] = {}
        """Claim txids sent per channel and not yet seen in a block."""
        self._failures: dict[str, int] = {}
        """Claims per channel that were mined and failed."""
        self._done: set[str] = set()
        """Channels that can never need a claim again: past expiry (or closed)."""

    # --- control -------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self.node.chain.listeners.append(self._on_tip_change)
        self._thread = threading.Thread(target=self._run, name="modelchain-claims", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        self._thread = None
        try:
            self.node.chain.listeners.remove(self._on_tip_change)
        except ValueError:  # pragma: no cover - removed already
            pass

    def _on_tip_change(self, change: TipChange) -> None:
        self._wake.set()  # called under the chain's lock: only wake the thread

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.policy.poll_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.run_once()
            except Exception:  # the loop outlives one bad pass
                log.exception("claim pass failed")

    # --- claiming --------------------------------------------------------------

    def run_once(self) -> list[Tx]:
        """Claim every channel that is due; returns the claim txs submitted."""
        submitted = []
        with self._lock, self.node.chain.lock:
            height = self.node.chain.height
            pending = self.pending_claims()
            for row in self.book.all():
                if row.channel in self._done:
                    continue
                info = get_channel(self.node.store, row.channel)
                if info is None or info.node != self.node.account:
                    continue  # not (or no longer, after a reorg) on this chain
                if info.closed or height >= info.expiry:
                    self._finish(row, info)
                    continue
                if self._given_up(row.channel):
                    continue
                covered = max(info.claimed, pending.get(row.channel, PendingClaim("", 0)).amount)
                version = get_version(self.node.store, info.model, info.version)
                price = version.price if version is not None else 1
                reason = compute_claim_reason(
                    row.amount, covered, price, height, info.expiry, self.policy
                )
                if reason is None:
                    continue
                tx = self._submit_claim(row, info, reason)
                if tx is not None:
                    submitted.append(tx)
        return submitted

    def claim_now(self, channel: str) -> Tx:
        """Claim `channel`'s highest accepted voucher now, due or not.

        Raises ChannelNotFound, NothingToClaim, or the chain's refusal of the tx.
        """
        with self._lock, self.node.chain.lock:
            info = get_channel(self.node.store, channel)
            if info is None:
                raise ChannelNotFound(f"no channel {channel[:16]} on the node's chain")
            row = self.book.get(channel)
            pending = self.pending_claims().get(channel, PendingClaim("", 0))
            covered = max(info.claimed, pending.amount)
            if row is None or row.amount <= covered:
                raise NothingToClaim(
                    f"channel {channel[:16]}: accepted {row.amount if row else 0}, "
                    f"claimed or pending {covered}"
                )
            return self._send(row, "asked")

    def pending_claims(self) -> dict[str, PendingClaim]:
        """The node's claim txs waiting in the mempool: the highest amount per channel."""
        account = self.node.account
        mempool = self.node.chain.mempool
        found: dict[str, PendingClaim] = {}
        with self.node.chain.lock:
            pooled = [
                *mempool.ready.get(account, {}).values(),
                *mempool.future.get(account, {}).values(),
            ]
        for entry in pooled:
            tx = entry.tx
            if tx.contract != CHANNEL or tx.method != "claim":
                continue
            channel, amount = tx.args["channel"], tx.args["amount"]
            if amount > found.get(channel, PendingClaim("", 0)).amount:
                found[channel] = PendingClaim(tx.txid, amount)
        return found

    def _finish(self, row: VoucherRow, info: ChannelInfo) -> None:
        """Stop looking at a channel no claim can reach any more; say if money was left."""
        self._done.add(row.channel)
        if row.amount > info.claimed:
            log.error(
                "channel %s expired with %d of %d accepted never claimed",
                row.channel[:16],
                row.amount - info.claimed,
                row.amount,
            )

    def _given_up(self, channel: str) -> bool:
        """True once MAX_FAILED_CLAIMS claims of `channel` were mined and failed."""
        unmined = []
        for txid in self._unmined.get(channel, []):
            receipt = self.node.store.receipt_row(txid)
            if receipt is None:
                unmined.append(txid)
            elif receipt["status"] != "ok":
                self._failures[channel] = self._failures.get(channel, 0) + 1
                log.error(
                    "claim %s of channel %s failed: %s", txid[:16], channel[:16], receipt["code"]
                )
        self._unmined[channel] = unmined
        return self._failures.get(channel, 0) >= MAX_FAILED_CLAIMS

    def _submit_claim(self, row: VoucherRow, info: ChannelInfo, reason: str) -> Tx | None:
        try:
            return self._send(row, reason)
        except ModelchainError as exc:  # e.g. no balance for the fee yet: retried next pass
            log.warning(
                "claim of channel %s for %d not sent (%s): %s; will retry",
                info.id[:16],
                row.amount,
                exc.code,
                exc.message,
            )
            return None

    def _send(self, row: VoucherRow, reason: str) -> Tx:
        node = self.node
        args: dict[str, Any] = {"channel": row.channel, "amount": row.amount, "sig": row.sig}
        tx = sign_call(
            node.key,
            node.params.chain_id,
            node.chain.pending_nonce(node.account),
            CHANNEL,
            "claim",
            args,
            fee_per_byte=node.chain.mempool.policy.min_fee_per_byte,
        )
        node.submit_tx(tx)
        self._unmined.setdefault(row.channel, []).append(tx.txid)
        log.info(
            "claimed channel %s for %d (%s): tx %s",
            row.channel[:16],
            row.amount,
            reason,
            tx.txid[:16],
        )
        return tx
