"""Merkle roots of txids: tagged leaves and nodes, odd nodes carried up, linear cost.

The fast level-by-level root is checked against a clear recursive one
(split at the largest power of two below n, as RFC 6962 does), and its cost
is counted in sha256 calls rather than timed.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelchain.chain import merkle
from modelchain.chain.merkle import EMPTY_ROOT, compute_merkle_root


def leaf(txid: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + txid).digest()


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def reference_root(txids: list[bytes]) -> bytes:
    """The clear definition: left subtree over the largest power of two below n."""
    if not txids:
        return EMPTY_ROOT
    if len(txids) == 1:
        return leaf(txids[0])
    split = 1
    while split * 2 < len(txids):
        split *= 2
    return node(reference_root(txids[:split]), reference_root(txids[split:]))


def ids(n: int) -> list[bytes]:
    return [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n)]


A, B, C, D = ids(4)

txid_lists = st.lists(st.binary(min_size=32, max_size=32), max_size=40)


def test_no_txids_give_the_empty_root() -> None:
    assert compute_merkle_root([]) == EMPTY_ROOT == bytes(32)


@pytest.mark.parametrize(
    ("txids", "root"),
    [
        ([A], leaf(A)),
        ([A, B], node(leaf(A), leaf(B))),
        ([A, B, C], node(node(leaf(A), leaf(B)), leaf(C))),  # C carried up, not paired
        ([A, B, C, D], node(node(leaf(A), leaf(B)), node(leaf(C), leaf(D)))),
    ],
    ids=["one", "two", "three", "four"],
)
def test_root_hashes_tagged_leaves_and_nodes(txids, root) -> None:
    assert compute_merkle_root(txids) == root


def test_a_single_leaf_root_is_not_the_txid_itself() -> None:
    assert compute_merkle_root([A]) != A


def test_odd_last_leaf_is_not_duplicated() -> None:
    assert compute_merkle_root([A, B, C]) != compute_merkle_root([A, B, C, C])


@pytest.mark.parametrize("n", range(1, 65))
def test_root_of_n_leaves_matches_the_recursive_definition(n) -> None:
    assert compute_merkle_root(ids(n)) == reference_root(ids(n))


@given(txid_lists)
def test_root_matches_the_recursive_definition_on_any_txids(txids) -> None:
    assert compute_merkle_root(txids) == reference_root(txids)


@given(txid_lists)
def test_repeating_the_last_txid_changes_the_root(txids) -> None:
    if txids:
        assert compute_merkle_root(txids) != compute_merkle_root([*txids, txids[-1]])


def test_root_depends_on_order_and_on_every_leaf() -> None:
    roots = {
        compute_merkle_root(txids)
        for txids in ([A, B, C], [B, A, C], [A, C, B], [A, B], [A, B, D], [A, B, C, D])
    }
    assert len(roots) == 6


def test_an_inner_node_is_never_a_leaf_of_the_same_bytes() -> None:
    # the leaf tag keeps a txid equal to an inner node from standing in for its subtree
    assert compute_merkle_root([A, B]) != compute_merkle_root([node(leaf(A), leaf(B))])


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 100, 1_000, 4_097])
def test_root_costs_one_hash_per_leaf_and_per_inner_node(n, monkeypatch) -> None:
    calls = 0
    real = hashlib.sha256

    def counting(data: bytes = b""):
        nonlocal calls
        calls += 1
        return real(data)

    class CountingHashlib:
        sha256 = staticmethod(counting)

    monkeypatch.setattr(merkle, "hashlib", CountingHashlib)
    compute_merkle_root(ids(n))
    assert calls == 2 * n - 1
