"""One peer link's rounds (market/network.py) between in-process nodes over real HTTP.

Node A's Flask app is served on 127.0.0.1 (port 0) by werkzeug in a thread; node B has A
as its peer but is not started, so the test runs B's link rounds itself, one at a time,
and looks at both nodes after each: pull, push, tx swap, model replication, backoff and
bans, with no background threads racing the assertions.
"""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from factories import mine_tip
from factories_market import add_mul_model, register_tx
from werkzeug.serving import make_server

from modelchain.chain.peers import STATE_BANNED, STATE_CONNECTED, STATE_UNREACHABLE
from modelchain.market.client import sign_call
from modelchain.market.config import NodeConfig, dev_wallet
from modelchain.market.network import PeerLink, PeerMalformed, _parse_tip
from modelchain.market.node import MarketNode
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


def test_a_round_reorgs_the_lighter_side_onto_the_heavier_branch(
    open_market: Open, serve: Serve
) -> None:
    a = open_market("a")
    b = open_market("b", peers=(serve(a),))
    for _ in range(3):
        mine_tip(a.chain)
    for _ in range(6):
        mine_tip(b.chain, miner="ee" * 32)
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


@pytest.mark.parametrize(
    "status",
    [
        {},
        {"genesis": "ab", "tip": "cd", "height": "x", "work": "1", "locator": []},
        {"genesis": "ab", "tip": "cd", "height": 1, "work": "lots", "locator": []},
        {"genesis": "ab", "tip": "cd", "height": 1, "work": "1", "locator": None},
    ],
    ids=["empty", "height not a number", "work not a number", "no locator"],
)
def test_a_malformed_sync_status_is_refused(status: dict[str, Any]) -> None:
    with pytest.raises(PeerMalformed) as err:
        _parse_tip(status)
    assert err.value.code == "peer-malformed-answer"
