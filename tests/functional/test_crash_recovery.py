"""A node killed with SIGKILL at random points comes back whole.

The test plans a chain (a main branch, then a heavier fork that forces a
reorg, then txs to mine), runs a node process on it that imports and mines,
and kills it with SIGKILL after a random number of progress lines, many
times. After every kill the data directory must open on a valid tip whose
state equals a replay from genesis; at the end the node must reach the same
tip and state as a node that ran the plan without crashing.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from factories import (
    FakeClock,
    funded_params,
    key_for,
    main_chain,
    make_block,
    open_node,
    replay_chain,
)

from modelchain.chain.tx import make_transfer

log = logging.getLogger(__name__)
SCRIPT = Path(__file__).with_name("crash_node.py")
USERS = ("alice", "bob", "carol")
KILLS = 30


def build_plan(tmp: Path) -> dict:
    """Blocks for a main branch and a heavier fork from height 4, plus txs to mine."""
    params = funded_params(*USERS, amount=10_000_000)
    node = open_node(tmp / "planner", params, FakeClock(params.genesis_time + 10**8))
    keys = [key_for(u) for u in USERS]
    genesis = node.tip.hash
    blocks = []
    nonces = {k.account: 0 for k in keys}

    def transfers(count: int) -> list:
        txs = []
        for i in range(count):
            sender, receiver = keys[i % 3], keys[(i + 1) % 3]
            txs.append(
                make_transfer(
                    sender,
                    chain_id=params.chain_id,
                    nonce=nonces[sender.account],
                    fee=500 + i,
                    to=receiver.account,
                    amount=1000 + i,
                )
            )
            nonces[sender.account] += 1
        return txs

    parent = genesis
    fork_base = None
    for height in range(1, 13):
        block = make_block(node, parent, transfers(3))
        node.submit_block(block)
        blocks.append(block)
        parent = block.hash
        if height == 4:
            fork_base = block.hash
    # the fork: built on height 4 with the same senders, so its txs differ
    nonces = {k.account: 0 for k in keys}
    for block in blocks[:4]:
        for tx in block.txs[1:]:
            nonces[tx.sender] += 1
    parent = fork_base
    for _ in range(12):
        block = make_block(node, parent, transfers(2), miner=key_for("fork-miner").account)
        node.submit_block(block)
        blocks.append(block)
        parent = block.hash
    assert node.tip.hash == parent, "the fork must carry more work"
    mempool_txs = transfers(24)
    node.close()
    return {
        "allocations": [list(a) for a in params.genesis_allocations],
        "blocks": [b.to_bytes().hex() for b in blocks],
        "txs": [tx.raw.hex() for tx in mempool_txs],
        "miner": key_for("miner").account,
        "target_height": 16 + 12,
    }


def run_to_end(data: Path, plan_path: Path) -> str:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(data), str(plan_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("DONE "), proc.stdout
    return last.split()[1]


def run_and_kill(data: Path, plan_path: Path, lines_before_kill: int, rng: random.Random) -> bool:
    """Start the node, SIGKILL it after N progress lines; True if it finished first."""
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(data), str(plan_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seen = 0
        assert proc.stdout is not None
        for line in proc.stdout:
            seen += 1
            if line.startswith("DONE"):
                proc.wait(timeout=30)
                return True
            if seen >= lines_before_kill:
                # a jitter of up to 3 ms lands the kill anywhere inside the next write,
                # not only between steps; it is kill timing, not waiting for anything
                time.sleep(rng.random() * 0.003)
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
                assert proc.returncode == -signal.SIGKILL
                return False
        proc.wait(timeout=30)
        if proc.returncode != 0:
            pytest.fail(f"node died on its own: {proc.stderr.read() if proc.stderr else ''}")
        return True
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def check_data_dir_is_whole(data: Path, plan: dict) -> int:
    """Open a copy of the data dir as a restarted node would; its state must equal a replay.

    A copy, so that the node process itself does every recovery."""
    params = funded_params(*USERS, amount=10_000_000)
    assert [list(a) for a in params.genesis_allocations] == plan["allocations"]
    copy = data.with_name(data.name + "-check")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(data, copy)
    node = open_node(copy, params)
    try:
        expected = replay_chain(params, main_chain(node))
        assert node.store.snapshot() == expected.snapshot()
        integrity = node.store.db.execute("PRAGMA integrity_check").fetchone()[0]
        assert integrity == "ok"
        return node.height
    finally:
        node.close()


@pytest.mark.slow
def test_node_killed_at_random_points_recovers_to_the_same_state(tmp_path: Path) -> None:
    plan = build_plan(tmp_path)
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(json.dumps(plan))

    log.info("reference run without crashes")
    reference_tip = run_to_end(tmp_path / "reference", plan_path)

    rng = random.Random(int(os.environ.get("CRASH_SEED", "7")))
    data = tmp_path / "crashing"
    finished = False
    for kill in range(KILLS):
        lines = rng.randint(1, 6)
        finished = run_and_kill(data, plan_path, lines, rng)
        height = check_data_dir_is_whole(data, plan)
        log.info("kill %d after %d lines: whole at height %d", kill, lines, height)
        if finished:
            break
    crashed_tip = run_to_end(data, plan_path)

    assert crashed_tip == reference_tip
    params = funded_params(*USERS, amount=10_000_000)
    reference = open_node(tmp_path / "reference", params)
    crashed = open_node(data, params)
    try:
        assert crashed.store.snapshot() == reference.store.snapshot()
        assert crashed.height == plan["target_height"]
    finally:
        reference.close()
        crashed.close()
