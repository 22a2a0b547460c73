"""The peer routes of /api/v1: peers, sync status, blocks after a locator, mempool txids.

A regtest node with a few blocks and a pending tx answers through Flask's test client;
every bad input is refused with its code and leaves the node as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from factories import mine_tip
from flask.testing import FlaskClient

from modelchain.chain.block import decode_block
from modelchain.chain.peers import MAX_LOCATOR_HASHES
from modelchain.market import network
from modelchain.market.client import sign_call
from modelchain.market.config import NodeConfig, dev_wallet
from modelchain.market.node import MarketNode
from modelchain.web import create_app

BLOCKS = 6


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MarketNode]:
    data: Path = tmp_path_factory.mktemp("peers-api")
    config = NodeConfig(
        data_dir=data, network="regtest", mine=False, peers=("HTTP://Peer.example:8080/",)
    )
    market = MarketNode(config)
    for _ in range(BLOCKS):
        mine_tip(market.chain)
    tx = sign_call(
        dev_wallet(), market.params.chain_id, 0, "coin", "transfer", {"to": "ab" * 32, "amount": 5}
    )
    market.submit_tx(tx)
    yield market
    market.close()


@pytest.fixture
def client(node: MarketNode) -> FlaskClient:
    return create_app(node=node).test_client()


def hash_at(node: MarketNode, height: int) -> str:
    block_hash = node.chain.store.chain_hash_at(height)
    assert block_hash is not None
    return block_hash


def state(node: MarketNode) -> tuple[str, list[str], list[dict[str, Any]]]:
    peers = [peer.to_json() for peer in node.network.peer_list()]
    return node.chain.tip.hash, sorted(node.chain.mempool.by_id), peers


def test_peers_lists_the_configured_peer_normalized(client: FlaskClient) -> None:
    (peer,) = client.get("/api/v1/peers").get_json()["peers"]
    assert peer["url"] == "http://peer.example:8080"
    assert (peer["source"], peer["state"], peer["ban_score"], peer["height"]) == (
        "config",
        "new",
        0,
        -1,
    )


def test_sync_status_names_the_tip_its_work_and_a_locator_ending_at_genesis(
    client: FlaskClient, node: MarketNode
) -> None:
    status = client.get("/api/v1/sync/status").get_json()
    assert (status["height"], status["tip"]) == (BLOCKS, node.chain.tip.hash)
    assert int(status["work"]) == node.chain.tip.work
    assert status["locator"][0] == node.chain.tip.hash
    assert status["locator"][-1] == status["genesis"] == hash_at(node, 0)
    assert status["mempool_size"] == 1
    assert status["node_id"] == node.network.node_id  # how a node knows it reached itself


def test_sync_blocks_from_genesis_are_the_main_chain_oldest_first(
    client: FlaskClient, node: MarketNode
) -> None:
    answer = client.post("/api/v1/sync/blocks", json={"locator": [hash_at(node, 0)]}).get_json()
    blocks = [decode_block(bytes.fromhex(raw)) for raw in answer["blocks"]]
    assert [b.hash for b in blocks] == [hash_at(node, h) for h in range(1, BLOCKS + 1)]
    assert (answer["fork_height"], answer["tip_height"], answer["more"]) == (0, BLOCKS, False)


def test_sync_blocks_start_after_the_first_locator_hash_on_the_main_chain(
    client: FlaskClient, node: MarketNode
) -> None:
    locator = ["cd" * 32, hash_at(node, 4), hash_at(node, 2), hash_at(node, 0)]
    answer = client.post("/api/v1/sync/blocks", json={"locator": locator}).get_json()
    assert (answer["fork_height"], answer["fork_hash"]) == (4, hash_at(node, 4))
    assert len(answer["blocks"]) == BLOCKS - 4


def test_sync_blocks_from_a_locator_of_unknown_hashes_start_at_genesis(
    client: FlaskClient,
) -> None:
    answer = client.post("/api/v1/sync/blocks", json={"locator": ["cd" * 32]}).get_json()
    assert answer["fork_height"] == 0
    assert len(answer["blocks"]) == BLOCKS


def test_sync_blocks_stop_at_max_blocks_and_say_there_are_more(
    client: FlaskClient, node: MarketNode
) -> None:
    body = {"locator": [hash_at(node, 0)], "max_blocks": 2}
    answer = client.post("/api/v1/sync/blocks", json=body).get_json()
    assert len(answer["blocks"]) == 2
    assert answer["more"] is True


def test_sync_blocks_stop_at_the_byte_bound_but_always_send_one(node: MarketNode) -> None:
    answer = network.blocks_after_locator(node.chain, (hash_at(node, 0),), 100, max_bytes=1)
    assert len(answer["blocks"]) == 1
    assert answer["more"] is True


def test_sync_mempool_lists_the_pending_txids(client: FlaskClient, node: MarketNode) -> None:
    answer = client.get("/api/v1/sync/mempool").get_json()
    assert answer == {"size": 1, "txids": sorted(node.chain.mempool.by_id)}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "sync-bad-locator"),
        ({"locator": "ab" * 32}, "sync-bad-locator"),
        ({"locator": []}, "sync-bad-locator"),
        ({"locator": ["ab" * 32] * (MAX_LOCATOR_HASHES + 1)}, "sync-bad-locator"),
        ({"locator": ["xyz"]}, "sync-bad-locator"),
        ({"locator": ["AB" * 32]}, "sync-bad-locator"),
        ({"locator": [7]}, "sync-bad-locator"),
        ({"locator": ["ab" * 32], "max_blocks": 0}, "request-invalid"),
        ({"locator": ["ab" * 32], "max_blocks": network.MAX_SYNC_BLOCKS + 1}, "request-invalid"),
        ({"locator": ["ab" * 32], "max_blocks": "5"}, "request-invalid"),
        ({"locator": ["ab" * 32], "max_blocks": True}, "request-invalid"),
        ({"locator": ["ab" * 32], "since": 3}, "request-invalid"),
        (["ab" * 32], "request-invalid"),
    ],
    ids=[
        "no locator",
        "locator not a list",
        "empty locator",
        "locator too long",
        "not a hash",
        "upper-case hash",
        "a number",
        "max_blocks 0",
        "max_blocks over the bound",
        "max_blocks a string",
        "max_blocks a bool",
        "unknown key",
        "body not an object",
    ],
)
def test_sync_blocks_refuses_a_bad_body_and_changes_nothing(
    client: FlaskClient, node: MarketNode, body: Any, code: str
) -> None:
    before = state(node)
    response = client.post("/api/v1/sync/blocks", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == code
    assert state(node) == before


def test_sync_blocks_refuses_a_body_that_is_not_json(client: FlaskClient, node: MarketNode) -> None:
    before = state(node)
    response = client.post("/api/v1/sync/blocks", data="locator", content_type="text/plain")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "request-invalid"
    assert state(node) == before


@pytest.mark.parametrize("limit", ["0", str(network.MAX_MEMPOOL_IDS + 1), "x", "-1"])
def test_sync_mempool_refuses_a_bad_limit(
    client: FlaskClient, node: MarketNode, limit: str
) -> None:
    before = state(node)
    response = client.get(f"/api/v1/sync/mempool?limit={limit}")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "query-invalid"
    assert state(node) == before
