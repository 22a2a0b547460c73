"""Consensus rules that need no state: one rule, one `if`, one named error.

`validate_header` checks a header against its parent's facts and the node's
clock; `validate_block_shape` checks a body against its header. Rules that
need state live in chain/execute.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelchain.chain.block import BLOCK_VERSION, Block, Header
from modelchain.chain.block import compute_block_merkle_root as _merkle
from modelchain.chain.errors import (
    BlockBadHeight,
    BlockBadMerkleRoot,
    BlockBadPow,
    BlockBadTarget,
    BlockBadVersion,
    BlockDuplicateTx,
    BlockExtraReward,
    BlockMalformed,
    BlockMissingReward,
    BlockRewardTooHigh,
    BlockTimeTooNew,
    BlockTimeTooOld,
    BlockTooLarge,
)
from modelchain.chain.execute import check_reward_shape
from modelchain.chain.keys import is_account
from modelchain.chain.params import ChainParams, block_subsidy
from modelchain.chain.pow import hash_meets_target


@dataclass(frozen=True, slots=True)
class ParentFacts:
    """What the rules need to know of a block's parent chain."""

    hash: str
    height: int
    expected_target: int
    """The target the child must carry (from retargeting)."""
    median_time: int
    """Median of the last `median_time_span` times up to and including the parent."""


def validate_header(header: Header, parent: ParentFacts, params: ChainParams, now: int) -> None:
    """Raise InvalidBlock unless `header` may follow `parent` at clock time `now`."""
    if header.version != BLOCK_VERSION:
        raise BlockBadVersion(f"version {header.version}, expected {BLOCK_VERSION}")
    if header.prev_hash != parent.hash:
        raise BlockBadHeight(f"prev_hash {header.prev_hash[:16]} is not the parent")
    if header.height != parent.height + 1:
        raise BlockBadHeight(f"height {header.height}, expected {parent.height + 1}")
    if header.target != parent.expected_target:
        raise BlockBadTarget(f"target {header.target:#x}, expected {parent.expected_target:#x}")
    if not is_account(header.miner):
        raise BlockMalformed("miner must be an account (64 lowercase hex characters)")
    if not hash_meets_target(bytes.fromhex(header.hash), header.target):
        raise BlockBadPow(f"hash {header.hash[:16]} is above the target")
    if header.timestamp <= parent.median_time:
        raise BlockTimeTooOld(
            f"time {header.timestamp} is not after the median past time {parent.median_time}"
        )
    # a block from the future is not invalid for ever: it is accepted once its time has come
    if header.timestamp > now + params.max_future_seconds:
        raise BlockTimeTooNew(
            f"time {header.timestamp} is more than {params.max_future_seconds}s after now ({now})"
        )


def validate_block_shape(block: Block, params: ChainParams) -> None:
    """Raise InvalidBlock unless the body fits the header and the block's own limits.

    The merkle root is checked first: a body that does not match its header
    says nothing about the header, so the caller must not remember the header
    hash as invalid for it (BlockBadMerkleRoot); every later rule judges a body
    the header commits to.
    """
    root = _merkle(block.txs)
    if root != block.header.merkle_root:
        raise BlockBadMerkleRoot(
            f"txs hash to root {root[:16]}, header says {block.header.merkle_root[:16]}"
        )
    if block.size > params.max_block_bytes:
        raise BlockTooLarge(f"block is {block.size} bytes, over {params.max_block_bytes}")
    if not block.txs or not block.txs[0].is_reward:
        raise BlockMissingReward("the first tx must be the block reward")
    seen: set[str] = set()
    for index, tx in enumerate(block.txs):
        if index > 0 and tx.is_reward:
            raise BlockExtraReward(f"tx {index} is a second reward")
        if tx.txid in seen:
            raise BlockDuplicateTx(f"tx {tx.txid[:16]} appears twice")
        seen.add(tx.txid)
    check_reward_shape(block.txs[0], block.header.height, block.header.miner, params)
    # every included tx pays its fee whatever its call does, so the cap needs no state
    allowed = block_subsidy(block.header.height, params) + sum(tx.fee for tx in block.txs[1:])
    if block.txs[0].args["amount"] > allowed:
        raise BlockRewardTooHigh(
            f"reward {block.txs[0].args['amount']}, at most {allowed} (subsidy + fees)"
        )
