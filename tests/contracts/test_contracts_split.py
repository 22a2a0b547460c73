"""Revenue splits: integer shares that always add up to the amount paid."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from modelchain.chain.params import MAX_AMOUNT
from modelchain.contracts.split import (
    BPS_TOTAL,
    MAX_OWNERS,
    RevenueSplit,
    compute_shares,
    split_problem,
)

NODE = "ee" * 32


def _account(i: int) -> str:
    return hashlib.sha256(f"owner-{i}".encode()).hexdigest()


@st.composite
def splits(draw: st.DrawFn) -> RevenueSplit:
    """Any valid split: 1..MAX_OWNERS owners of >= 1 bps each, node >= 0, total 10000."""
    owners = draw(st.integers(1, MAX_OWNERS))
    # owners + 1 parts from `owners` distinct cut points of 0..10000
    cuts = sorted(draw(st.lists(st.integers(0, BPS_TOTAL), min_size=owners, max_size=owners)))
    bounds = [0, *cuts, BPS_TOTAL]
    parts = [bounds[i + 1] - bounds[i] for i in range(owners + 1)]
    owner_bps, node_bps = parts[:-1], parts[-1]
    # an owner needs at least 1 bps: take it from the node or the largest owner
    for i, bps in enumerate(owner_bps):
        if bps == 0:
            donor = max(range(owners), key=lambda j: owner_bps[j])
            if node_bps > 0:
                node_bps -= 1
            else:
                owner_bps[donor] -= 1
            owner_bps[i] = 1
    return RevenueSplit(tuple((_account(i), bps) for i, bps in enumerate(owner_bps)), node_bps)


@given(amount=st.integers(0, MAX_AMOUNT), split=splits())
def test_shares_add_up_to_the_amount_for_any_amount_and_split(amount, split):
    assert split_problem(split.to_json()) is None
    shares = compute_shares(amount, split, NODE)
    assert sum(share.amount for share in shares) == amount
    assert all(share.amount >= 0 for share in shares)
    parties = [bps for _, bps in split.owners] + [split.node_bps]
    exact = [amount * bps // BPS_TOTAL for bps in parties]
    # every party but the first owner gets its share rounded down; the first owner
    # gets the remainder too, which is less than the number of parties
    assert [share.amount for share in shares[1:]] == exact[1:]
    assert 0 <= shares[0].amount - exact[0] < len(parties)


@given(amount=st.integers(0, MAX_AMOUNT))
def test_a_lone_owner_with_no_node_share_gets_everything(amount):
    split = RevenueSplit(((_account(0), BPS_TOTAL),), 0)
    shares = compute_shares(amount, split, NODE)
    assert [(s.account, s.role, s.amount) for s in shares] == [
        (_account(0), "owner", amount),
        (NODE, "node", 0),
    ]


def test_split_problem_accepts_a_valid_split_and_names_a_bad_sum():
    ok = {"owners": [[_account(0), 9000]], "node": 1000}
    assert split_problem(ok) is None
    problem = split_problem({"owners": [[_account(0), 9000]], "node": 999})
    assert problem is not None and "9999" in problem
