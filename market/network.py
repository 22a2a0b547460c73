"""The node's side of the peer-to-peer network over HTTP: sync, gossip, model replication.

Each configured peer gets a link thread that, every poll and whenever the local
tip or mempool changes, asks the peer's sync status, pulls the blocks it lacks
by locator (in batches) when the peer has more work, pushes the blocks the peer
lacks when it has less, and swaps mempool txs both ways. So one `--peer` flag
makes a two-way link: the peer needs to know nothing of us. A housekeeping
thread retries blocks that came too early and fetches the model files that
on-chain registrations name and the local store lacks. The protocol's rules
(locators, decisions, ban scores) live in `chain/peers.py`; this module does I/O.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from modelchain.chain.block import Block, decode_block
from modelchain.chain.errors import InvalidBlock, ModelchainError
from modelchain.chain.mempool import AddResult
from modelchain.chain.node import ChainNode, TipChange
from modelchain.chain.peers import (
    MAX_PEERS,
    PENALTY_BAD_FILE,
    PENALTY_MALFORMED,
    PENALTY_WRONG_NETWORK,
    STATE_BANNED,
    Peer,
    PeerSet,
    PeerWrongNetwork,
    SeenCache,
    SyncAction,
    TipInfo,
    build_locator,
    decide_sync,
    hashes_after,
    penalty_for_block,
    penalty_for_tx,
    sleep_until_due,
)
from modelchain.chain.tx import Tx, tx_from_json
from modelchain.market.catalog import all_versions
from modelchain.market.client import NodeClient, NodeError
from modelchain.models_store import ModelStore
from modelchain.models_store.replicate import replicate

log = logging.getLogger(__name__)

SYNC_BATCH_BLOCKS = 200
"""Blocks asked for per sync request."""
MAX_SYNC_BLOCKS = 500
"""The most blocks one sync answer carries."""
MAX_SYNC_BYTES = 8 * 1024 * 1024
"""The most block bytes one sync answer carries (at least one block is always sent)."""
PUSH_BATCH_BLOCKS = 200
"""Blocks pushed to one peer per round; the next round carries on."""
MAX_MEMPOOL_IDS = 5_000
"""The most txids one mempool listing carries."""
TXS_PER_ROUND = 500
"""Txs pulled from, or pushed to, one peer per round."""
FUTURE_RETRY_SECONDS = 5.0
"""How often blocks that were ahead of the clock are tried again."""
MODEL_RETRY_SECONDS = 10.0
"""How long a model file no peer could give waits before it is asked for again."""
MODEL_INVALID_RETRY_SECONDS = 3600.0
"""How long a registered file that fails validation waits before it is fetched again."""
HTTP_TIMEOUT_SECONDS = 10.0
DEFAULT_POLL_SECONDS = 1.0


class PeerMalformed(ModelchainError):
    code = "peer-malformed-answer"


# --- what a node answers to its peers (the web layer serves these) ------------------------


def sync_status(chain: ChainNode) -> dict[str, Any]:
    """The chain in brief with its locator: all a peer needs to decide to pull or push."""
    with chain.lock:
        tip = chain.tip
        return {
            "chain_id": chain.params.chain_id,
            "genesis": chain.store.get_meta("genesis"),
            "height": tip.height,
            "tip": tip.hash,
            "work": str(tip.work),
            "locator": list(build_locator(chain.store, tip.height)),
            "mempool_size": len(chain.mempool),
        }


def blocks_after_locator(
    chain: ChainNode, locator: tuple[str, ...], max_blocks: int, max_bytes: int = MAX_SYNC_BYTES
) -> dict[str, Any]:
    """Our main-chain blocks after the fork point with `locator`, oldest first, as hex;
    at most `max_blocks` of them and about `max_bytes` (never fewer than one)."""
    with chain.lock:
        tip = chain.tip
        fork, hashes = hashes_after(chain.store, locator, tip.height, max_blocks)
        blocks: list[str] = []
        size = 0
        for block_hash in hashes:
            data = chain.store.load_block_bytes(block_hash)
            assert data is not None
            if blocks and size + len(data) > max_bytes:
                break
            blocks.append(data.hex())
            size += len(data)
    return {
        "fork_height": fork.height,
        "fork_hash": fork.hash,
        "tip_height": tip.height,
        "tip": tip.hash,
        "blocks": blocks,
        "more": fork.height + len(blocks) < tip.height,
    }


def mempool_txids(chain: ChainNode, limit: int) -> dict[str, Any]:
    """The txids of the mempool, up to `limit`, in no promised order."""
    with chain.lock:
        txids = [entry.tx.txid for entry in chain.mempool.entries()]
    return {"size": len(txids), "txids": txids[:limit]}


# --- the client side ----------------------------------------------------------------------


def _parse_tip(status: Any) -> tuple[TipInfo, tuple[str, ...]]:
    """A peer's status as TipInfo and locator; raises PeerMalformed."""
    try:
        info = TipInfo(
            genesis=str(status["genesis"]),
            tip=str(status["tip"]),
            height=int(status["height"]),
            work=int(status["work"]),
        )
        locator = tuple(str(h) for h in status["locator"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PeerMalformed(f"the peer's sync status is malformed: {exc!r}") from None
    return info, locator


class Network:
    """The peers of one node and the threads that talk to them."""

    def __init__(
        self,
        chain: ChainNode,
        models: ModelStore,
        submit_tx: Callable[[Tx], AddResult],
        peers: tuple[str, ...] = (),
        *,
        check_model: Callable[[Path], object] | None = None,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        max_peers: int = MAX_PEERS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.chain = chain
        self.models = models
        self.submit_tx = submit_tx
        self.check_model = check_model
        """Validates a fetched model file before it is kept (the upload's rules)."""
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.lock = threading.Lock()
        self.peers = PeerSet(max_peers)
        for url in peers:
            self.peers.add(url, "config")
        self.links: dict[str, PeerLink] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._models_dirty = True
        self._model_retry: dict[str, float] = {}
        self._thread: threading.Thread | None = None
        chain.listeners.append(self._on_tip_change)

    # --- control ----------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        for peer in self.peer_list():
            link = PeerLink(self, peer.url)
            self.links[peer.url] = link
            link.start()
        self._thread = threading.Thread(
            target=self._housekeeping, name="modelchain-network", daemon=True
        )
        self._thread.start()
        if self.links:
            log.info("peering with %s", ", ".join(self.links))

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        for link in self.links.values():
            link.wake()
        for link in self.links.values():
            link.join(HTTP_TIMEOUT_SECONDS + 5)
        if self._thread is not None:
            self._thread.join(HTTP_TIMEOUT_SECONDS + 5)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def wake(self) -> None:
        """Something changed here (a block, a tx): every link runs a round now."""
        for link in self.links.values():
            link.wake()

    def _on_tip_change(self, change: TipChange) -> None:
        self._models_dirty = True
        self._wake.set()
        self.wake()

    # --- peers ------------------------------------------------------------------------

    def peer_list(self) -> list[Peer]:
        with self.lock:
            return self.peers.all()

    def penalize(self, url: str, points: int, reason: str, message: str) -> None:
        if points <= 0:
            return
        with self.lock:
            peer = self.peers.penalize(url, points, reason, self.clock())
        log.warning(
            "peer %s penalised %d for %s (%s): score %d%s",
            url,
            points,
            reason,
            message,
            peer.ban_score,
            ", banned" if peer.state == STATE_BANNED else "",
        )

    # --- housekeeping -------------------------------------------------------------------

    def _housekeeping(self) -> None:
        next_future_retry = 0.0
        while not self._stop.is_set():
            try:
                now = time.monotonic()
                if self.chain.future_blocks and now >= next_future_retry:
                    next_future_retry = now + FUTURE_RETRY_SECONDS
                    for result in self.chain.retry_future_blocks():
                        log.info("future block %s: %s", result.hash[:16], result.status)
                if self.links:
                    self.replicate_models()
            except Exception:  # pragma: no cover - the thread outlives any one failure
                log.exception("network housekeeping failed")
            self._wake.wait(self.poll_seconds)
            self._wake.clear()

    def missing_models(self) -> list[str]:
        """The sha256 of every registered version whose file this node lacks."""
        wanted = dict.fromkeys(info.sha256 for info in all_versions(self.chain))
        return [sha256 for sha256 in wanted if not self.models.has(sha256)]

    def replicate_models(self) -> int:
        """Fetch missing model files from peers, verifying each hash; returns how many."""
        now = self.clock()
        if not self._models_dirty and not any(t <= now for t in self._model_retry.values()):
            return 0
        self._models_dirty = False
        fetched = 0
        for sha256 in self.missing_models():
            if self._model_retry.get(sha256, 0.0) > now:
                continue
            sources = [
                (peer.url, _file_opener(peer.url, sha256))
                for peer in self.peer_list()
                if peer.state != STATE_BANNED
            ]
            result = replicate(self.models, sha256, sources, self.check_model)
            invalid = False
            for failure in result.failures:
                if failure.code == "store-hash-mismatch":
                    self.penalize(failure.source, PENALTY_BAD_FILE, failure.code, failure.message)
                elif failure.code.startswith("model-"):
                    # the registered bytes themselves fail validation: the peer sent what
                    # was registered, so it is not to blame
                    invalid = True
                    log.warning("model %s fails validation: %s", sha256[:16], failure.message)
            if result.stored is not None:
                log.info(
                    "model %s replicated from %s (%d bytes)",
                    sha256[:16],
                    result.source,
                    result.stored.size,
                )
                self._model_retry.pop(sha256, None)
                fetched += 1
            else:
                wait = MODEL_INVALID_RETRY_SECONDS if invalid else MODEL_RETRY_SECONDS
                self._model_retry[sha256] = now + wait
        for sha256 in [s for s in self._model_retry if self.models.has(s)]:
            del self._model_retry[sha256]
        return fetched


def _file_opener(url: str, sha256: str) -> Callable[[], BinaryIO]:
    def open_file() -> BinaryIO:
        return urllib.request.urlopen(  # noqa: S310 - a configured peer's URL
            f"{url}/api/v1/models/files/{sha256}", timeout=HTTP_TIMEOUT_SECONDS
        )

    return open_file


class PeerLink(threading.Thread):
    """One peer, served by one thread: rounds of sync and gossip, backing off when down."""

    def __init__(self, network: Network, url: str) -> None:
        super().__init__(name=f"modelchain-peer-{url}", daemon=True)
        self.network = network
        self.chain = network.chain
        self.url = url
        self.client = NodeClient(url, timeout=HTTP_TIMEOUT_SECONDS)
        self.sent_txs = SeenCache()
        """Txs this peer was sent or sent us: not sent to it again."""
        self.seen_txs = SeenCache()
        """Txs this peer listed that we fetched already (admitted or refused)."""
        self._wake = threading.Event()
        self._reported_down = False

    def wake(self) -> None:
        self._wake.set()

    def run(self) -> None:
        network = self.network
        while not network.stopped:
            now = network.clock()
            with network.lock:
                due = network.peers.is_due(self.url, now)
            self._wake.clear()
            if due:
                self._round()
            with network.lock:
                peer = network.peers.get(self.url)
            assert peer is not None
            self._wake.wait(sleep_until_due(peer, network.clock(), network.poll_seconds))

    def _round(self) -> None:
        network = self.network
        try:
            self.sync_once()
        except NodeError as exc:
            if exc.status and exc.status < 500 and exc.code != "node-unreachable":
                # the peer answered, but not as a peer would (an old node, a wrong URL)
                network.penalize(self.url, PENALTY_MALFORMED, exc.code, exc.message)
            self._failed(exc.message)
        except PeerMalformed as exc:
            network.penalize(self.url, PENALTY_MALFORMED, exc.code, exc.message)
            self._failed(exc.message)
        except Exception as exc:  # a link never dies of one bad round
            log.exception("round with peer %s failed", self.url)
            self._failed(repr(exc))

    def _failed(self, message: str) -> None:
        with self.network.lock:
            peer = self.network.peers.record_failure(self.url, self.network.clock())
        if not self._reported_down or peer.failures in (1, 5, 10):
            delay = peer.next_attempt - self.network.clock()
            log.warning("peer %s: %s; retrying in %.0f s", self.url, message, max(delay, 0))
        self._reported_down = True

    # --- one round ----------------------------------------------------------------------

    def sync_once(self) -> None:
        """Ask the peer's status; pull or push blocks as decide_sync says; swap txs."""
        network = self.network
        remote, remote_locator = _parse_tip(self.client.get("/api/v1/sync/status"))
        with self.chain.lock:
            tip = self.chain.tip
            genesis = self.chain.store.get_meta("genesis") or ""
            local = TipInfo(genesis, tip.hash, tip.height, tip.work)
            have_remote_tip = remote.tip in self.chain.index
        try:
            action = decide_sync(local, remote, have_remote_tip=have_remote_tip)
        except PeerWrongNetwork as exc:
            network.penalize(self.url, PENALTY_WRONG_NETWORK, exc.code, exc.message)
            return
        with network.lock:
            network.peers.record_success(self.url, network.clock(), remote.height, remote.tip)
        if self._reported_down:
            log.info("peer %s is reachable again (height %d)", self.url, remote.height)
            self._reported_down = False
        if action is SyncAction.PULL:
            self.pull_blocks(remote)
        elif action is SyncAction.PUSH:
            self.push_blocks(remote_locator)
        self.swap_txs()

    def pull_blocks(self, remote: TipInfo) -> int:
        """Fetch and submit the peer's blocks after our fork point, batch by batch, until
        we hold its tip; stops at the first block we refuse. Returns blocks submitted."""
        with self.chain.lock:
            locator = build_locator(self.chain.store, self.chain.tip.height)
        submitted = 0
        while not self.network.stopped:
            answer = self.client.post(
                "/api/v1/sync/blocks", {"locator": list(locator), "max_blocks": SYNC_BATCH_BLOCKS}
            )
            blocks = self._decode_blocks(answer)
            if blocks is None or not blocks:
                return submitted
            for block in blocks:
                try:
                    self.chain.submit_block(block)
                except InvalidBlock as exc:
                    points = penalty_for_block(exc.code)
                    self.network.penalize(self.url, points, exc.code, exc.message)
                    log.info("sync from %s stopped at block %d: %s", self.url, block.height, exc)
                    return submitted
                submitted += 1
            log.info(
                "sync from %s: %d/%d blocks", self.url, blocks[-1].height, answer["tip_height"]
            )
            if not answer.get("more") or blocks[-1].hash == remote.tip:
                return submitted
            # the next batch follows the last block received, even while its branch is
            # still lighter than ours and so not our main chain
            locator = (blocks[-1].hash, *locator)
        return submitted

    def _decode_blocks(self, answer: Any) -> list[Block] | None:
        max_bytes = self.chain.params.max_block_bytes + 1024
        try:
            return [decode_block(bytes.fromhex(raw), max_bytes) for raw in answer["blocks"]]
        except (KeyError, TypeError, ValueError, InvalidBlock) as exc:
            message = getattr(exc, "message", repr(exc))
            self.network.penalize(self.url, PENALTY_MALFORMED, "peer-malformed-answer", message)
            return None

    def push_blocks(self, remote_locator: tuple[str, ...]) -> int:
        """Send the peer our main-chain blocks after its locator's fork point, oldest first."""
        with self.chain.lock:
            _, hashes = hashes_after(
                self.chain.store, remote_locator, self.chain.tip.height, PUSH_BATCH_BLOCKS
            )
            raws = [self.chain.store.load_block_bytes(h) for h in hashes]
        for block_hash, raw in zip(hashes, raws, strict=True):
            assert raw is not None
            try:
                self.client.request(
                    "POST", "/api/v1/blocks", data=raw, content_type="application/octet-stream"
                )
            except NodeError as exc:
                if exc.code == "node-unreachable" or exc.status >= 500:
                    raise
                log.warning("peer %s refused block %s: %s", self.url, block_hash[:16], exc.code)
                return 0
        if hashes:
            log.info("pushed %d block(s) to %s", len(hashes), self.url)
        if len(hashes) == PUSH_BATCH_BLOCKS:
            self.wake()  # more to send: another round straight away
        return len(hashes)

    def swap_txs(self) -> None:
        """Fetch the peer's pending txs we lack; send it ours that it lacks."""
        listing = self.client.get(f"/api/v1/sync/mempool?limit={MAX_MEMPOOL_IDS}")
        try:
            theirs = {str(txid) for txid in listing["txids"]}
        except (KeyError, TypeError) as exc:
            raise PeerMalformed(f"the peer's mempool listing is malformed: {exc!r}") from None
        self.pull_txs(theirs)
        self.push_txs(theirs)

    def pull_txs(self, theirs: set[str]) -> None:
        wanted = []
        with self.chain.lock:
            for txid in sorted(theirs):
                if txid in self.chain.mempool or txid in self.seen_txs:
                    continue
                if self.chain.store.tx_location(txid) is not None:
                    continue
                wanted.append(txid)
        fetched: list[Tx] = []
        for txid in wanted[:TXS_PER_ROUND]:
            self.seen_txs.add(txid)
            self.sent_txs.add(txid)
            try:
                detail = self.client.get(f"/api/v1/txs/{txid}")
            except NodeError as exc:
                if exc.status == 404:  # mined or dropped meanwhile
                    continue
                raise
            if detail.get("status") != "pending":
                continue
            try:
                tx = tx_from_json(detail["tx"])
            except ModelchainError as exc:
                self.network.penalize(self.url, penalty_for_tx(exc.code), exc.code, exc.message)
                continue
            except (KeyError, TypeError) as exc:
                raise PeerMalformed(f"the peer's tx {txid[:16]} is malformed") from exc
            if tx.txid != txid:
                self.network.penalize(
                    self.url, PENALTY_MALFORMED, "peer-malformed-answer", f"asked {txid[:16]}"
                )
                continue
            fetched.append(tx)
        for tx in sorted(fetched, key=lambda t: (t.sender, t.nonce)):
            try:
                self.network.submit_tx(tx)
            except ModelchainError as exc:
                self.network.penalize(self.url, penalty_for_tx(exc.code), exc.code, exc.message)
                log.debug("tx %s from %s refused: %s", tx.txid[:16], self.url, exc.code)

    def push_txs(self, theirs: set[str]) -> None:
        with self.chain.lock:
            ours = [entry.tx for entry in self.chain.mempool.entries()]
        pushed = 0
        for tx in sorted(ours, key=lambda t: (t.sender, t.nonce)):
            if tx.txid in theirs or not self.sent_txs.add(tx.txid):
                continue
            try:
                self.client.submit_tx(tx)
            except NodeError as exc:
                if exc.code == "node-unreachable" or exc.status >= 500:
                    self.sent_txs.discard(tx.txid)  # not delivered: try again next round
                    raise
                log.debug("peer %s refused tx %s: %s", self.url, tx.txid[:16], exc.code)
            pushed += 1
            if pushed >= TXS_PER_ROUND:
                self.wake()
                break
