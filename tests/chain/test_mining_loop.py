"""The mining loop mines when there is work, and only then."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from factories import funded_params, key_for, open_node

from modelchain.chain.miner import Miner
from modelchain.chain.mining import MiningLoop
from modelchain.chain.node import ChainNode
from modelchain.chain.tx import make_transfer


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate.__doc__ or predicate}")
        time.sleep(0.02)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[ChainNode]:
    params = funded_params("alice")
    node = open_node(tmp_path, params)
    node.clock = time.time  # real time: the loop builds templates on the clock
    yield node
    node.close()


@pytest.fixture
def loop(node: ChainNode) -> Iterator[MiningLoop]:
    miner = Miner(workers=1)
    loop = MiningLoop(node, miner, key_for("miner").account)
    loop.start()
    yield loop
    loop.stop()
    miner.close()


def test_idle_node_mines_nothing_and_its_workers_stay_idle(
    node: ChainNode, loop: MiningLoop
) -> None:
    wait_until(lambda: loop.idle_checks >= 3)
    assert node.height == 0
    assert loop.miner.idle
    assert loop.blocks_mined == 0


def test_a_pooled_tx_gets_mined_without_being_asked(node: ChainNode, loop: MiningLoop) -> None:
    alice = key_for("alice")
    tx = make_transfer(
        alice, chain_id=node.params.chain_id, nonce=0, fee=1000, to=key_for("bob").account, amount=5
    )
    node.submit_tx(tx)
    loop.wake()
    wait_until(lambda: node.store.tx_location(tx.txid) is not None)
    assert node.balance(key_for("bob").account) == 5
    wait_until(lambda: loop.miner.idle and not node.has_work())


def test_asked_for_blocks_the_loop_mines_exactly_that_many(
    node: ChainNode, loop: MiningLoop
) -> None:
    loop.request_blocks(3)
    wait_until(lambda: node.height == 3)
    wait_until(lambda: loop.requested == 0 and loop.miner.idle)
    assert node.height == 3
    assert node.balance(key_for("miner").account) > 0
