"""The peer protocol's logic without sockets: locators, fork points, sync decisions,
ban scores, backoff and seen caches (chain/peers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from factories import funded_params, make_block, open_node
from hypothesis import given
from hypothesis import strategies as st

from modelchain.chain.peers import (
    BACKOFF_MAX_SECONDS,
    BAN_SCORE,
    LOCATOR_DENSE,
    MAX_LOCATOR_HASHES,
    PENALTY_INVALID_BLOCK,
    PENALTY_INVALID_TX,
    PENALTY_MALFORMED,
    STATE_BANNED,
    STATE_CONNECTED,
    STATE_NEW,
    STATE_SELF,
    STATE_UNREACHABLE,
    PeerBadUrl,
    PeerSet,
    PeerSetFull,
    PeerWrongNetwork,
    SeenCache,
    SyncAction,
    SyncBadLocator,
    TipInfo,
    build_locator,
    compute_backoff,
    compute_locator_heights,
    decide_sync,
    find_fork_point,
    hashes_after,
    normalize_peer_url,
    penalty_for_block,
    penalty_for_tx,
    validate_locator,
)


class ListChain:
    """A main chain as a list of hashes (index = height): the MainChain protocol in memory."""

    def __init__(self, hashes: list[str]) -> None:
        self.hashes = hashes
        self.heights = {h: i for i, h in enumerate(hashes)}

    def chain_hash_at(self, height: int) -> str | None:
        return self.hashes[height] if 0 <= height < len(self.hashes) else None

    def chain_height_of(self, block_hash: str) -> int | None:
        return self.heights.get(block_hash)


def chain_of(length: int, branch: str = "a", shared: int = 0) -> ListChain:
    """Blocks 0..length-1; the first `shared` hashes are common to every branch."""
    return ListChain([f"{'s' if i < shared else branch}{i:063d}"[:64] for i in range(length)])


# --- locators ------------------------------------------------------------------------------


def test_locator_of_genesis_alone_is_genesis() -> None:
    assert compute_locator_heights(0) == [0]


def test_locator_of_a_short_chain_names_every_block() -> None:
    assert compute_locator_heights(5) == [5, 4, 3, 2, 1, 0]


def test_locator_names_ten_blocks_one_by_one_then_doubles_its_step() -> None:
    heights = compute_locator_heights(1000)
    assert heights[:LOCATOR_DENSE] == list(range(1000, 1000 - LOCATOR_DENSE, -1))
    gaps = [a - b for a, b in zip(heights, heights[1:], strict=False)][LOCATOR_DENSE - 1 : -1]
    assert gaps == [2 ** (i + 1) for i in range(len(gaps))]
    assert heights[-1] == 0


@given(st.integers(min_value=0, max_value=2**62))
def test_locator_heights_fall_from_the_tip_to_genesis_in_few_steps(tip: int) -> None:
    heights = compute_locator_heights(tip)
    assert heights[0] == tip and heights[-1] == 0
    assert all(a > b for a, b in zip(heights, heights[1:], strict=False))
    assert len(heights) <= MAX_LOCATOR_HASHES
    dense = min(tip + 1, LOCATOR_DENSE)
    assert heights[:dense] == list(range(tip, tip - dense, -1))


def test_build_locator_names_the_main_chain_hashes_at_the_locator_heights(
    tmp_path: Path,
) -> None:
    node = open_node(tmp_path, funded_params())
    for _ in range(25):
        node.submit_block(make_block(node))
    locator = build_locator(node.store, node.height)
    heights = compute_locator_heights(25)
    assert locator == tuple(node.store.chain_hash_at(h) for h in heights)
    node.close()


@given(
    length=st.integers(min_value=1, max_value=300),
    other=st.integers(min_value=1, max_value=300),
    data=st.data(),
)
def test_a_branch_locator_finds_exactly_where_the_branches_part(
    length: int, other: int, data: st.DataObject
) -> None:
    shared = data.draw(st.integers(min_value=1, max_value=min(length, other)))
    ours = chain_of(length, "a", shared)
    theirs = chain_of(other, "b", shared)
    locator = build_locator(theirs, other - 1)
    fork = find_fork_point(ours, locator)
    # the locator is sparse below its dense part: the fork found is at or below the real one,
    # and no lower than the next locator height under it
    assert fork.height <= shared - 1
    assert fork.hash == ours.chain_hash_at(fork.height)
    below = [h for h in compute_locator_heights(other - 1) if h <= shared - 1]
    assert fork.height == below[0]


def test_a_locator_that_knows_nothing_forks_at_genesis() -> None:
    ours = chain_of(20)
    fork = find_fork_point(ours, ["f" * 64])
    assert (fork.height, fork.hash) == (0, ours.chain_hash_at(0))


def test_hashes_after_the_fork_are_ours_oldest_first_and_bounded() -> None:
    ours = chain_of(30, "a", shared=12)
    theirs = chain_of(15, "b", shared=12)
    fork, hashes = hashes_after(ours, build_locator(theirs, 14), 29, max_count=5)
    assert fork.height == 11
    assert hashes == [ours.chain_hash_at(h) for h in range(12, 17)]


def test_hashes_after_our_own_tip_are_none() -> None:
    ours = chain_of(10)
    _, hashes = hashes_after(ours, build_locator(ours, 9), 9, max_count=100)
    assert hashes == []


def test_fork_point_follows_the_main_chain_after_a_reorg(tmp_path: Path) -> None:
    node = open_node(tmp_path, funded_params())
    for _ in range(8):
        node.submit_block(make_block(node))
    old_locator = build_locator(node.store, node.height)
    parent = node.store.chain_hash_at(5)
    assert parent is not None
    side: list[str] = []
    for _ in range(5):  # 6'..10': more work than 6..8
        block = make_block(node, parent, miner="ee" * 32)
        node.submit_block(block)
        side.append(block.hash)
        parent = block.hash
    assert node.tip.hash == side[-1]
    fork, hashes = hashes_after(node.store, old_locator, node.height, max_count=100)
    assert fork.height == 5
    assert hashes == side
    assert find_fork_point(node.store, build_locator(node.store, node.height)).hash == side[-1]
    node.close()


@pytest.mark.parametrize(
    "value",
    [None, "ab" * 32, [], ["ab" * 32] * (MAX_LOCATOR_HASHES + 1), ["AB" * 32], ["ab"], [1]],
    ids=["none", "a string", "empty", "too long", "upper case", "short", "a number"],
)
def test_a_malformed_locator_is_refused(value: object) -> None:
    with pytest.raises(SyncBadLocator) as err:
        validate_locator(value)
    assert err.value.code == "sync-bad-locator"


def test_a_well_formed_locator_is_taken_as_it_is() -> None:
    assert validate_locator(["ab" * 32, "cd" * 32]) == ("ab" * 32, "cd" * 32)


# --- sync decisions ------------------------------------------------------------------------


def tip(name: str, work: int, genesis: str = "g" * 64) -> TipInfo:
    return TipInfo(genesis=genesis, tip=name * 64, height=work, work=work)


def test_a_peer_on_another_genesis_is_refused_as_another_network() -> None:
    with pytest.raises(PeerWrongNetwork) as err:
        decide_sync(tip("a", 5), tip("b", 9, genesis="h" * 64), have_remote_tip=False)
    assert err.value.code == "peer-wrong-network"


@pytest.mark.parametrize(
    ("local", "remote", "have", "action"),
    [
        (tip("a", 5), tip("a", 5), True, SyncAction.NONE),
        (tip("a", 5), tip("b", 9), False, SyncAction.PULL),
        (tip("a", 5), tip("b", 9), True, SyncAction.NONE),
        (tip("a", 9), tip("b", 5), False, SyncAction.PUSH),
        (tip("a", 5), tip("b", 5), False, SyncAction.NONE),
    ],
    ids=[
        "same tip",
        "more work: pull",
        "more work on a tip we hold: nothing",
        "less work: push",
        "equal work, other tip: nothing",
    ],
)
def test_sync_moves_blocks_toward_the_side_with_less_work(
    local: TipInfo, remote: TipInfo, have: bool, action: SyncAction
) -> None:
    assert decide_sync(local, remote, have_remote_tip=have) is action


@pytest.mark.parametrize(
    ("code", "points"),
    [
        ("block-bad-pow", PENALTY_INVALID_BLOCK),
        ("block-reward-too-high", PENALTY_INVALID_BLOCK),
        ("block-known-invalid", PENALTY_INVALID_BLOCK),
        ("block-malformed", PENALTY_MALFORMED),
        ("block-time-too-new", 0),
        ("block-unknown-parent", 0),
    ],
)
def test_block_penalties_spare_what_an_honest_peer_can_send(code: str, points: int) -> None:
    assert penalty_for_block(code) == points


@pytest.mark.parametrize(
    ("code", "points"),
    [
        ("tx-bad-signature", PENALTY_INVALID_TX),
        ("tx-wrong-chain", PENALTY_INVALID_TX),
        ("tx-malformed", PENALTY_INVALID_TX),
        ("encoding-non-canonical", PENALTY_INVALID_TX),
        ("tx-nonce-too-low", 0),
        ("tx-insufficient-balance", 0),
        ("mempool-already-known", 0),
        ("mempool-fee-too-low", 0),
    ],
)
def test_tx_penalties_fall_only_on_refusals_no_state_explains(code: str, points: int) -> None:
    assert penalty_for_tx(code) == points


def test_backoff_doubles_from_one_second_and_is_capped() -> None:
    assert [compute_backoff(n) for n in range(5)] == [0.0, 1.0, 2.0, 4.0, 8.0]
    assert compute_backoff(1000) == BACKOFF_MAX_SECONDS


@given(st.integers(min_value=0, max_value=10**6))
def test_backoff_never_shrinks_as_failures_grow(failures: int) -> None:
    assert compute_backoff(failures) <= compute_backoff(failures + 1) <= BACKOFF_MAX_SECONDS


# --- peer URLs and the peer set --------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("HTTP://Node.Example:80/", "http://node.example:80"),
        ("https://node.example/modelchain/", "https://node.example/modelchain"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_peer_urls_are_normalized_so_spellings_of_one_node_dedup(url: str, normal: str) -> None:
    assert normalize_peer_url(url) == normal


@pytest.mark.parametrize(
    "url",
    [
        "",
        "127.0.0.1:8080",
        "ftp://node.example",
        "http://",
        "http://user:pw@node.example",
        "http://node.example/?q=1",
        "http://node.example:99999",
        "http://" + "a" * 600,
    ],
)
def test_a_bad_peer_url_is_refused(url: str) -> None:
    with pytest.raises(PeerBadUrl) as err:
        normalize_peer_url(url)
    assert err.value.code == "peer-bad-url"


def test_the_peer_set_dedups_by_normalized_url() -> None:
    peers = PeerSet()
    peers.add("http://127.0.0.1:8080/")
    peers.add("HTTP://127.0.0.1:8080")
    assert [p.url for p in peers.all()] == ["http://127.0.0.1:8080"]


def test_the_peer_set_is_bounded() -> None:
    peers = PeerSet(max_peers=2)
    peers.add("http://a.example")
    peers.add("http://b.example")
    peers.add("http://a.example")  # known already: no room needed
    with pytest.raises(PeerSetFull) as err:
        peers.add("http://c.example")
    assert err.value.code == "peer-set-full"
    assert len(peers) == 2


def test_offences_add_up_to_a_ban_that_names_the_last_reason() -> None:
    peers = PeerSet(ban_seconds=600)
    url = peers.add("http://bad.example").url
    peers.penalize(url, PENALTY_INVALID_TX, "tx-bad-signature", now=1000)
    peer = peers.get(url)
    assert peer is not None
    assert (peer.ban_score, peer.state, peer.ban_reason) == (10, STATE_NEW, "tx-bad-signature")
    peer = peers.penalize(url, PENALTY_INVALID_BLOCK, "block-bad-pow", now=1000)
    assert peer.ban_score >= BAN_SCORE
    assert (peer.state, peer.ban_reason, peer.banned_until) == (STATE_BANNED, "block-bad-pow", 1600)
    assert peers.is_banned(url, now=1599)
    assert not peers.is_due(url, now=1599)


def test_a_ban_runs_out_and_the_peer_starts_over() -> None:
    peers = PeerSet(ban_seconds=600)
    url = peers.add("http://bad.example").url
    peers.penalize(url, BAN_SCORE, "block-bad-pow", now=1000)
    assert not peers.is_banned(url, now=1600)
    peer = peers.get(url)
    assert peer is not None
    assert (peer.state, peer.ban_score) == (STATE_NEW, 0)


def test_zero_points_change_nothing() -> None:
    peers = PeerSet()
    url = peers.add("http://ok.example").url
    before = peers.get(url)
    assert peers.penalize(url, 0, "tx-nonce-too-low", now=5) == before


def test_an_unreachable_peer_backs_off_and_a_success_resets_it() -> None:
    peers = PeerSet()
    url = peers.add("http://down.example").url
    peers.record_failure(url, now=100)
    peer = peers.record_failure(url, now=101)
    assert (peer.state, peer.failures, peer.next_attempt) == (STATE_UNREACHABLE, 2, 103.0)
    assert not peers.is_due(url, now=102)
    assert peers.is_due(url, now=103)
    peer = peers.record_success(url, now=103, height=7, tip="ab" * 32)
    assert (peer.state, peer.failures, peer.height, peer.last_seen) == (STATE_CONNECTED, 0, 7, 103)


def test_a_banned_peer_stays_banned_when_it_answers() -> None:
    peers = PeerSet()
    url = peers.add("http://bad.example").url
    peers.penalize(url, BAN_SCORE, "peer-wrong-network", now=0)
    assert peers.record_success(url, now=1, height=3, tip="").state == STATE_BANNED


def test_a_peer_marked_as_ourselves_is_never_due_again() -> None:
    peers = PeerSet()
    url = peers.add("http://me.example").url
    assert peers.mark_self(url).state == STATE_SELF
    assert not peers.is_due(url, now=10**9)
    assert peers.get(url).to_json()["state"] == "self"  # type: ignore[union-attr]


# --- seen caches -----------------------------------------------------------------------------


def test_a_seen_cache_says_new_once() -> None:
    seen = SeenCache()
    assert seen.add("tx1") is True
    assert seen.add("tx1") is False
    assert "tx1" in seen


def test_a_seen_cache_forgets_its_oldest_entry_past_its_capacity() -> None:
    seen = SeenCache(capacity=2)
    seen.add("a")
    seen.add("b")
    seen.add("a")  # seen again: now the newest
    seen.add("c")
    assert "b" not in seen and "a" in seen and "c" in seen
    assert len(seen) == 2


def test_a_discarded_entry_is_new_again() -> None:
    seen = SeenCache()
    seen.add("tx1")
    seen.discard("tx1")
    assert seen.add("tx1") is True


@given(st.lists(st.integers(min_value=0, max_value=50), max_size=200))
def test_a_seen_cache_never_holds_more_than_its_capacity(items: list[int]) -> None:
    seen = SeenCache(capacity=10)
    for item in items:
        seen.add(item)
    assert len(seen) <= 10
    assert all(item in seen for item in list(dict.fromkeys(reversed(items)))[:10])
