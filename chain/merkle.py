"""Merkle root of a block's transaction ids.

Leaves and inner nodes are hashed under different tags, and an odd node is
carried up unchanged (never paired with itself), so no two lists of txids
share a root (no CVE-2012-2459-style mutation).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = bytes(32)
_LEAF = b"\x00"
_NODE = b"\x01"


def compute_merkle_root(txids: Sequence[bytes]) -> bytes:
    """Root over `txids` in order; EMPTY_ROOT for none. Linear in len(txids)."""
    if not txids:
        return EMPTY_ROOT
    sha = hashlib.sha256
    level = [sha(_LEAF + txid).digest() for txid in txids]
    while len(level) > 1:
        paired = [
            sha(_NODE + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]
