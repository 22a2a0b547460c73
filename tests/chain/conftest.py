"""Fixtures for chain tests: a node on a temp dir, a hand-moved clock, block forging.

Accounts are labels (`alice`, `bob`, `carol`, funded at genesis; `dave`
is not); `forge` derives a block from another one with any header field or
body changed, re-solving the proof of work so that only the change breaks
a rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from factories import GENESIS_FUNDS, FakeClock, funded_params, key_for, open_node, solve_header

from modelchain.chain.block import Block, compute_block_merkle_root
from modelchain.chain.node import ChainNode
from modelchain.chain.params import ChainParams
from modelchain.chain.tx import Tx, make_transfer

FUNDED = ("alice", "bob", "carol")
"""Accounts funded at genesis with GENESIS_FUNDS each."""
FEE = 1_000
"""A fee above the default mempool minimum (1 unit per byte) for any transfer here."""


def forge_block(
    block: Block,
    *,
    txs: Sequence[Tx] | None = None,
    keep_root: bool = False,
    solve: bool = True,
    **header_changes: Any,
) -> Block:
    """`block` with other txs and/or header fields; the merkle root follows the txs
    unless `keep_root` (or a `merkle_root` change) says otherwise; solved again."""
    body = block.txs if txs is None else tuple(txs)
    header = replace(block.header, **header_changes)
    if not keep_root and "merkle_root" not in header_changes:
        header = replace(header, merkle_root=compute_block_merkle_root(body))
    if solve:
        header = solve_header(replace(header, nonce=0))
    return Block(header, body)


def transfer(
    sender: str,
    to: str = "bob",
    *,
    nonce: int = 0,
    amount: int = 10,
    fee: int = FEE,
    chain_id: str = "modelchain-regtest",
) -> Tx:
    """A signed coin transfer between labelled accounts (regtest chain unless told)."""
    return make_transfer(
        key_for(sender),
        chain_id=chain_id,
        nonce=nonce,
        fee=fee,
        to=key_for(to).account,
        amount=amount,
    )


@pytest.fixture
def clock(chain_params: ChainParams) -> FakeClock:
    """The node's clock, well after genesis; tests move it by hand."""
    return FakeClock(chain_params.genesis_time + 10**6)


@pytest.fixture
def chain_params() -> ChainParams:
    """Regtest parameters funding alice, bob and carol."""
    return funded_params(*FUNDED)


@pytest.fixture
def node(tmp_path: Path, chain_params: ChainParams, clock: FakeClock) -> Iterator[ChainNode]:
    """A fresh node on its own data dir (signatures checked on the calling thread)."""
    chain = open_node(tmp_path, chain_params, clock, verify_threads=1)
    yield chain
    chain.close()


@pytest.fixture
def forge() -> Callable[..., Block]:
    """Factory: `forge(block, txs=..., keep_root=..., **header_changes)`."""
    return forge_block


@pytest.fixture
def make_transfer_tx() -> Callable[..., Tx]:
    """Factory: `make_transfer_tx("alice", "bob", nonce=0, amount=10, fee=FEE)`."""
    return transfer


@pytest.fixture
def funds() -> int:
    """Genesis balance of each funded account."""
    return GENESIS_FUNDS
