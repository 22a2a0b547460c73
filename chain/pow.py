"""Proof of work: sha256d of the header below the target, and retargeting.

Pure integer functions: `header_meets_target`, `compute_work`,
`compute_next_target`; the caller supplies ancestor times.
"""

from __future__ import annotations

from modelchain.chain.params import ChainParams


def hash_meets_target(block_hash: bytes, target: int) -> bool:
    """The hash read big-endian is at most the target (equal is valid, as in Bitcoin)."""
    return int.from_bytes(block_hash, "big") <= target


def compute_work(target: int) -> int:
    """Expected hashes to find a block at `target`: 2**256 // (target + 1)."""
    return 2**256 // (target + 1)


def is_retarget_height(height: int, params: ChainParams) -> bool:
    return height > 0 and height % params.retarget_interval == 0


def compute_next_target(
    parent_target: int, first_time: int, last_time: int, params: ChainParams
) -> int:
    """Target after a retarget window whose first and last block times are given.

    The window's span is clamped to [expected / clamp, expected * clamp] so one
    retarget moves difficulty by at most `retarget_clamp`; rounds down; never
    above `pow_limit` nor below 1.
    """
    expected = params.target_block_seconds * params.retarget_interval
    span = last_time - first_time
    span = max(expected // params.retarget_clamp, min(span, expected * params.retarget_clamp))
    target = parent_target * span // expected
    return max(1, min(target, params.pow_limit))


def compute_median_time(times: list[int]) -> int:
    """Median of the given ancestor times (the middle of the sorted list)."""
    ordered = sorted(times)
    return ordered[len(ordered) // 2]
