"""The node's side of the peer-to-peer network over HTTP: sync, gossip, model replication.

Each configured peer gets a link thread that, every poll and whenever the local
tip or mempool changes, asks the peer's sync status, pulls the blocks it lacks
by locator (in batches) when the peer has more work, pushes the blocks the peer
lacks when it has less, and swaps mempool txs both ways. So one `--peer` flag
makes a two-way link: the peer needs to know nothing of us. A housekeeping
thread retries blocks that came too early and fetches the model files that
on-chain registrations name and the local store lacks. The protocol's rules
(locators, decisions, ban scores) live in `chain/peers.py`; this module does I/O.

Nothing a peer sends is trusted: every answer is bounded in bytes and seconds and
checked for shape before it is used, every loop over a peer's answers ends (a
sync batch must carry the chain forward), and every thread ends within one socket
read of `close()`.
"""

from __future__ import annotations

import http.client
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelchain.chain.block import Block, decode_block
from modelchain.chain.errors import InvalidBlock, ModelchainError
from modelchain.chain.mempool import AddResult
from modelchain.chain.node import ChainNode, TipChange
from modelchain.chain.params import ChainParams
from modelchain.chain.peers import (
    MAX_LOCATOR_HASHES,
    MAX_PEERS,
    PENALTY_BAD_FILE,
    PENALTY_MALFORMED,
    PENALTY_WRONG_NETWORK,
    STATE_BANNED,
    STATE_CONNECTED,
    STATE_SELF,
    Peer,
    PeerSet,
    PeerWrongNetwork,
    SeenCache,
    SyncAction,
    SyncBadLocator,
    TipInfo,
    build_locator,
    decide_sync,
    hashes_after,
    penalty_for_block,
    penalty_for_tx,
    sleep_until_due,
    validate_locator,
)
from modelchain.chain.tx import Tx, tx_from_json
from modelchain.contracts.grammar import is_hash_hex
from modelchain.market.catalog import all_versions
from modelchain.market.client import READ_CHUNK_BYTES, NodeClient, NodeError
from modelchain.models_store import ModelStore
from modelchain.models_store.replicate import Opener, replicate

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
MODEL_LIMITS_RETRY_SECONDS = 300.0
"""...unless it failed on the validation's own limits (time, memory, a crashed child):
a loaded machine can cause those, so the file is tried again sooner."""
VALIDATION_LIMIT_CODES = frozenset(
    {"model-validation-timeout", "model-validation-memory", "model-validation-crashed"}
)
HTTP_TIMEOUT_SECONDS = 10.0
"""Connecting to a peer, and each socket read of its answer."""
ANSWER_SECONDS = 60.0
"""The longest one answer may take to arrive whole (a slow drip is given up)."""
FILE_GRACE_SECONDS = 30.0
"""A model file's download may be slow this long before its pace is judged..."""
MIN_FILE_BYTES_PER_SECOND = 256 * 1024
"""...and is given up (that source is skipped this time) if it averages less."""
CLOSE_GRACE_SECONDS = 5.0
"""What close() waits, beyond one HTTP timeout, for the threads to end."""
TRANSIENT_STATUSES = frozenset({408, 425, 429})
"""4xx answers that say "not now" (timeout, too early, too many requests): no offence."""
MAX_WORK_DIGITS = 100
"""A peer's cumulative work is a decimal string of at most this many digits."""
DEFAULT_POLL_SECONDS = 1.0

_DIGITS = re.compile(f"[0-9]{{1,{MAX_WORK_DIGITS}}}")


class PeerMalformed(ModelchainError):
    code = "peer-malformed-answer"


def max_answer_bytes(params: ChainParams) -> int:
    """The largest answer a peer may send: a sync batch (about MAX_SYNC_BYTES of blocks,
    or one block of the largest size) as hex, with room for the JSON around it."""
    return 2 * (MAX_SYNC_BYTES + params.max_block_bytes) + 1024 * 1024


# --- what a node answers to its peers (the web layer serves these) ------------------------


def sync_status(chain: ChainNode, node_id: str) -> dict[str, Any]:
    """The chain in brief with its locator: all a peer needs to decide to pull or push.
    `node_id` names this node's process, so a node that reaches itself can tell."""
    with chain.lock:
        tip = chain.tip
        return {
            "chain_id": chain.params.chain_id,
            "node_id": node_id,
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


@dataclass(frozen=True, slots=True)
class PeerStatus:
    """A peer's answer to `GET /sync/status`, checked."""

    info: TipInfo
    locator: tuple[str, ...]
    node_id: str
    """The peer process's id; our own means the URL leads back to us."""


def parse_sync_status(status: Any) -> PeerStatus:
    """A peer's sync status, every field checked; raises PeerMalformed."""
    if not isinstance(status, dict):
        raise PeerMalformed("the peer's sync status is not a JSON object")
    try:
        genesis, tip, height, work = (status[k] for k in ("genesis", "tip", "height", "work"))
        locator = validate_locator(status["locator"])
    except KeyError as exc:
        raise PeerMalformed(f"the peer's sync status has no {exc}") from None
    except SyncBadLocator as exc:
        raise PeerMalformed(f"the peer's locator is malformed: {exc.message}") from None
    node_id = status.get("node_id", "")
    if not is_hash_hex(genesis) or not is_hash_hex(tip):
        raise PeerMalformed("the peer's genesis and tip must be block hashes")
    if type(height) is not int or height < 0:
        raise PeerMalformed(f"the peer's height {height!r} is not a height")
    if not isinstance(work, str) or not _DIGITS.fullmatch(work):
        raise PeerMalformed(f"the peer's work is not a decimal string of 1..{MAX_WORK_DIGITS}")
    if not isinstance(node_id, str) or len(node_id) > 64:
        raise PeerMalformed("the peer's node id is not a short string")
    return PeerStatus(TipInfo(genesis, tip, height, int(work)), locator, node_id)


@dataclass(frozen=True, slots=True)
class BlockBatch:
    """A peer's answer to `POST /sync/blocks`, checked."""

    blocks: tuple[Block, ...]
    more: bool


def parse_block_batch(
    answer: Any, locator: tuple[str, ...], max_blocks: int, max_block_bytes: int
) -> BlockBatch:
    """A sync answer to `locator`: at most `max_blocks` blocks that decode, each building
    on the one before, the first on a block the locator names (where an honest peer
    forks); raises PeerMalformed. So a batch always carries a chain forward."""
    if not isinstance(answer, dict):
        raise PeerMalformed("the peer's sync answer is not a JSON object")
    raws, more = answer.get("blocks"), answer.get("more")
    if not isinstance(raws, list) or len(raws) > max_blocks or not isinstance(more, bool):
        raise PeerMalformed(f"a sync answer has a list of at most {max_blocks} blocks and `more`")
    try:
        blocks = tuple(decode_block(bytes.fromhex(raw), max_block_bytes) for raw in raws)
    except (TypeError, ValueError, InvalidBlock) as exc:
        raise PeerMalformed(f"a block of the peer's does not decode: {exc}") from None
    if blocks and blocks[0].header.prev_hash not in locator:
        raise PeerMalformed("the peer's first block builds on no block our locator names")
    for parent, block in zip(blocks, blocks[1:], strict=False):
        if block.header.prev_hash != parent.hash:
            raise PeerMalformed(
                f"the peer's block {block.hash[:16]} does not follow the one before"
            )
    return BlockBatch(blocks, more)


def parse_txid_listing(listing: Any) -> set[str]:
    """A peer's mempool listing: at most MAX_MEMPOOL_IDS txids; raises PeerMalformed."""
    txids = listing.get("txids") if isinstance(listing, dict) else None
    if not isinstance(txids, list) or len(txids) > MAX_MEMPOOL_IDS:
        raise PeerMalformed(f"a mempool listing has a list of at most {MAX_MEMPOOL_IDS} txids")
    if not all(is_hash_hex(txid) for txid in txids):
        raise PeerMalformed("the peer's mempool listing has an item that is not a txid")
    return set(txids)


def continue_locator(last_hash: str, base: tuple[str, ...]) -> tuple[str, ...]:
    """The locator of the next sync batch: the last block received, then our own
    locator, within MAX_LOCATOR_HASHES and still ending at genesis."""
    hashes = (last_hash, *base)
    if len(hashes) > MAX_LOCATOR_HASHES:
        hashes = (*hashes[: MAX_LOCATOR_HASHES - 1], base[-1])
    return hashes


def is_offence(exc: NodeError) -> bool:
    """An error answer only a broken or hostile peer gives: an answer we cannot use
    (bad JSON, too large) or a 4xx to what peers ask (not a node, or not one of ours);
    not "not now" (408, 429), not unreachable, not 5xx."""
    if 200 <= exc.status < 300:
        return True
    return 400 <= exc.status < 500 and exc.status not in TRANSIENT_STATUSES


def is_refusal(exc: NodeError) -> bool:
    """The peer answered and refused what we pushed (4xx): we stop pushing this round."""
    return 400 <= exc.status < 500


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
        http_timeout: float = HTTP_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.chain = chain
        self.models = models
        self.submit_tx = submit_tx
        self.check_model = check_model
        """Validates a fetched model file before it is kept (the upload's rules)."""
        self.poll_seconds = poll_seconds
        self.http_timeout = http_timeout
        self.clock = clock
        self.node_id = secrets.token_hex(16)
        """This process's id in our sync status: a link that reads it back reached us."""
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
        if self._thread is not None or self.stopped:
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
        """Stop every thread and wait for them: each ends within one socket read (every
        read of a peer's answer checks the stop flag), so all within one HTTP timeout."""
        self._stop.set()
        self._wake.set()
        for link in self.links.values():
            link.wake()
        threads: list[threading.Thread] = [*self.links.values()]
        if self._thread is not None:
            threads.append(self._thread)
        deadline = time.monotonic() + self.http_timeout + CLOSE_GRACE_SECONDS
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [thread.name for thread in threads if thread.is_alive()]
        if alive:
            log.warning("network threads still running after close: %s", ", ".join(alive))

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def wake(self) -> None:
        """Something changed here (a block, a tx): every link runs a round now."""
        for link in self.links.values():
            link.wake()

    def _on_tip_change(self, change: TipChange) -> None:
        # called under the chain lock: only flags and events here
        self._models_dirty = True
        self._wake.set()
        self.wake()

    def sync_status(self) -> dict[str, Any]:
        """What this node answers to `GET /sync/status`."""
        return sync_status(self.chain, self.node_id)

    def client_for(self, url: str) -> NodeClient:
        """A client of one peer: every answer bounded in bytes and seconds, and cancelled
        when the network stops."""
        return NodeClient(
            url,
            timeout=self.http_timeout,
            max_answer_bytes=max_answer_bytes(self.chain.params),
            answer_seconds=ANSWER_SECONDS,
            cancelled=self._stop.is_set,
        )

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
        with self.chain.lock:  # the store's one connection: read between blocks, not during
            versions = all_versions(self.chain)
        wanted = dict.fromkeys(info.sha256 for info in versions)
        return [sha256 for sha256 in wanted if not self.models.has(sha256)]

    def file_sources(self, sha256: str) -> list[tuple[str, Opener]]:
        """Where to ask for a model file: every peer but banned ones and ourselves, those
        that answered last time first."""
        peers = [p for p in self.peer_list() if p.state not in (STATE_BANNED, STATE_SELF)]
        peers.sort(key=lambda p: (p.state != STATE_CONNECTED, p.failures, p.url))
        return [(peer.url, self._file_opener(peer.url, sha256)) for peer in peers]

    def _file_opener(self, url: str, sha256: str) -> Opener:
        client = NodeClient(url, timeout=self.http_timeout)

        def open_file() -> PacedStream:
            if self.stopped:
                raise ConnectionAbortedError("the node is stopping")
            stream = client.open_stream(f"/api/v1/models/files/{sha256}")
            return PacedStream(stream, self._stop.is_set)

        return open_file

    def replicate_models(self) -> int:
        """Fetch missing model files from peers, verifying each hash; returns how many."""
        now = self.clock()
        if not self._models_dirty and not any(t <= now for t in self._model_retry.values()):
            return 0
        self._models_dirty = False
        fetched = 0
        for sha256 in self.missing_models():
            if self.stopped:
                break
            if self._model_retry.get(sha256, 0.0) > now:
                continue
            result = replicate(self.models, sha256, self.file_sources(sha256), self.check_model)
            for failure in result.failures:
                if failure.code == "store-hash-mismatch":
                    self.penalize(failure.source, PENALTY_BAD_FILE, failure.code, failure.message)
            if result.rejected is not None:
                # the registered bytes themselves fail validation: the peer sent what
                # was registered, so it is not to blame
                log.warning("model %s fails validation: %s", sha256[:16], result.rejected.message)
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
                # a file that fails validation, or that a source sent past our size limit
                # (so it may be too large for this node from anyone), waits long: it is
                # not downloaded again every few seconds
                too_large = any(f.code == "model-too-large" for f in result.failures)
                invalid = result.rejected is not None or too_large
                wait = MODEL_INVALID_RETRY_SECONDS if invalid else MODEL_RETRY_SECONDS
                if result.rejected is not None and result.rejected.code in VALIDATION_LIMIT_CODES:
                    wait = MODEL_LIMITS_RETRY_SECONDS
                self._model_retry[sha256] = now + wait
        for sha256 in [s for s in self._model_retry if self.models.has(s)]:
            del self._model_retry[sha256]
        return fetched


class PacedStream:
    """A model file's download that gives up, with an OSError as a dead source does,
    when the node stops or when, after FILE_GRACE_SECONDS, it averages less than
    MIN_FILE_BYTES_PER_SECOND: a peer that drips bytes cannot hold replication."""

    def __init__(
        self,
        stream: Any,
        stopped: Callable[[], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._stopped = stopped
        self._clock = clock
        self._started = clock()
        self._received = 0

    def read(self, size: int = -1, /) -> bytes:
        if self._stopped():
            raise ConnectionAbortedError("the node is stopping")
        elapsed = self._clock() - self._started
        if elapsed > FILE_GRACE_SECONDS and self._received < elapsed * MIN_FILE_BYTES_PER_SECOND:
            raise TimeoutError(
                f"{self._received} bytes in {elapsed:.0f} s is slower than"
                f" {MIN_FILE_BYTES_PER_SECOND} bytes a second"
            )
        try:
            data = self._stream.read1(READ_CHUNK_BYTES if size < 0 else min(size, READ_CHUNK_BYTES))
        except http.client.HTTPException as exc:  # a chunked answer broke off
            raise ConnectionError(f"the answer broke off: {exc!r}") from exc
        if not data and getattr(self._stream, "length", None):
            # the connection closed before the bytes the headers promised: a broken
            # download, not a file that hashes wrong (which would blame the peer)
            raise ConnectionError(f"the answer broke off {self._stream.length} bytes short")
        self._received += len(data)
        return data

    def close(self) -> None:
        self._stream.close()


class PeerLink(threading.Thread):
    """One peer, served by one thread: rounds of sync and gossip, backing off when down."""

    def __init__(self, network: Network, url: str) -> None:
        super().__init__(name=f"modelchain-peer-{url}", daemon=True)
        self.network = network
        self.chain = network.chain
        self.url = url
        self.client = network.client_for(url)
        self.sent_txs = SeenCache()
        """Txs this peer was sent or sent us: not sent to it again."""
        self.seen_txs = SeenCache()
        """Txs this peer listed that we fetched already (admitted or refused)."""
        self._pushed: tuple[str, str] | None = None
        """(the peer's tip, the last block pushed to it) after a round that pushed."""
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
            if peer.state == STATE_SELF:
                return  # nothing to sync with ourselves
            self._wake.wait(sleep_until_due(peer, network.clock(), network.poll_seconds))

    def _round(self) -> None:
        network = self.network
        try:
            self.sync_once()
        except NodeError as exc:
            if exc.code == "node-cancelled":
                return  # the node is stopping
            if is_offence(exc):
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
        status = parse_sync_status(self.client.get("/api/v1/sync/status"))
        if status.node_id == network.node_id:
            with network.lock:
                network.peers.mark_self(self.url)
            log.warning("peer %s is this node itself: it is not contacted again", self.url)
            return
        remote = status.info
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
            self.push_blocks(remote, status.locator)
        if not network.stopped:
            self.swap_txs()

    def pull_blocks(self, remote: TipInfo) -> int:
        """Fetch and submit the peer's blocks after our fork point, batch by batch, until
        we hold its tip; stops at the first block we refuse, and when a batch does not
        reach past the last one (so a peer that repeats itself ends the round). Each block
        is submitted whole: a batch cut short keeps the blocks before the cut, every one
        valid. Returns the blocks submitted."""
        with self.chain.lock:
            base = build_locator(self.chain.store, self.chain.tip.height)
        locator = base
        max_block_bytes = self.chain.params.max_block_bytes + 1024
        last: Block | None = None
        submitted = 0
        while not self.network.stopped:
            answer = self.client.post(
                "/api/v1/sync/blocks", {"locator": list(locator), "max_blocks": SYNC_BATCH_BLOCKS}
            )
            batch = parse_block_batch(answer, locator, SYNC_BATCH_BLOCKS, max_block_bytes)
            if not batch.blocks:
                return submitted
            if last is not None and batch.blocks[-1].height <= last.height:
                # not past the last batch: the peer reorganised meanwhile, or repeats
                # itself; the next round starts afresh from our locator
                return submitted
            for block in batch.blocks:
                if self.network.stopped:
                    return submitted
                try:
                    self.chain.submit_block(block)
                except InvalidBlock as exc:
                    points = penalty_for_block(exc.code)
                    self.network.penalize(self.url, points, exc.code, exc.message)
                    log.info("sync from %s stopped at block %d: %s", self.url, block.height, exc)
                    return submitted
                submitted += 1
            last = batch.blocks[-1]
            log.info("sync from %s: %d/%d blocks", self.url, last.height, remote.height)
            if not batch.more or last.hash == remote.tip:
                return submitted
            # the next batch follows the last block received, even while its branch is
            # still lighter than ours and so not our main chain
            locator = continue_locator(last.hash, base)
        return submitted

    def push_blocks(self, remote: TipInfo, remote_locator: tuple[str, ...]) -> int:
        """Send the peer our main-chain blocks after its locator's fork point, oldest
        first, PUSH_BATCH_BLOCKS a round; stops at the first it refuses or keeps as an
        orphan. While the peer's tip stays where it was, the next round carries on after
        the last block sent (a branch still lighter than the peer's tip does not show in
        its locator, so that locator alone would send the same blocks forever).
        Returns the blocks sent."""
        locator = remote_locator
        with self.chain.lock:
            if self._pushed is not None:
                peer_tip, last_sent = self._pushed
                if peer_tip == remote.tip and self.chain.is_on_main_chain(last_sent):
                    locator = (last_sent, *remote_locator)
            _, hashes = hashes_after(
                self.chain.store, locator, self.chain.tip.height, PUSH_BATCH_BLOCKS
            )
            raws = [self.chain.store.load_block_bytes(h) for h in hashes]
        self._pushed = None
        pushed = 0
        for block_hash, raw in zip(hashes, raws, strict=True):
            assert raw is not None
            if self.network.stopped:
                return pushed
            try:
                answer = self.client.request(
                    "POST", "/api/v1/blocks", data=raw, content_type="application/octet-stream"
                )
            except NodeError as exc:
                if not is_refusal(exc):
                    raise
                log.warning("peer %s refused block %s: %s", self.url, block_hash[:16], exc.code)
                return pushed
            pushed += 1
            if isinstance(answer, dict) and answer.get("status") == "orphan":
                return pushed  # the peer lacks its parent: start again from its locator
        if pushed:
            log.info("pushed %d block(s) to %s", pushed, self.url)
            self._pushed = (remote.tip, hashes[pushed - 1])
        if pushed == PUSH_BATCH_BLOCKS:
            self.wake()  # more to send: another round straight away
        return pushed

    def swap_txs(self) -> None:
        """Fetch the peer's pending txs we lack; send it ours that it lacks."""
        theirs = parse_txid_listing(
            self.client.get(f"/api/v1/sync/mempool?limit={MAX_MEMPOOL_IDS}")
        )
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
            if self.network.stopped:
                return
            try:
                detail = self.client.get(f"/api/v1/txs/{txid}")
            except NodeError as exc:
                if exc.status != 404:
                    raise  # not fetched: asked again next round
                detail = None  # mined or dropped meanwhile
            self.seen_txs.add(txid)
            self.sent_txs.add(txid)
            if detail is None:
                continue
            if not isinstance(detail, dict):
                raise PeerMalformed(f"the peer's tx {txid[:16]} is not a JSON object")
            if detail.get("status") != "pending":
                continue
            try:
                tx = tx_from_json(detail["tx"])
            except ModelchainError as exc:
                self.network.penalize(self.url, penalty_for_tx(exc.code), exc.code, exc.message)
                continue
            except KeyError:
                raise PeerMalformed(f"the peer's tx {txid[:16]} has no `tx`") from None
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
            if self.network.stopped:
                return
            if tx.txid in theirs or not self.sent_txs.add(tx.txid):
                continue
            try:
                self.client.submit_tx(tx)
            except NodeError as exc:
                if not is_refusal(exc):
                    self.sent_txs.discard(tx.txid)  # not delivered: try again next round
                    raise
                log.debug("peer %s refused tx %s: %s", self.url, tx.txid[:16], exc.code)
            pushed += 1
            if pushed >= TXS_PER_ROUND:
                self.wake()
                break
