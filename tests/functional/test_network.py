"""Several real nodes form a network over HTTP: sync, gossip, model replication, partitions.

Each test starts `modelchain node start --network regtest --port 0` processes on
127.0.0.1 with their own data dirs (tests/node_process.py), joins them with
`--peer URL`, drives them through their HTTP APIs and the CLI, and polls with deadlines
until the nodes agree. A last test points a node at a stand-in peer (a small HTTP
server in this process) that serves a block breaking a consensus rule: the node bans
it and serves on. Every node's stderr is printed when a test fails.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from factories import FakeClock, key_for, make_block, open_node, wait_until
from factories_market import add_mul_model
from node_process import Cli, NodeProcess
from stand_in_peer import StandInPeer

from modelchain.chain.node import ChainNode
from modelchain.chain.peers import BAN_SCORE
from modelchain.market.cli import cli
from modelchain.market.client import NodeClient, sign_call
from modelchain.market.config import dev_wallet, network_params

log = logging.getLogger(__name__)
pytestmark = pytest.mark.slow
SYNC_SECONDS = 60.0
DEV = dev_wallet()
ALICE = key_for("network-alice")

Start = Callable[..., NodeProcess]


@pytest.fixture
def start_node(tmp_path: Path) -> Iterator[Start]:
    """Starts nodes by name under tmp_path; stops them all by pid, printing their stderr."""
    started: list[NodeProcess] = []

    def start(name: str, **options: Any) -> NodeProcess:
        node = NodeProcess.start(tmp_path / name, **options)
        log.info("node %s (pid %d) at %s %s", name, node.proc.pid, node.url, options)
        started.append(node)
        return node

    try:
        yield start
    finally:
        for node in started:
            node.stop()
        for node in {node.data: node for node in started}.values():  # a restart shares its file
            stderr = node.stderr_path.read_text(errors="replace")
            print(f"--- stderr of node {node.data.name} ---\n{stderr[-5000:]}", file=sys.stderr)


def info(node: NodeProcess) -> dict[str, Any]:
    return NodeClient(node.url).chain_info()


def sync_blocks(nodes: list[NodeProcess], timeout: float = SYNC_SECONDS) -> str:
    """Wait until every node has the same tip; returns it."""

    def same_tip() -> bool:
        return len({info(node)["tip"] for node in nodes}) == 1

    wait_until(same_tip, timeout, f"equal tips on {[n.data.name for n in nodes]}")
    return info(nodes[0])["tip"]


def transfer(node: NodeProcess, to: str, amount: int) -> str:
    """The dev wallet sends `amount` to `to` through `node`; returns the txid."""
    client = NodeClient(node.url)
    nonce = client.account(DEV.account)["pending_nonce"]
    chain_id = info(node)["chain_id"]
    tx = sign_call(DEV, chain_id, nonce, "coin", "transfer", {"to": to, "amount": amount})
    client.submit_tx(tx)
    return tx.txid


def balances(node: NodeProcess, accounts: list[str]) -> dict[str, int]:
    client = NodeClient(node.url)
    return {account: client.account(account)["balance"] for account in accounts}


def test_a_new_node_with_a_peer_syncs_the_chain_another_mined(
    start_node: Start, tmp_path: Path
) -> None:
    a = start_node("a", mine=True)
    log.info("a mines 40 blocks")
    a.mine(40)
    log.info("b starts empty with --peer a, and syncs")
    b = start_node("b", mine=False, peers=[a.url])
    tip = sync_blocks([a, b])
    assert info(b)["height"] == 40
    assert info(b)["cumulative_work"] == info(a)["cumulative_work"]
    assert "sync from" in b.stderr()
    run = Cli(tmp_path / "home")
    run.url = b.url
    (peer,) = run("peers")
    assert (peer["url"], peer["state"], peer["ban_score"]) == (a.url, "connected", 0)
    human = CliRunner().invoke(cli, ["--node", b.url, "peers"])
    assert human.exit_code == 0 and a.url in human.output and "connected" in human.output
    log.info("a block mined on a afterwards reaches b too")
    a.mine(1)
    assert sync_blocks([a, b]) != tip


def test_a_tx_sent_to_one_node_is_mined_by_its_peer(start_node: Start) -> None:
    a = start_node("a", mine=False)
    b = start_node("b", mine=True, peers=[a.url])
    log.info("a transfer goes to a, which does not mine")
    txid = transfer(a, ALICE.account, 1_000)
    detail = NodeClient(a.url).wait_for_confirmations(txid, 1, timeout=SYNC_SECONDS)
    sync_blocks([a, b])
    block = NodeClient(a.url).get(f"/api/v1/blocks/{detail['block_hash']}")
    assert block["miner"] == info(b)["node_account"]
    assert balances(a, [ALICE.account]) == balances(b, [ALICE.account]) == {ALICE.account: 1_000}
    assert NodeClient(b.url).tx(txid)["status"] == "confirmed"


def test_blocks_and_txs_cross_a_line_of_three_nodes(start_node: Start) -> None:
    a = start_node("a", mine=True)
    b = start_node("b", mine=False, peers=[a.url])
    c = start_node("c", mine=False, peers=[b.url])
    log.info("blocks mined on a reach c through b")
    a.mine(3)
    sync_blocks([a, b, c])
    log.info("a tx sent to c reaches a through b; a mines it and the block comes back")
    txid = transfer(c, ALICE.account, 700)
    NodeClient(c.url).wait_for_confirmations(txid, 1, timeout=SYNC_SECONDS)
    sync_blocks([a, b, c])
    assert {n.data.name: balances(n, [ALICE.account])[ALICE.account] for n in (a, b, c)} == {
        "a": 700,
        "b": 700,
        "c": 700,
    }


def test_a_model_uploaded_to_one_node_is_replicated_to_its_peer(
    start_node: Start, tmp_path: Path
) -> None:
    a = start_node("a", mine=False)
    b = start_node("b", mine=True, peers=[a.url])
    model = add_mul_model("replicated").SerializeToString()
    sha256 = hashlib.sha256(model).hexdigest()
    path = tmp_path / "addmul.onnx"
    path.write_bytes(model)
    run = Cli(tmp_path / "home")
    run.url = a.url
    log.info("upload to a (b mines the registration), then wait for b to hold the file")
    run("model", "upload", str(path), "--name", "addmul", "--version", "1", "--price", "0")
    client_b = NodeClient(b.url)

    def b_has_the_file() -> bool:
        detail = client_b.get("/api/v1/models/addmul/versions/1")
        return bool(detail.get("file_available"))

    wait_until(lambda: _registered(client_b), SYNC_SECONDS, "the registration on b")
    wait_until(b_has_the_file, SYNC_SECONDS, "b to replicate the model file")
    served = client_b.get(f"/api/v1/models/files/{sha256}")
    assert hashlib.sha256(served).hexdigest() == sha256
    answer = client_b.post(
        "/v2/models/addmul/versions/1/infer",
        {
            "inputs": [
                {"name": "a", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]},
                {"name": "b", "datatype": "FP32", "shape": [3], "data": [10, 20, 30]},
            ]
        },
    )
    outputs = {o["name"]: o["data"] for o in answer["outputs"]}
    assert outputs["sum"] == [11, 22, 33]
    assert "replicated from" in b.stderr()


def _registered(client: NodeClient) -> bool:
    try:
        client.get("/api/v1/models/addmul/versions/1")
    except Exception:  # noqa: BLE001 - not registered yet
        return False
    return True


def test_partitioned_nodes_converge_on_the_most_work_chain(start_node: Start) -> None:
    a = start_node("a", mine=True)
    b = start_node("b", mine=True)
    log.info("partition: a mines 3 blocks and a transfer to alice; b mines 6 blocks")
    a.mine(3)
    txid = transfer(a, ALICE.account, 5_000)
    NodeClient(a.url).wait_for_confirmations(txid, 1, timeout=SYNC_SECONDS)
    b.mine(6)
    a_side, b_side = info(a), info(b)
    assert int(b_side["cumulative_work"]) > int(a_side["cumulative_work"])
    assert NodeClient(b.url).account(ALICE.account)["balance"] == 0
    log.info("a restarts with --peer b: it reorgs onto b's chain, alice's tx goes to b")
    a.stop()
    # a does not mine now: were both to mine alice's tx at once, two tips of equal work
    # would stay apart (each keeps the block it saw first) until some later block
    a = start_node("a", mine=False, peers=[b.url])

    def converged() -> bool:
        tips = {info(node)["tip"] for node in (a, b)}
        paid = [NodeClient(n.url).account(ALICE.account)["balance"] for n in (a, b)]
        return len(tips) == 1 and paid == [5_000, 5_000]

    wait_until(converged, SYNC_SECONDS, "both nodes on one tip where alice is paid")
    assert NodeClient(a.url).get(f"/api/v1/blocks/{b_side['height']}")["hash"] == b_side["tip"]
    assert NodeClient(a.url).get(f"/api/v1/blocks/{a_side['tip']}")["confirmations"] == 0
    accounts = [DEV.account, ALICE.account, info(a)["node_account"], info(b)["node_account"]]
    assert balances(a, accounts) == balances(b, accounts)
    assert NodeClient(a.url).tx(txid)["status"] == "confirmed"


def bad_peer_routes(chain: ChainNode) -> tuple[str, dict[str, Any]]:
    """A stand-in peer's answers: it claims more work and serves a block that pays its
    miner more than the rules allow. Returns the bad block's hash and the routes."""
    bad = make_block(chain, reward=10**12)
    genesis = chain.tip.hash
    return bad.hash, {
        "/api/v1/sync/status": {
            "chain_id": chain.params.chain_id,
            "node_id": "bad-peer",
            "genesis": genesis,
            "height": 1,
            "tip": bad.hash,
            "work": str(10**30),
            "locator": [bad.hash, genesis],
            "mempool_size": 0,
        },
        "/api/v1/sync/blocks": {
            "fork_height": 0,
            "fork_hash": genesis,
            "tip_height": 1,
            "tip": bad.hash,
            "blocks": [bad.to_bytes().hex()],
            "more": False,
        },
        "/api/v1/sync/mempool": {"size": 0, "txids": []},
    }


def test_a_peer_serving_an_invalid_block_is_banned_and_the_node_serves_on(
    start_node: Start, tmp_path: Path
) -> None:
    params = network_params("regtest")
    chain = open_node(tmp_path / "forger", params, FakeClock(params.genesis_time + 10**6))
    _, routes = bad_peer_routes(chain)
    chain.close()
    bad_peer = StandInPeer(routes)
    try:
        node = start_node("honest", mine=False, peers=[bad_peer.url])
        client = NodeClient(node.url)

        def banned() -> bool:
            (peer,) = client.get("/api/v1/peers")["peers"]
            return peer["state"] == "banned"

        wait_until(banned, SYNC_SECONDS, "the bad peer to be banned")
        (peer,) = client.get("/api/v1/peers")["peers"]
        assert peer["ban_score"] >= BAN_SCORE
        assert peer["ban_reason"].startswith("block-")
        assert "/api/v1/sync/blocks" in bad_peer.requests
        assert info(node)["height"] == 0
        assert node.proc.poll() is None
        assert "penalised" in node.stderr()
    finally:
        bad_peer.close()
