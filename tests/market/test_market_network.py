"""One peer link's rounds (market/network.py) between in-process nodes over real HTTP.

Node A's Flask app is served on 127.0.0.1 (port 0) by werkzeug in a thread; node B has A
as its peer but is not started, so the test runs B's link rounds itself, one at a time,
and looks at both nodes after each: pull, push, tx swap, model replication, backoff and
bans, with no background threads racing the assertions. A stand-in peer
(tests/stand_in_peer.py) plays the broken and hostile peers: answers that never end,
batches that repeat or do not link, listings that are not txids, a URL that leads back
to the node itself; and a started network is closed while its peer hangs.
"""

from __future__ import annotations

import hashlib
import io
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from factories import mine_tip, wait_until
from factories_market import add_mul_model, register_tx
from stand_in_peer import StandInPeer, dripping, endless, raw, silent
from werkzeug.serving import make_server

from modelchain.chain.peers import (
    MAX_LOCATOR_HASHES,
    PENALTY_MALFORMED,
    STATE_BANNED,
    STATE_CONNECTED,
    STATE_SELF,
    STATE_UNREACHABLE,
)
from modelchain.market import network
from modelchain.market.client import sign_call
from modelchain.market.config import NodeConfig, dev_wallet
from modelchain.market.network import (
    Network,
    PacedStream,
    PeerLink,
    PeerMalformed,
    continue_locator,
    parse_sync_status,
)
from modelchain.market.node import MarketNode
from modelchain.models_store.errors import ModelValidationTimeout
from modelchain.web import create_app

DEV = dev_wallet()

Open = Callable[..., MarketNode]
Serve = Callable[[MarketNode], str]


@pytest.fixture
def open_market(tmp_path: Path) -> Iterator[Open]:
    opened: list[MarketNode] = []

    def open_(name: str, network: str = "regtest", peers: tuple[str, ...] = ()) -> MarketNode:
        config = NodeConfig(data_dir=tmp_path / name, network=network, mine=False, peers=peers)
        node = MarketNode(config)
        opened.append(node)
        return node

    yield open_
    for node in opened:
        node.close()


@pytest.fixture
def serve() -> Iterator[Serve]:
    servers: list[Any] = []

    def serve_(node: MarketNode) -> str:
        server = make_server("127.0.0.1", 0, create_app(node=node), threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield serve_
    for server in servers:
        server.shutdown()
        server.server_close()


def link_of(node: MarketNode) -> PeerLink:
    (peer,) = node.network.peer_list()
    return PeerLink(node.network, peer.url)


def transfer(node: MarketNode, nonce: int, amount: int) -> str:
    args = {"to": "ab" * 32, "amount": amount}
    tx = sign_call(DEV, node.params.chain_id, nonce, "coin", "transfer", args)
    node.submit_tx(tx)
    return tx.txid


def test_a_round_pulls_the_chain_of_a_peer_with_more_work(open_market: Open, serve: Serve) -> None:
    a = open_market("a")
    for _ in range(15):
        mine_tip(a.chain)
    b = open_market("b", peers=(serve(a),))
    link_of(b).sync_once()
    assert b.chain.tip.hash == a.chain.tip.hash
    (peer,) = b.network.peer_list()
    assert (peer.state, peer.height, peer.tip) == (STATE_CONNECTED, 15, a.chain.tip.hash)


def test_a_round_pushes_our_chain_to_a_peer_with_less_work(open_market: Open, serve: Serve) -> None:
    a = open_market("a")
    b = open_market("b", peers=(serve(a),))
    for _ in range(5):
        mine_tip(b.chain)
    link_of(b).sync_once()
    assert a.chain.tip.hash == b.chain.tip.hash


def two_branches(
    open_market: Open, serve: Serve, a_blocks: int, b_blocks: int
) -> tuple[MarketNode, MarketNode]:
    """Node a served over HTTP and node b with a as its peer, each with a branch of its
    own from genesis (other miners, so other blocks)."""
    a = open_market("a")
    b = open_market("b", peers=(serve(a),))
    for _ in range(a_blocks):
        mine_tip(a.chain)
    for _ in range(b_blocks):
        mine_tip(b.chain, miner="ee" * 32)
    return a, b


def test_a_round_reorgs_the_lighter_side_onto_the_heavier_branch(
    open_market: Open, serve: Serve
) -> None:
    a, b = two_branches(open_market, serve, 3, 6)
    a_tip = a.chain.tip.hash
    link_of(b).sync_once()
    assert a.chain.tip.hash == b.chain.tip.hash
    assert not a.chain.is_on_main_chain(a_tip)


def test_rounds_swap_pending_txs_both_ways_without_echo(open_market: Open, serve: Serve) -> None:
    a = open_market("a")
    b = open_market("b", peers=(serve(a),))
    link = link_of(b)
    first = transfer(a, 0, 10)
    link.sync_once()
    assert first in b.chain.mempool
    second = transfer(b, 1, 20)
    link.sync_once()
    assert second in a.chain.mempool
    assert first in link.sent_txs and second in link.sent_txs
    link.sync_once()  # nothing new: nothing moves
    assert len(a.chain.mempool) == len(b.chain.mempool) == 2


def test_a_round_replicates_a_registered_model_file(open_market: Open, serve: Serve) -> None:
    a = open_market("a")
    b = open_market("b", peers=(serve(a),))
    data = add_mul_model("network-unit").SerializeToString()
    tx = register_tx(a, data, name="addmul", price=0)
    a.uploads.upload(io.BytesIO(data), tx)
    mine_tip(a.chain)
    link_of(b).sync_once()
    sha256 = tx.args["sha256"]
    assert b.network.missing_models() == [sha256]
    assert b.network.replicate_models() == 1
    assert b.models.read_verified(sha256) == data
    assert b.network.missing_models() == []


def test_an_unreachable_peer_is_marked_and_backs_off(open_market: Open) -> None:
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    b = open_market("b", peers=(f"http://127.0.0.1:{port}",))
    link = link_of(b)
    link._round()
    link._round()
    (peer,) = b.network.peer_list()
    assert (peer.state, peer.failures) == (STATE_UNREACHABLE, 2)
    assert peer.next_attempt > b.network.clock()


def test_a_peer_on_another_network_is_banned(open_market: Open, serve: Serve) -> None:
    a = open_market("a", network="dev")
    b = open_market("b", peers=(serve(a),))
    link_of(b).sync_once()
    (peer,) = b.network.peer_list()
    assert (peer.state, peer.ban_reason) == (STATE_BANNED, "peer-wrong-network")
    assert b.chain.height == 0


GENESIS = "00" * 32
TIP = "11" * 32
GOOD_STATUS = {
    "genesis": GENESIS,
    "tip": TIP,
    "height": 1,
    "work": "5",
    "locator": [TIP, GENESIS],
}


@pytest.mark.parametrize(
    "status",
    [
        {},
        [],
        GOOD_STATUS | {"height": "x"},
        GOOD_STATUS | {"height": -1},
        GOOD_STATUS | {"height": True},
        GOOD_STATUS | {"work": "lots"},
        GOOD_STATUS | {"work": 5},
        GOOD_STATUS | {"work": "9" * 101},
        GOOD_STATUS | {"genesis": "ab"},
        GOOD_STATUS | {"tip": None},
        GOOD_STATUS | {"locator": None},
        GOOD_STATUS | {"locator": [GENESIS] * (MAX_LOCATOR_HASHES + 1)},
        GOOD_STATUS | {"locator": ["../peers"]},
        GOOD_STATUS | {"node_id": 7},
    ],
    ids=[
        "empty",
        "not an object",
        "height not a number",
        "height negative",
        "height a bool",
        "work not a number",
        "work not a string",
        "work too long",
        "genesis not a hash",
        "tip not a hash",
        "no locator",
        "locator too long",
        "locator item not a hash",
        "node id not a string",
    ],
)
def test_a_malformed_sync_status_is_refused(status: Any) -> None:
    with pytest.raises(PeerMalformed) as err:
        parse_sync_status(status)
    assert err.value.code == "peer-malformed-answer"


def test_a_well_formed_sync_status_is_read_whole() -> None:
    status = parse_sync_status(GOOD_STATUS | {"node_id": "ab12"})
    assert (status.info.tip, status.info.height, status.info.work) == (TIP, 1, 5)
    assert status.locator == (TIP, GENESIS)
    assert status.node_id == "ab12"


def test_the_next_batch_locator_starts_at_the_last_block_and_stays_within_the_bound() -> None:
    base = tuple(f"{i:064x}" for i in range(MAX_LOCATOR_HASHES))
    locator = continue_locator("ff" * 32, base)
    assert len(locator) == MAX_LOCATOR_HASHES
    assert (locator[0], locator[1], locator[-1]) == ("ff" * 32, base[0], base[-1])
    assert continue_locator("ff" * 32, base[:3]) == ("ff" * 32, *base[:3])


# --- hostile and broken peers ------------------------------------------------------------------


@pytest.fixture
def stand_in() -> Iterator[Callable[..., StandInPeer]]:
    started: list[StandInPeer] = []

    def start(routes: dict[str, Any] | None = None) -> StandInPeer:
        peer = StandInPeer(routes or {})
        started.append(peer)
        return peer

    yield start
    for peer in started:
        peer.close()


def status_of(node: MarketNode, **changes: Any) -> dict[str, Any]:
    """The node's own sync status as another node would answer it (not our node id)."""
    return node.network.sync_status() | {"node_id": "stand-in"} | changes


def heavier_status(a: MarketNode) -> dict[str, Any]:
    """A's status, claiming far more work than any real chain has, on a tip never sent."""
    return status_of(a, work=str(10**30), tip="ee" * 32)


def blocks_hex(a: MarketNode, heights: range) -> list[str]:
    blocks = [a.chain.block_at(h) for h in heights]
    return [block.to_bytes().hex() for block in blocks if block is not None]


def peer_serving_batch(
    open_market: Open, stand_in: Callable[..., StandInPeer], heights: Any, more: bool
) -> tuple[MarketNode, StandInPeer]:
    """Node a with 3 blocks, and a stand-in peer that claims far more work than a and
    answers every sync request with a's blocks at `heights`."""
    a = open_market("a")
    for _ in range(3):
        mine_tip(a.chain)
    peer = stand_in(
        {
            "/api/v1/sync/status": heavier_status(a),
            "/api/v1/sync/blocks": {"blocks": blocks_hex(a, heights), "more": more},
            "/api/v1/sync/mempool": {"size": 0, "txids": []},
        }
    )
    return a, peer


def the_peer(node: MarketNode) -> Any:
    (peer,) = node.network.peer_list()
    return peer


def test_a_peer_repeating_one_batch_ends_the_round_with_the_blocks_it_gave(
    open_market: Open, stand_in: Callable[..., StandInPeer]
) -> None:
    a, peer = peer_serving_batch(open_market, stand_in, range(1, 4), more=True)
    b = open_market("b", peers=(peer.url,))
    link_of(b).sync_once()
    assert b.chain.tip.hash == a.chain.tip.hash
    assert peer.count("/api/v1/sync/blocks") == 2  # the repeat is seen at once
    assert the_peer(b).ban_score == 0  # a peer reorganising meanwhile looks the same


@pytest.mark.parametrize(
    ("heights", "what"),
    [(range(2, 4), "builds on no block we named"), ([1, 3], "blocks that do not link")],
    ids=["first block on no locator hash", "gap in the batch"],
)
def test_a_batch_that_does_not_carry_our_chain_forward_is_malformed(
    open_market: Open, stand_in: Callable[..., StandInPeer], heights: Any, what: str
) -> None:
    _, peer = peer_serving_batch(open_market, stand_in, heights, more=False)
    b = open_market("b", peers=(peer.url,))
    link_of(b)._round()
    assert b.chain.height == 0, what
    assert (the_peer(b).ban_score, the_peer(b).ban_reason) == (
        PENALTY_MALFORMED,
        "peer-malformed-answer",
    )


def test_a_long_sync_in_many_batches_reaches_the_tip_without_offending_the_peer(
    open_market: Open, serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(network, "SYNC_BATCH_BLOCKS", 1)  # a batch per block: many locators
    a = open_market("a")
    for _ in range(MAX_LOCATOR_HASHES + 20):
        mine_tip(a.chain)
    b = open_market("b", peers=(serve(a),))
    link_of(b)._round()
    assert b.chain.tip.hash == a.chain.tip.hash
    assert (the_peer(b).state, the_peer(b).ban_score) == (STATE_CONNECTED, 0)


def test_a_peer_answering_without_end_is_cut_off_and_penalised(
    open_market: Open, stand_in: Callable[..., StandInPeer]
) -> None:
    peer = stand_in({"/api/v1/sync/status": endless()})
    b = open_market("b", peers=(peer.url,))
    link_of(b)._round()
    assert (the_peer(b).ban_reason, the_peer(b).failures) == ("node-answer-too-large", 1)


def test_a_peer_answering_with_json_that_does_not_parse_is_penalised(
    open_market: Open, stand_in: Callable[..., StandInPeer]
) -> None:
    peer = stand_in({"/api/v1/sync/status": raw(b"{{{")})
    b = open_market("b", peers=(peer.url,))
    link_of(b)._round()
    assert the_peer(b).ban_reason == "node-bad-answer"


@pytest.mark.parametrize("status", [429, 408, 503])
def test_a_peer_saying_not_now_backs_off_without_penalty(
    open_market: Open, stand_in: Callable[..., StandInPeer], status: int
) -> None:
    busy = (status, {"error": {"code": "busy", "message": "not now"}})
    peer = stand_in({"/api/v1/sync/status": busy})
    b = open_market("b", peers=(peer.url,))
    link_of(b)._round()
    assert (the_peer(b).state, the_peer(b).ban_score) == (STATE_UNREACHABLE, 0)


@pytest.mark.parametrize(
    "txids",
    [["../peers"], ["ab" * 32] * (network.MAX_MEMPOOL_IDS + 1), "ab" * 32],
    ids=["not a txid", "too many", "not a list"],
)
def test_a_malformed_mempool_listing_is_penalised_and_nothing_is_fetched(
    open_market: Open, stand_in: Callable[..., StandInPeer], txids: Any
) -> None:
    b = open_market("b")
    peer = stand_in(
        {
            "/api/v1/sync/status": status_of(b),
            "/api/v1/sync/mempool": {"size": 1, "txids": txids},
        }
    )
    b.network.peers.add(peer.url)
    PeerLink(b.network, peer.url)._round()
    assert b.network.peers.get(peer.url).ban_reason == "peer-malformed-answer"  # type: ignore[union-attr]
    assert [r for r in peer.requests if r.startswith("/api/v1/txs")] == []


def test_a_tx_whose_fetch_failed_is_asked_for_again(
    open_market: Open, stand_in: Callable[..., StandInPeer]
) -> None:
    b = open_market("b")
    txid = "ab" * 32
    peer = stand_in(
        {
            "/api/v1/sync/status": status_of(b),
            "/api/v1/sync/mempool": {"size": 1, "txids": [txid]},
            f"/api/v1/txs/{txid}": (500, {"error": {"code": "oops", "message": "down"}}),
        }
    )
    b.network.peers.add(peer.url)
    link = PeerLink(b.network, peer.url)
    link._round()
    assert txid not in link.seen_txs
    peer.routes[f"/api/v1/txs/{txid}"] = (404, {"error": {"code": "tx-not-found", "message": ""}})
    link.sync_once()
    assert txid in link.seen_txs
    assert peer.count(f"/api/v1/txs/{txid}") == 2


def test_a_peer_url_that_leads_back_to_this_node_is_marked_self_and_left_alone(
    open_market: Open, serve: Serve
) -> None:
    b = open_market("b")
    mine_tip(b.chain)
    url = serve(b)
    b.network.peers.add(url)
    link = PeerLink(b.network, url)
    link.sync_once()
    peer = b.network.peers.get(url)
    assert peer is not None and peer.state == STATE_SELF
    assert not b.network.peers.is_due(url, b.network.clock())
    link.start()  # its thread sees the mark and ends
    link.join(30)
    assert not link.is_alive()
    assert peer.ban_score == 0


def test_self_peers_are_not_asked_for_model_files(open_market: Open, serve: Serve) -> None:
    b = open_market("b")
    url = serve(b)
    b.network.peers.add(url)
    with b.network.lock:
        b.network.peers.mark_self(url)
    assert b.network.file_sources("ab" * 32) == []


@pytest.mark.parametrize("route", [silent, dripping], ids=["silent", "dripping"])
def test_close_ends_every_thread_while_a_peer_hangs(
    open_market: Open, stand_in: Callable[..., StandInPeer], route: Callable[..., Any]
) -> None:
    b = open_market("b")
    peer = stand_in()
    peer.routes["/api/v1/sync/status"] = route(peer)
    net = Network(b.chain, b.models, b.submit_tx, (peer.url,), http_timeout=1.0)
    net.start()
    wait_until(lambda: peer.count("/api/v1/sync/status") > 0, 30, "the link to ask the peer")
    net.close()
    threads = [*net.links.values(), net._thread]
    assert [t.name for t in threads if t is not None and t.is_alive()] == []


def test_market_node_close_leaves_no_network_thread_running(
    open_market: Open, stand_in: Callable[..., StandInPeer]
) -> None:
    peer = stand_in()
    peer.routes["/api/v1/sync/status"] = dripping(peer)
    b = open_market("b", peers=(peer.url,))
    b.network.start()
    wait_until(lambda: peer.count("/api/v1/sync/status") > 0, 30, "the link to ask the peer")
    b.close()
    link_names = {f"modelchain-peer-{peer.url}"}
    assert [t.name for t in threading.enumerate() if t.name in link_names] == []
    assert b.network._thread is not None and not b.network._thread.is_alive()


class _Chunks:
    """A stream that gives `chunk` per read, forever."""

    def __init__(self, chunk: bytes) -> None:
        self.chunk = chunk

    def read1(self, size: int) -> bytes:
        return self.chunk[:size]

    def close(self) -> None:
        pass


def test_a_model_file_that_drips_is_given_up_after_the_grace_period() -> None:
    now = [0.0]
    stream = PacedStream(_Chunks(b"x"), lambda: False, clock=lambda: now[0])
    assert stream.read(10) == b"x"  # slow, but still within the grace period
    now[0] = network.FILE_GRACE_SECONDS + 1
    with pytest.raises(TimeoutError):
        stream.read(10)


def test_a_model_file_at_a_fair_pace_is_read_on() -> None:
    now = [0.0]
    chunk = b"x" * network.READ_CHUNK_BYTES
    seconds_per_read = len(chunk) / network.MIN_FILE_BYTES_PER_SECOND
    stream = PacedStream(_Chunks(chunk), lambda: False, clock=lambda: now[0])
    for _ in range(int((network.FILE_GRACE_SECONDS + 5) / seconds_per_read)):
        assert stream.read(len(chunk)) == chunk
        now[0] += seconds_per_read


def test_a_model_file_download_stops_when_the_node_stops() -> None:
    stream = PacedStream(_Chunks(b"x"), lambda: True)
    with pytest.raises(ConnectionAbortedError):
        stream.read(10)


def fetching_from_a_stand_in(
    open_market: Open,
    stand_in: Callable[..., StandInPeer],
    body: bytes,
    *,
    sha256: str | None = None,
    length: int | None = None,
) -> tuple[MarketNode, str]:
    """Node b with the add-mul model registered by a bare tx (no upload: b lacks the
    file; `sha256` registers other bytes), whose one peer is a stand-in answering the
    file with `body` (a `length` above it: cut off). Returns b and the sha256."""
    peer = stand_in()
    b = open_market("b", peers=(peer.url,))
    data = add_mul_model("network-unit").SerializeToString()
    tx = register_tx(b, data, name="addmul", price=0, sha256=sha256)
    b.submit_tx(tx)
    mine_tip(b.chain)
    sha256 = tx.args["sha256"]
    assert b.network.missing_models() == [sha256]
    route = raw(body, "application/octet-stream", length=length)
    peer.routes[f"/api/v1/models/files/{sha256}"] = route
    return b, sha256


def test_a_peer_serving_other_bytes_for_a_model_file_is_banned_and_nothing_is_kept(
    open_market: Open, stand_in: Callable[..., StandInPeer]
) -> None:
    b, sha256 = fetching_from_a_stand_in(open_market, stand_in, b"not the model")
    assert b.network.replicate_models() == 0
    assert (the_peer(b).state, the_peer(b).ban_reason) == (STATE_BANNED, "store-hash-mismatch")
    assert b.network.missing_models() == [sha256]


def test_a_registered_file_that_fails_validation_is_not_kept_nor_blamed_on_the_peer(
    open_market: Open, stand_in: Callable[..., StandInPeer]
) -> None:
    junk = b"registered, but not an ONNX model"
    registered = hashlib.sha256(junk).hexdigest()
    b, sha256 = fetching_from_a_stand_in(open_market, stand_in, junk, sha256=registered)
    assert b.network.replicate_models() == 0
    assert the_peer(b).ban_score == 0
    assert b.network.missing_models() == [sha256]
    # asked again much later than a file no peer had
    assert b.network._model_retry[sha256] > b.network.clock() + network.MODEL_RETRY_SECONDS


def test_a_file_whose_validation_ran_out_of_time_is_tried_again_sooner(
    open_market: Open, stand_in: Callable[..., StandInPeer]
) -> None:
    data = add_mul_model("network-unit").SerializeToString()
    b, sha256 = fetching_from_a_stand_in(open_market, stand_in, data)

    def out_of_time(path: Path) -> None:  # as on a machine too loaded to validate in time
        raise ModelValidationTimeout("validation took longer than its limit")

    b.network.check_model = out_of_time
    assert b.network.replicate_models() == 0
    assert the_peer(b).ban_score == 0
    wait = b.network._model_retry[sha256] - b.network.clock()
    assert network.MODEL_RETRY_SECONDS < wait <= network.MODEL_LIMITS_RETRY_SECONDS
    assert wait < network.MODEL_INVALID_RETRY_SECONDS


def test_a_model_file_cut_off_midway_is_a_broken_download_not_a_lie(
    open_market: Open, stand_in: Callable[..., StandInPeer]
) -> None:
    b, _ = fetching_from_a_stand_in(open_market, stand_in, b"x" * 100, length=100_000)
    assert b.network.replicate_models() == 0
    assert the_peer(b).ban_score == 0
    assert list(b.models.root.glob("*")) == []  # no partial file left behind


def test_pushing_a_heavier_branch_longer_than_a_batch_carries_on_where_it_left_off(
    open_market: Open, serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(network, "PUSH_BATCH_BLOCKS", 2)
    a, b = two_branches(open_market, serve, 3, 8)
    link = link_of(b)
    # the first batches keep b's branch lighter than a's tip, so a's locator does not
    # move: b must go on after the last block it sent, not send the same ones again
    for _ in range(8):
        link.sync_once()
        if a.chain.tip.hash == b.chain.tip.hash:
            break
    assert a.chain.tip.hash == b.chain.tip.hash
