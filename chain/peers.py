"""The peer-to-peer protocol's logic, without sockets: peers, locators, sync decisions.

A node knows a bounded set of peers, each with a ban score that peers earn by
sending what breaks a rule; it finds where its chain and a peer's part with a
Bitcoin-style block locator, and decides from two tips whether to pull, push
or do nothing. Every function here is deterministic: the clock is a
parameter, and the HTTP side lives in `market/network.py`.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Protocol
from urllib.parse import urlsplit

from modelchain.chain.errors import ModelchainError

MAX_PEERS = 64
"""The most peers one node keeps (configured ones included)."""
BAN_SCORE = 100
"""A peer whose score reaches this is banned."""
BAN_SECONDS = 3600
"""How long a ban lasts."""
BACKOFF_BASE_SECONDS = 1.0
"""Wait after the first failed contact; doubled per further failure."""
BACKOFF_MAX_SECONDS = 60.0
"""The longest wait between attempts at an unreachable peer."""
LOCATOR_DENSE = 10
"""A locator names this many blocks back from the tip one by one, then doubles its step."""
MAX_LOCATOR_HASHES = 101
"""The longest locator a node accepts (a chain of 2**64 blocks needs about 75)."""
MAX_URL_CHARS = 512

PENALTY_INVALID_BLOCK = 100
"""A block that breaks a consensus rule: only a broken or hostile peer sends one."""
PENALTY_WRONG_NETWORK = 100
"""A peer on another chain (different genesis) is of no use at all."""
PENALTY_BAD_FILE = 100
"""Model bytes that do not hash to the sha256 asked for."""
PENALTY_MALFORMED = 20
"""An answer that is not what the protocol says (bad JSON, a block that does not decode)."""
PENALTY_INVALID_TX = 10
"""A tx that no state could make valid (bad signature, another chain, malformed)."""

NOT_PENALISED_BLOCK_CODES = frozenset(
    {
        "block-time-too-new",  # our clock may be the one behind; retried later
        "block-unknown-parent",  # kept as an orphan, not an offence
    }
)
STATELESS_TX_CODES = frozenset(
    {"tx-malformed", "tx-wrong-chain", "tx-bad-signature", "tx-too-large", "tx-unknown-contract"}
)
"""Tx refusals that do not depend on the state: the sender knew them to be wrong."""

_HASH = re.compile(r"[0-9a-f]{64}")


class PeerError(ModelchainError):
    code = "peer-error"


class PeerBadUrl(PeerError):
    code = "peer-bad-url"


class PeerWrongNetwork(PeerError):
    code = "peer-wrong-network"


class PeerSetFull(PeerError):
    code = "peer-set-full"
    http_status = 409


class SyncBadLocator(PeerError):
    code = "sync-bad-locator"


# --- peer addresses -----------------------------------------------------------------------


def normalize_peer_url(url: str) -> str:
    """The canonical form of a peer's base URL (`http://host:port`); raises PeerBadUrl.

    Two spellings of one node (a trailing slash, an upper-case host) dedup to one peer.
    """
    if not isinstance(url, str) or not 0 < len(url) <= MAX_URL_CHARS:
        raise PeerBadUrl(f"a peer URL is a string of 1..{MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise PeerBadUrl(f"{url!r} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise PeerBadUrl(f"{url!r}: a peer URL starts with http:// or https://")
    if not parts.hostname:
        raise PeerBadUrl(f"{url!r} names no host")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise PeerBadUrl(f"{url!r}: a peer URL has no user, query or fragment")
    path = parts.path.rstrip("/")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    return f"{parts.scheme}://{netloc}{path}"


# --- seen caches --------------------------------------------------------------------------


class SeenCache:
    """A bounded set that forgets its oldest entries: what a peer has already been sent
    or has sent us, so gossip is not echoed back and forth forever."""

    def __init__(self, capacity: int = 50_000) -> None:
        if capacity < 1:
            raise ValueError(f"capacity is {capacity}, expected at least 1")
        self.capacity = capacity
        self._items: OrderedDict[Hashable, None] = OrderedDict()

    def add(self, item: Hashable) -> bool:
        """Remember `item`; True if it was new (and so should be acted on)."""
        if item in self._items:
            self._items.move_to_end(item)
            return False
        self._items[item] = None
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return True

    def discard(self, item: Hashable) -> None:
        """Forget `item` (it was not delivered after all)."""
        self._items.pop(item, None)

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __len__(self) -> int:
        return len(self._items)


# --- block locators -----------------------------------------------------------------------


class MainChain(Protocol):
    """What locators need of a chain store (ChainStore has it)."""

    def chain_hash_at(self, height: int) -> str | None: ...

    def chain_height_of(self, block_hash: str) -> int | None: ...


def compute_locator_heights(tip_height: int) -> list[int]:
    """Heights a locator names, from the tip down: LOCATOR_DENSE one by one, then
    exponentially spaced, always ending at genesis (0)."""
    if tip_height < 0:
        raise ValueError(f"tip height {tip_height} is negative")
    heights: list[int] = []
    height, step = tip_height, 1
    while height > 0:
        heights.append(height)
        if len(heights) >= LOCATOR_DENSE:
            step *= 2
        height -= step
    heights.append(0)
    return heights


def build_locator(chain: MainChain, tip_height: int) -> tuple[str, ...]:
    """The main chain's block locator: hashes at `compute_locator_heights(tip_height)`."""
    hashes = []
    for height in compute_locator_heights(tip_height):
        block_hash = chain.chain_hash_at(height)
        if block_hash is None:
            raise ValueError(f"no main-chain block at height {height}")
        hashes.append(block_hash)
    return tuple(hashes)


def validate_locator(value: Any) -> tuple[str, ...]:
    """A locator from the wire: 1..MAX_LOCATOR_HASHES block hashes; raises SyncBadLocator."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_LOCATOR_HASHES:
        raise SyncBadLocator(f"locator must be a list of 1..{MAX_LOCATOR_HASHES} block hashes")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not _HASH.fullmatch(item):
            raise SyncBadLocator(f"locator[{index}] is not a block hash (64 lowercase hex)")
    return tuple(value)


@dataclass(frozen=True, slots=True)
class ForkPoint:
    """Where a locator's chain meets ours."""

    height: int
    hash: str


def find_fork_point(chain: MainChain, locator: Sequence[str]) -> ForkPoint:
    """The first locator hash on our main chain; genesis when none is (as in Bitcoin,
    whose locators always end at genesis). Genesis is at height 0 of every main chain."""
    for block_hash in locator:
        height = chain.chain_height_of(block_hash)
        if height is not None:
            return ForkPoint(height, block_hash)
    genesis = chain.chain_hash_at(0)
    assert genesis is not None
    return ForkPoint(0, genesis)


def hashes_after(
    chain: MainChain, locator: Sequence[str], tip_height: int, max_count: int
) -> tuple[ForkPoint, list[str]]:
    """The fork point with a locator's chain and up to `max_count` of our main-chain
    hashes after it, oldest first: what the locator's owner lacks."""
    fork = find_fork_point(chain, locator)
    hashes = []
    for height in range(fork.height + 1, min(tip_height, fork.height + max_count) + 1):
        block_hash = chain.chain_hash_at(height)
        if block_hash is None:  # the tip moved under us: send what there is
            break
        hashes.append(block_hash)
    return fork, hashes


# --- sync decisions -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TipInfo:
    """A node's chain in brief, as its sync status tells it."""

    genesis: str
    tip: str
    height: int
    work: int
    """Cumulative work up to the tip."""


class SyncAction(Enum):
    NONE = "none"
    PULL = "pull"
    """The peer has more work on a chain we lack: fetch its blocks by locator."""
    PUSH = "push"
    """We have more work: send the peer the blocks after our fork point."""


def decide_sync(local: TipInfo, remote: TipInfo, *, have_remote_tip: bool) -> SyncAction:
    """What to do with a peer whose status is `remote`; raises PeerWrongNetwork.

    Only more work moves anything: equal work on two tips stays as it is on each side
    (each keeps the block it saw first), and a tip we already hold (on a side branch,
    or one we found invalid) is not fetched again.
    """
    if remote.genesis != local.genesis:
        raise PeerWrongNetwork(
            f"the peer's genesis is {remote.genesis[:16]}, ours is {local.genesis[:16]}"
        )
    if remote.tip == local.tip:
        return SyncAction.NONE
    if remote.work > local.work and not have_remote_tip:
        return SyncAction.PULL
    if local.work > remote.work:
        return SyncAction.PUSH
    return SyncAction.NONE


def penalty_for_block(code: str) -> int:
    """Ban score for a block a peer sent that we refused with `code`."""
    if code in NOT_PENALISED_BLOCK_CODES:
        return 0
    if code == "block-malformed":
        return PENALTY_MALFORMED
    return PENALTY_INVALID_BLOCK


def penalty_for_tx(code: str) -> int:
    """Ban score for a tx a peer sent that we refused with `code`: only refusals that no
    state explains (a nonce already used or a spent balance can be an honest race)."""
    if code in STATELESS_TX_CODES or code.startswith("encoding-"):
        return PENALTY_INVALID_TX
    return 0


def compute_backoff(failures: int) -> float:
    """Seconds to wait after `failures` failed contacts in a row (0 after none)."""
    if failures <= 0:
        return 0.0
    return min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** min(failures - 1, 30))


# --- the peer set -------------------------------------------------------------------------

STATE_NEW = "new"
STATE_CONNECTED = "connected"
STATE_UNREACHABLE = "unreachable"
STATE_BANNED = "banned"
STATE_SELF = "self"
"""The URL leads back to this node (its status carries our own node id): never contacted."""


@dataclass(frozen=True, slots=True)
class Peer:
    """What a node knows of one peer."""

    url: str
    """Base URL, normalized (normalize_peer_url)."""
    source: str
    """How it was learned: `config` (a --peer flag) or `learned`."""
    state: str = STATE_NEW
    """new, connected, unreachable, banned or self."""
    ban_score: int = 0
    ban_reason: str = ""
    """The code of the offence that raised the score last."""
    banned_until: float = 0.0
    failures: int = 0
    """Failed contacts in a row."""
    next_attempt: float = 0.0
    """Not contacted before this time (backoff after failures)."""
    last_seen: float = 0.0
    """When it last answered."""
    height: int = -1
    """Its tip's height when it last answered (-1: never)."""
    tip: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "source": self.source,
            "state": self.state,
            "ban_score": self.ban_score,
            "ban_reason": self.ban_reason,
            "banned_until": int(self.banned_until),
            "failures": self.failures,
            "last_seen": int(self.last_seen),
            "height": self.height,
            "tip": self.tip,
        }


class PeerSet:
    """The peers of one node: bounded, deduplicated by URL, with ban scores.

    Not thread-safe on its own: the network guards it with a lock.
    """

    def __init__(self, max_peers: int = MAX_PEERS, ban_seconds: float = BAN_SECONDS) -> None:
        self.max_peers = max_peers
        self.ban_seconds = ban_seconds
        self._peers: dict[str, Peer] = {}

    def add(self, url: str, source: str = "config") -> Peer:
        """Know a peer (its URL normalized); an already known one is returned as it is.

        Raises PeerBadUrl, or PeerSetFull when `max_peers` are known already.
        """
        url = normalize_peer_url(url)
        known = self._peers.get(url)
        if known is not None:
            return known
        if len(self._peers) >= self.max_peers:
            raise PeerSetFull(f"this node keeps at most {self.max_peers} peers")
        peer = Peer(url, source)
        self._peers[url] = peer
        return peer

    def get(self, url: str) -> Peer | None:
        return self._peers.get(normalize_peer_url(url))

    def __len__(self) -> int:
        return len(self._peers)

    def all(self) -> list[Peer]:
        return sorted(self._peers.values(), key=lambda p: p.url)

    def _update(self, url: str, **changes: Any) -> Peer:
        peer = replace(self._peers[url], **changes)
        self._peers[url] = peer
        return peer

    def penalize(self, url: str, points: int, reason: str, now: float) -> Peer:
        """Add `points` to the peer's ban score for `reason` (a code); at BAN_SCORE it is
        banned for `ban_seconds`. Zero points change nothing."""
        peer = self._peers[url]
        if points <= 0:
            return peer
        score = peer.ban_score + points
        if score >= BAN_SCORE:
            return self._update(
                url,
                ban_score=score,
                ban_reason=reason,
                state=STATE_BANNED,
                banned_until=now + self.ban_seconds,
            )
        return self._update(url, ban_score=score, ban_reason=reason)

    def is_banned(self, url: str, now: float) -> bool:
        """True while a ban lasts; when it has run out the peer starts over (score 0)."""
        peer = self._peers[url]
        if peer.state != STATE_BANNED:
            return False
        if now < peer.banned_until:
            return True
        self._update(url, state=STATE_NEW, ban_score=0, banned_until=0.0, failures=0)
        return False

    def is_due(self, url: str, now: float) -> bool:
        """True when the peer may be contacted now: not ourselves, not banned, not
        backing off."""
        if self._peers[url].state == STATE_SELF:
            return False
        return not self.is_banned(url, now) and now >= self._peers[url].next_attempt

    def mark_self(self, url: str) -> Peer:
        """The URL leads back to this node: it is kept (listed, so the mistake shows)
        but never contacted again."""
        return self._update(url, state=STATE_SELF, failures=0, next_attempt=0.0)

    def record_success(self, url: str, now: float, height: int, tip: str) -> Peer:
        peer = self._peers[url]
        state = STATE_BANNED if peer.state == STATE_BANNED else STATE_CONNECTED
        return self._update(
            url, state=state, failures=0, next_attempt=0.0, last_seen=now, height=height, tip=tip
        )

    def record_failure(self, url: str, now: float) -> Peer:
        """One more failed contact: the peer is unreachable and waits out its backoff."""
        peer = self._peers[url]
        failures = peer.failures + 1
        state = STATE_BANNED if peer.state == STATE_BANNED else STATE_UNREACHABLE
        return self._update(
            url, state=state, failures=failures, next_attempt=now + compute_backoff(failures)
        )


def sleep_until_due(peer: Peer, now: float, poll_seconds: float) -> float:
    """Seconds a peer's link waits before its next round."""
    if peer.state == STATE_BANNED:
        return max(poll_seconds, peer.banned_until - now)
    return max(poll_seconds, peer.next_attempt - now) if peer.failures else poll_seconds


__all__ = [
    "BAN_SCORE",
    "ForkPoint",
    "MainChain",
    "Peer",
    "PeerBadUrl",
    "PeerError",
    "PeerSet",
    "PeerSetFull",
    "PeerWrongNetwork",
    "SeenCache",
    "SyncAction",
    "SyncBadLocator",
    "TipInfo",
    "build_locator",
    "compute_backoff",
    "compute_locator_heights",
    "decide_sync",
    "find_fork_point",
    "hashes_after",
    "normalize_peer_url",
    "penalty_for_block",
    "penalty_for_tx",
    "validate_locator",
]
