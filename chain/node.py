"""A chain node: block tree, fork choice by most work, reorgs, mempool, templates.

It takes blocks and txs from anywhere (its miner, peers, the API), keeps every
valid block it has seen, and keeps its state at the tip of the valid chain
with the most cumulative work (a tie keeps the block seen first). Every
connect and disconnect is one store transaction, so a restart after a crash
finds the last whole block and carries on from there.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

from modelchain.chain.block import (
    BLOCK_VERSION,
    Block,
    Header,
    compute_block_merkle_root,
    make_genesis,
)
from modelchain.chain.coin import CoinContract
from modelchain.chain.contract import CallContext, ContractRegistry
from modelchain.chain.errors import (
    BlockBadGenesis,
    BlockBadMerkleRoot,
    BlockBadPow,
    BlockBadTarget,
    BlockBadTx,
    BlockKnownInvalid,
    BlockTimeTooNew,
    BlockUnknownParent,
    InvalidBlock,
    InvalidTransaction,
    MempoolAlreadyKnown,
    ModelchainError,
    TxBadSignature,
    TxNonceTooLow,
)
from modelchain.chain.execute import BlockOutcome, accounts_touched, apply_tx, execute_block
from modelchain.chain.mempool import AddResult, Mempool, MempoolPolicy
from modelchain.chain.params import ChainParams, block_subsidy
from modelchain.chain.pow import (
    compute_median_time,
    compute_next_target,
    compute_work,
    hash_meets_target,
    is_retarget_height,
)
from modelchain.chain.state import StateOverlay
from modelchain.chain.store import (
    STATUS_INVALID,
    STATUS_STORED,
    STATUS_VALID,
    BlockRecord,
    ChainStore,
)
from modelchain.chain.tx import (
    Tx,
    make_reward,
    tx_signing_parts,
    validate_tx_stateless,
    verify_tx_signature,
)
from modelchain.chain.validation import ParentFacts, validate_block_shape, validate_header

log = logging.getLogger(__name__)

MAX_ORPHAN_BLOCKS = 100
"""Blocks whose parent is unknown, kept until it arrives (oldest evicted)."""
MAX_FUTURE_BLOCKS = 100
"""Blocks whose time has not come yet, retried as the clock moves."""
MAX_SIG_CACHE = 200_000
PARALLEL_VERIFY_MIN = 64
"""Blocks with at least this many unverified txs check signatures on threads."""

ACCEPTED = "accepted"
"""Stored; it became (part of) the tip, or waits on a side branch."""
DUPLICATE = "duplicate"
ORPHAN = "orphan"
FUTURE = "future"


@dataclass(frozen=True, slots=True)
class SubmitResult:
    status: str
    hash: str
    code: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True)
class TipChange:
    """What a tip move did: listeners (the market layer) react to it."""

    connected: tuple[Block, ...]
    disconnected: tuple[Block, ...]
    tip: BlockRecord


class ChainNode:
    """The ledger of one node. Methods are thread-safe (one lock)."""

    def __init__(
        self,
        store: ChainStore,
        params: ChainParams,
        contracts: ContractRegistry | None = None,
        policy: MempoolPolicy | None = None,
        clock: Callable[[], float] = time.time,
        verify_threads: int = 2,
    ) -> None:
        self.store = store
        self.params = params
        self.contracts: dict[str, Any] = dict(contracts or {})
        self.contracts.setdefault("coin", CoinContract())
        self.clock = clock
        self.lock = threading.RLock()
        self.mempool = Mempool(self.contracts, policy)
        self.index: dict[str, BlockRecord] = {}
        self.invalid: dict[str, str] = {}
        self.orphans: OrderedDict[str, Block] = OrderedDict()
        self.future_blocks: OrderedDict[str, Block] = OrderedDict()
        self.verified: OrderedDict[str, None] = OrderedDict()
        self.listeners: list[Callable[[TipChange], None]] = []
        self._verify_pool = (
            ThreadPoolExecutor(max(1, verify_threads)) if verify_threads > 1 else None
        )
        self.connect_errors: OrderedDict[str, InvalidBlock] = OrderedDict()
        self._seq = 0
        with self.lock:
            self._load()

    def close(self) -> None:
        if self._verify_pool is not None:
            self._verify_pool.shutdown(wait=False)
        self.store.close()

    def now(self) -> int:
        return int(self.clock())

    # --- start-up ----------------------------------------------------------

    def _load(self) -> None:
        genesis = make_genesis(self.params)
        stored = self.store.get_meta("genesis")
        if stored is None:
            overlay = StateOverlay(self.store)
            for account, amount in self.params.genesis_allocations:
                overlay.credit(account, amount)
            self.store.connect_genesis(
                genesis, overlay.changes, compute_work(genesis.header.target)
            )
        elif stored != genesis.hash:
            raise BlockBadGenesis(
                f"the data directory holds chain {stored[:16]}, not {self.params.chain_id}"
                f" ({genesis.hash[:16]})"
            )
        for record in self.store.load_index():
            self.index[record.hash] = record
            if record.status == STATUS_INVALID:
                self.invalid[record.hash] = "block-known-invalid"
            self._seq = max(self._seq, record.seq)
        tip_hash = self.store.tip_hash()
        assert tip_hash is not None
        self.tip = self.index[tip_hash]
        for tx, added in self.store.load_mempool():
            try:
                result = self._admit_tx(tx, added)
            except ModelchainError:  # a stale row is dropped
                self.store.delete_mempool_txs([tx.txid])
                continue
            if result.evicted:
                self.store.delete_mempool_txs(result.evicted)
        # a crash may have left a better branch stored but not yet connected
        self.activate_best_chain()

    # --- reading -----------------------------------------------------------

    @property
    def height(self) -> int:
        return self.tip.height

    def record(self, block_hash: str) -> BlockRecord | None:
        return self.index.get(block_hash)

    def get_block(self, block_hash: str) -> Block | None:
        return self.store.load_block(block_hash)

    def block_at(self, height: int) -> Block | None:
        block_hash = self.store.chain_hash_at(height)
        return self.store.load_block(block_hash) if block_hash else None

    def is_on_main_chain(self, block_hash: str) -> bool:
        record = self.index.get(block_hash)
        return record is not None and self.store.chain_hash_at(record.height) == block_hash

    def confirmations(self, block_hash: str) -> int:
        """Blocks on top of `block_hash` plus one; 0 when it is not on the main chain."""
        if not self.is_on_main_chain(block_hash):
            return 0
        return self.tip.height - self.index[block_hash].height + 1

    def balance(self, account: str) -> int:
        return self.store.read_account(account)[0]

    def nonce(self, account: str) -> int:
        return self.store.read_account(account)[1]

    def pending_nonce(self, account: str) -> int:
        with self.lock:
            return self.mempool.pending_nonce(account, self.store)

    def pending_balance(self, account: str) -> int:
        with self.lock:
            return self.mempool.pending_balance(account, self.store)

    def ancestor(self, record: BlockRecord, height: int) -> BlockRecord:
        """The block at `height` on `record`'s chain."""
        if self.store.chain_hash_at(record.height) == record.hash:
            block_hash = self.store.chain_hash_at(height)
            assert block_hash is not None
            return self.index[block_hash]
        while record.height > height:
            record = self.index[record.prev_hash]
        return record

    def parent_facts(self, parent: BlockRecord) -> ParentFacts:
        """What the header rules need to know of a child of `parent`."""
        times: list[int] = []
        walk: BlockRecord | None = parent
        while walk is not None and len(times) < self.params.median_time_span:
            times.append(walk.header.timestamp)
            walk = self.index.get(walk.prev_hash) if walk.height > 0 else None
        return ParentFacts(
            hash=parent.hash,
            height=parent.height,
            expected_target=self.expected_target(parent),
            median_time=compute_median_time(times),
        )

    def expected_target(self, parent: BlockRecord) -> int:
        height = parent.height + 1
        if not is_retarget_height(height, self.params):
            return parent.header.target
        first = self.ancestor(parent, max(0, height - self.params.retarget_interval - 1))
        return compute_next_target(
            parent.header.target, first.header.timestamp, parent.header.timestamp, self.params
        )

    # --- transactions -------------------------------------------------------

    def submit_tx(self, tx: Tx, *, signature_checked: bool = False) -> AddResult:
        """Admit a tx to the mempool (and persist it); raises with a reason code.

        `signature_checked`: the caller has verified the tx's signature itself (a paid
        call's worker does), so it is not verified again.

        The row is written after the chain's lock is let go: one payer's SQLite write
        does not hold up everyone else's admission (and block connection). A row that
        a block or a replacement made stale in between is harmless: the next start
        drops it, as it drops any row no longer valid.
        """
        with self.lock:
            if signature_checked:
                self._remember_verified([tx.txid])
            now = self.now()
            result = self._admit_tx(tx, now)
        self.store.save_mempool_tx(tx, now)
        stale = [result.replaced] if result.replaced else []
        if stale or result.evicted:
            self.store.delete_mempool_txs([*stale, *result.evicted])
        return result

    def _admit_tx(self, tx: Tx, now: int) -> AddResult:
        """Admit `tx` to the in-memory pool; the caller holds the lock and keeps the rows."""
        if tx.txid in self.mempool:
            return self.mempool.add(tx, self.store, now)  # raises already-known
        validate_tx_stateless(tx, self.params, check_signature=tx.txid not in self.verified)
        self._remember_verified([tx.txid])
        try:
            return self.mempool.add(tx, self.store, now)
        except TxNonceTooLow:
            # a tx in a block has a nonce below its sender's: only then is it looked up
            if self.store.tx_location(tx.txid) is not None:
                raise MempoolAlreadyKnown(f"tx {tx.txid[:16]} is already in a block") from None
            raise

    def verify_tx_signature(self, tx: Tx) -> bool:
        """Check a tx's signature once: a success is remembered, so admitting the
        same tx later (or finding it in a block) does not verify it again."""
        if tx.txid in self.verified:
            return True
        if not verify_tx_signature(tx):
            return False
        with self.lock:
            self._remember_verified([tx.txid])
        return True

    def _remember_verified(self, txids: Iterable[str]) -> None:
        for txid in txids:
            self.verified[txid] = None
        while len(self.verified) > MAX_SIG_CACHE:
            self.verified.popitem(last=False)

    # --- blocks ----------------------------------------------------------------

    def submit_block(self, block: Block) -> SubmitResult:
        """Take a block from anywhere; raises InvalidBlock with a reason code."""
        with self.lock:
            result = self._submit_block(block, self.now())
            if result.status == ACCEPTED:
                self._connect_orphans_of(block.hash)
            return result

    def _submit_block(self, block: Block, now: int) -> SubmitResult:
        block_hash = block.hash
        if block_hash in self.invalid:
            raise BlockKnownInvalid(f"block {block_hash[:16]} is known to be invalid")
        if block_hash in self.index:
            return SubmitResult(DUPLICATE, block_hash)
        # before the orphan pool: an invalid parent may never have been stored
        if block.header.prev_hash in self.invalid:
            self._mark_invalid([block_hash], "block-invalid-parent")
            raise BlockKnownInvalid(f"block {block_hash[:16]} builds on an invalid block")
        parent = self.index.get(block.header.prev_hash)
        if parent is None:
            # an orphan costs a real proof of work at an allowed target, so junk
            # cannot flush the pool for free
            if block.header.target > self.params.pow_limit:
                raise BlockBadTarget(f"target {block.header.target:#x} is above the pow limit")
            if not hash_meets_target(bytes.fromhex(block_hash), block.header.target):
                raise BlockBadPow(f"hash {block_hash[:16]} is above its target")
            self._keep_orphan(block)
            return SubmitResult(
                ORPHAN,
                block_hash,
                BlockUnknownParent.code,
                f"parent {block.header.prev_hash[:16]} is unknown; kept until it arrives",
            )
        try:
            validate_header(block.header, self.parent_facts(parent), self.params, now)
        except BlockTimeTooNew:
            self.future_blocks[block_hash] = block
            while len(self.future_blocks) > MAX_FUTURE_BLOCKS:
                self.future_blocks.popitem(last=False)
            raise
        work = parent.work + compute_work(block.header.target)
        executed: dict[str, tuple[StateOverlay, BlockOutcome] | InvalidBlock] = {}
        try:
            validate_block_shape(block, self.params)
            finish_signatures = self._start_signature_check(block.txs[1:])
            if parent.hash == self.tip.hash and work > self.tip.work:
                # the block will extend the tip: execute it while signatures verify
                try:
                    ran = self._execute(block)
                except InvalidBlock as exc:
                    executed[block_hash] = exc
                else:
                    return self._connect_extending_tip(block, work, ran, finish_signatures)
            finish_signatures()
        except BlockBadMerkleRoot:
            raise  # the body is not the one the header commits to: the header is not judged
        except InvalidBlock as exc:
            self._mark_invalid([block_hash], exc.code)
            raise
        self._seq += 1
        record = BlockRecord(block_hash, block.header, work, STATUS_STORED, self._seq)
        self.store.save_block(block, record.work, record.seq)
        self.index[block_hash] = record
        self.activate_best_chain(known={block_hash: block}, executed=executed)
        if block_hash in self.invalid:
            error = self.connect_errors.get(block_hash)
            if error is not None:
                raise type(error)(error.message, **error.detail)
            raise BlockKnownInvalid(f"block {block_hash[:16]} builds on a block that failed")
        return SubmitResult(ACCEPTED, block_hash)

    def _connect_extending_tip(
        self,
        block: Block,
        work: int,
        ran: tuple[StateOverlay, BlockOutcome],
        finish_signatures: Callable[[], None],
    ) -> SubmitResult:
        """The common case, a new block on the tip, already executed: write the block
        and its state in one transaction while the signature threads finish, and
        commit only if every signature verifies (else nothing of it is written)."""
        overlay, outcome = ran
        pooled = [tx.txid for tx in block.txs if tx.txid in self.mempool]
        self._seq += 1
        record = BlockRecord(block.hash, block.header, work, STATUS_VALID, self._seq)
        with self.store.atomic():
            self.store.save_block(block, work, record.seq, status=STATUS_VALID)
            self.store.connect_block(block, overlay.changes, outcome.receipts, pooled=pooled)
            finish_signatures()  # raises BlockBadTx: the transaction rolls back
        self.index[block.hash] = record
        self.mempool.remove(tx.txid for tx in block.txs)
        self.tip = record
        self._after_tip_change([block], [])
        return SubmitResult(ACCEPTED, block.hash)

    def _verify_signatures(self, txs: Sequence[Tx]) -> None:
        """Stateless tx checks for a block's txs; raises BlockBadTx."""
        self._start_signature_check(txs)()

    def _start_signature_check(self, txs: Sequence[Tx]) -> Callable[[], None]:
        """Check what needs no state now; start the signature checks and return a
        function that waits for them and raises BlockBadTx for a bad one.

        Signatures are checked on threads (the verify releases the GIL), so the
        caller can execute the block meanwhile: one core verifies while this
        one decodes and executes.
        """
        todo: list[Tx] = []
        for index, tx in enumerate(txs, start=1):
            try:
                validate_tx_stateless(tx, self.params, check_signature=False)
            except InvalidTransaction as exc:
                raise BlockBadTx(f"tx {index}: {exc.message}", tx_code=exc.code) from exc
            if tx.txid not in self.verified:
                todo.append(tx)
        if not todo:
            return lambda: None
        if self._verify_pool is None or len(todo) < PARALLEL_VERIFY_MIN:
            results = [_first_bad_signature(todo)]
            futures = None
        else:
            workers = self._verify_pool._max_workers  # noqa: SLF001
            size = -(-len(todo) // workers)
            chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
            futures = [self._verify_pool.submit(_first_bad_signature, c) for c in chunks]

        def finish() -> None:
            found = [f.result() for f in futures] if futures is not None else results
            bad = next((b for b in found if b is not None), None)
            if bad is not None:
                raise BlockBadTx(
                    f"tx {bad.txid[:16]}: signature does not verify",
                    tx_code=TxBadSignature.code,
                    txid=bad.txid,
                )
            self._remember_verified(tx.txid for tx in todo)

        return finish

    def _keep_orphan(self, block: Block) -> None:
        self.orphans[block.hash] = block
        while len(self.orphans) > MAX_ORPHAN_BLOCKS:
            self.orphans.popitem(last=False)

    def _connect_orphans_of(self, parent_hash: str) -> None:
        pending = [parent_hash]
        while pending:
            current = pending.pop()
            children = [b for b in self.orphans.values() if b.header.prev_hash == current]
            for child in children:
                del self.orphans[child.hash]
                try:
                    result = self._submit_block(child, self.now())
                except InvalidBlock as exc:
                    log.info("orphan %s rejected: %s", child.hash[:16], exc.code)
                    continue
                if result.status == ACCEPTED:
                    pending.append(child.hash)

    def retry_future_blocks(self) -> list[SubmitResult]:
        """Submit again the blocks that were too far ahead of the clock."""
        results = []
        with self.lock:
            for block_hash, block in list(self.future_blocks.items()):
                if block.header.timestamp > self.now() + self.params.max_future_seconds:
                    continue
                del self.future_blocks[block_hash]
                try:
                    results.append(self._submit_block(block, self.now()))
                    self._connect_orphans_of(block_hash)
                except InvalidBlock as exc:
                    log.info("future block %s rejected: %s", block_hash[:16], exc.code)
        return results

    def _mark_invalid(self, hashes: Sequence[str], code: str) -> None:
        """Mark blocks and every stored descendant invalid."""
        todo = list(hashes)
        marked: list[str] = []
        while todo:
            block_hash = todo.pop()
            if block_hash in self.invalid and block_hash not in hashes:
                continue
            self.invalid[block_hash] = code
            marked.append(block_hash)
            todo.extend(h for h, r in self.index.items() if r.prev_hash == block_hash)
        stored = [h for h in marked if h in self.index]
        for block_hash in stored:
            self.index[block_hash] = replace(self.index[block_hash], status=STATUS_INVALID)
        if stored:
            self.store.mark_invalid(stored, code)

    # --- fork choice -------------------------------------------------------

    def best_candidate(self) -> BlockRecord:
        """The valid-so-far block with the most work; among equals, the one seen first."""
        best = self.tip
        for record in self.index.values():
            if record.hash in self.invalid:
                continue
            if record.work > best.work or (record.work == best.work and record.seq < best.seq):
                best = record
        return best

    def activate_best_chain(
        self,
        known: dict[str, Block] | None = None,
        executed: dict[str, tuple[StateOverlay, BlockOutcome] | InvalidBlock] | None = None,
    ) -> None:
        """Move the tip to the most-work valid chain, one whole block at a time.

        If a write fails for a reason that is not the block's (disk full, I/O),
        the error propagates after the node re-reads its tip from the store,
        where the last whole block is; a later call carries on from there.
        """
        try:
            self._activate_best_chain(known, executed or {})
        except InvalidBlock:
            raise
        except Exception:
            self.tip = self.index[self.store.tip_hash() or self.tip.hash]
            dropped = self.mempool.revalidate(self.store, self.now())
            log.exception("switching the tip failed; back on %s", self.tip.hash[:16])
            if dropped:
                self.store.delete_mempool_txs(dropped)
            raise

    def _activate_best_chain(
        self,
        known: dict[str, Block] | None,
        executed: dict[str, tuple[StateOverlay, BlockOutcome] | InvalidBlock],
    ) -> None:
        while True:
            best = self.best_candidate()
            if best.hash == self.tip.hash:
                return
            fork = self._fork_point(self.tip, best)
            path: list[BlockRecord] = []
            walk = best
            while walk.hash != fork.hash:
                path.append(walk)
                walk = self.index[walk.prev_hash]
            path.reverse()
            disconnected: list[Block] = []
            while self.tip.hash != fork.hash:
                disconnected.append(self._disconnect_tip())
            connected: list[Block] = []
            for record in path:
                block = (known or {}).get(record.hash) or self.store.load_block(record.hash)
                assert block is not None
                try:
                    self._connect(block, executed.pop(block.hash, None))
                except InvalidBlock as exc:
                    log.info("block %s failed to connect: %s", record.hash[:16], exc.code)
                    self.connect_errors[record.hash] = exc
                    while len(self.connect_errors) > MAX_ORPHAN_BLOCKS:
                        self.connect_errors.popitem(last=False)
                    self._mark_invalid([record.hash], exc.code)
                    break
                connected.append(block)
            self._after_tip_change(connected, disconnected)

    def _fork_point(self, a: BlockRecord, b: BlockRecord) -> BlockRecord:
        while a.height > b.height:
            a = self.index[a.prev_hash]
        while b.height > a.height:
            b = self.index[b.prev_hash]
        while a.hash != b.hash:
            a = self.index[a.prev_hash]
            b = self.index[b.prev_hash]
        return a

    def _execute(self, block: Block) -> tuple[StateOverlay, BlockOutcome]:
        # read the accounts the block obviously touches in a few queries, not one each
        preloaded = self.store.read_accounts(accounts_touched(block))
        return execute_block(self.store, block, self.params, self.contracts, preloaded)

    def _connect(
        self, block: Block, executed: tuple[StateOverlay, BlockOutcome] | InvalidBlock | None
    ) -> None:
        """Execute (unless already executed on this very tip) and write the block."""
        if isinstance(executed, InvalidBlock):
            raise executed
        if executed is None or block.header.prev_hash != self.tip.hash:
            executed = self._execute(block)
        overlay, outcome = executed
        pooled = [tx.txid for tx in block.txs if tx.txid in self.mempool]
        self.store.connect_block(block, overlay.changes, outcome.receipts, pooled=pooled)
        self.mempool.remove(tx.txid for tx in block.txs)
        record = replace(self.index[block.hash], status=STATUS_VALID)
        self.index[block.hash] = record
        self.tip = record

    def _disconnect_tip(self) -> Block:
        block = self.store.load_block(self.tip.hash)
        assert block is not None
        returned = list(block.txs[1:])
        self.store.disconnect_block(block, returned, self.now())
        self.tip = self.index[block.header.prev_hash]
        return block

    def _after_tip_change(self, connected: list[Block], disconnected: list[Block]) -> None:
        now = self.now()
        # the store wrote every disconnected tx to its mempool table; keep the rows
        # of those the pool takes back, and only those
        stale: list[str] = []
        for block in reversed(disconnected):
            for tx in block.txs[1:]:
                try:
                    stale.extend(self.mempool.add(tx, self.store, now).evicted)
                except ModelchainError:  # no longer valid on the new chain
                    stale.append(tx.txid)
        stale.extend(self.mempool.revalidate(self.store, now))
        stale = [txid for txid in stale if txid not in self.mempool]
        if stale:
            self.store.delete_mempool_txs(stale)
        change = TipChange(tuple(connected), tuple(disconnected), self.tip)
        for listener in list(self.listeners):
            try:
                listener(change)
            except Exception:  # pragma: no cover - a listener never breaks the chain
                log.exception("tip listener failed")

    # --- mining ------------------------------------------------------------------

    def block_template(self, miner: str, now: int | None = None) -> Block:
        """An unsolved block on the tip: the best-paying valid mempool txs and the reward."""
        with self.lock:
            now = self.now() if now is None else now
            parent = self.tip
            facts = self.parent_facts(parent)
            height = parent.height + 1
            timestamp = max(now, facts.median_time + 1)
            overlay = StateOverlay(self.store)
            chosen: list[Tx] = []
            fees = 0
            budget = self.params.max_block_bytes - 156 - 512
            for tx in self.mempool.select(budget):
                ctx = CallContext(
                    self.params.chain_id, height, timestamp, miner, tx.txid, tx.sender, tx.fee
                )
                attempt = overlay.child()
                try:
                    apply_tx(attempt, tx, len(chosen) + 1, ctx, self.contracts)
                except InvalidTransaction:
                    continue
                attempt.commit()
                chosen.append(tx)
                fees += tx.fee
            reward = make_reward(
                self.params.chain_id, height, miner, block_subsidy(height, self.params) + fees
            )
            txs = (reward, *chosen)
            header = Header(
                version=BLOCK_VERSION,
                height=height,
                prev_hash=parent.hash,
                merkle_root=compute_block_merkle_root(txs),
                timestamp=timestamp,
                target=facts.expected_target,
                miner=miner,
                nonce=0,
            )
            return Block(header, txs)

    def has_work(self) -> bool:
        """True when there are ready txs to mine."""
        return any(True for _ in self.mempool.ready)


def _first_bad_signature(txs: Sequence[Tx]) -> Tx | None:
    for tx in txs:
        public, message, signature = tx_signing_parts(tx)
        try:
            crypto_sign_open(signature + message, public)
        except BadSignatureError:
            return tx
    return None
