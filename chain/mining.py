"""The mining loop: keeps a node's miner busy exactly when there is work.

It mines when the mempool holds ready txs or when blocks were asked for, and
otherwise sleeps on a condition, so an idle node burns no CPU. The hashing
runs in the miner's worker processes; this thread only builds templates and
submits found blocks, so it never blocks the node's callers for long.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from modelchain.chain.block import Block
from modelchain.chain.errors import ModelchainError
from modelchain.chain.miner import PREFIX_BYTES, Miner
from modelchain.chain.node import ChainNode

log = logging.getLogger(__name__)

IDLE_CHECK_SECONDS = 0.5
"""How often an idle loop looks at the mempool when nobody wakes it."""
TEMPLATE_REFRESH_SECONDS = 30
"""A template older than this is rebuilt (its time would drift behind)."""
POLL_SECONDS = 0.1
"""How often the loop checks its job while the workers search."""


class MiningLoop:
    """Mines blocks on `node` paying `account`, in a thread of its own."""

    def __init__(
        self,
        node: ChainNode,
        miner: Miner,
        account: str,
        *,
        on_block: Callable[[Block], None] | None = None,
    ) -> None:
        self.node = node
        self.miner = miner
        self.account = account
        self.on_block = on_block
        self.blocks_mined = 0
        self.idle_checks = 0
        self._requested = 0
        self._stop = False
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    # --- control -------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="modelchain-mining", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify_all()
        self.miner.cancel()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """Look at the mempool now (a tx arrived, the tip moved)."""
        with self._wake:
            self._wake.notify_all()

    def request_blocks(self, count: int = 1) -> None:
        """Mine `count` blocks even if they carry no txs (dev chains, tests)."""
        with self._wake:
            self._requested += count
            self._wake.notify_all()

    @property
    def requested(self) -> int:
        return self._requested

    # --- the loop ------------------------------------------------------------

    def _has_work(self) -> bool:
        return self._requested > 0 or self.node.has_work()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stop and not self._has_work():
                    self.idle_checks += 1
                    self._wake.wait(IDLE_CHECK_SECONDS)
                if self._stop:
                    return
            try:
                self._mine_one()
            except Exception:  # pragma: no cover - the loop outlives any one failure
                log.exception("mining round failed")
                time.sleep(IDLE_CHECK_SECONDS)

    def _mine_one(self) -> None:
        template = self.node.block_template(self.account)
        tip = template.header.prev_hash
        pooled = len(self.node.mempool)
        built = time.monotonic()
        job = object()
        self.miner.submit(job, template.header.to_bytes()[:PREFIX_BYTES], template.header.target)
        while not self._stop:
            result = self.miner.poll(POLL_SECONDS)
            if result is not None and result.job_id is job:
                block = Block(replace(template.header, nonce=result.nonce), template.txs)
                try:
                    self.node.submit_block(block)
                except ModelchainError as exc:
                    log.warning("mined block %s refused: %s", block.hash[:16], exc.code)
                    return
                self.blocks_mined += 1
                with self._wake:
                    if self._requested > 0:
                        self._requested -= 1
                log.info(
                    "mined block %d %s (%d txs)", block.height, block.hash[:16], len(block.txs)
                )
                if self.on_block is not None:
                    self.on_block(block)
                return
            stale = (
                self.node.tip.hash != tip
                or len(self.node.mempool) != pooled
                or time.monotonic() - built > TEMPLATE_REFRESH_SECONDS
            )
            if stale:
                self.miner.cancel()
                return
        self.miner.cancel()
