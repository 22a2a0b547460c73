"""Proof of work: hash against target, work per block, median time, retargeting.

The pure functions are tested on numbers; then a chain of fast blocks shows
the node asking a smaller target at the retarget height, and refusing a
block that keeps the old one.
"""

from __future__ import annotations

import pytest
from factories import funded_params, key_for, make_block, open_node
from hypothesis import given
from hypothesis import strategies as st

from modelchain.chain.errors import InvalidBlock
from modelchain.chain.params import regtest_params
from modelchain.chain.pow import (
    compute_median_time,
    compute_next_target,
    compute_work,
    hash_meets_target,
    is_retarget_height,
)

PARAMS = regtest_params(
    pow_limit=2**240, initial_target=2**230, target_block_seconds=10, retarget_interval=10
)
EXPECTED = 10 * 10  # seconds a retarget window should take
TARGET = 2**220


def next_target(span: int, target: int = TARGET, params=PARAMS) -> int:
    return compute_next_target(target, 1_000, 1_000 + span, params)


# --- hash against target -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "target", "meets"),
    [(5, 5, True), (4, 5, True), (6, 5, False), (0, 0, True), (1, 0, False)],
)
def test_hash_meets_a_target_it_is_at_most(value, target, meets) -> None:
    assert hash_meets_target(value.to_bytes(32, "big"), target) is meets


def test_hash_is_read_big_endian() -> None:
    assert not hash_meets_target(b"\x01" + bytes(31), 2**248 - 1)
    assert hash_meets_target(bytes(31) + b"\xff", 2**8)


# --- work ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "work"),
    [(2**256 - 1, 1), (2**255 - 1, 2), (2**255, 1), (2**252 - 1, 16), (0, 2**256)],
)
def test_work_is_two_to_the_256_over_target_plus_one(target, work) -> None:
    assert compute_work(target) == work


@given(st.integers(1, 2**256 - 1))
def test_a_smaller_target_never_means_less_work(target) -> None:
    assert compute_work(target - 1) >= compute_work(target)


# --- median time ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("times", "median"),
    [([7], 7), ([3, 1], 3), ([5, 1, 9], 5), ([10, 20, 30, 40, 50, 100, 90, 80, 70, 60, 200], 60)],
)
def test_median_time_is_the_middle_of_the_sorted_times(times, median) -> None:
    assert compute_median_time(times) == median


# --- retarget --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("height", "retargets"), [(0, False), (1, False), (9, False), (10, True), (20, True)]
)
def test_retarget_happens_every_interval_after_genesis(height, retargets) -> None:
    assert is_retarget_height(height, PARAMS) is retargets


@pytest.mark.parametrize(
    ("span", "target"),
    [
        (EXPECTED, TARGET),  # on schedule: unchanged
        (EXPECTED // 2, TARGET // 2),  # twice as fast: half the target
        (EXPECTED * 2, TARGET * 2),  # twice as slow: double
        (EXPECTED * 3 // 4, TARGET * 3 // 4),
    ],
)
def test_target_moves_in_proportion_to_the_window_span(span, target) -> None:
    assert next_target(span) == target


@pytest.mark.parametrize("span", [EXPECTED // 4, EXPECTED // 5, 1, 0, -500])
def test_target_falls_by_at_most_the_clamp(span) -> None:
    assert next_target(span) == TARGET // 4


@pytest.mark.parametrize("span", [EXPECTED * 4, EXPECTED * 5, 10**9])
def test_target_rises_by_at_most_the_clamp(span) -> None:
    assert next_target(span) == TARGET * 4


def test_target_never_rises_above_the_pow_limit() -> None:
    assert next_target(EXPECTED * 2, target=PARAMS.pow_limit // 2 + 1) == PARAMS.pow_limit
    assert next_target(EXPECTED * 4, target=PARAMS.pow_limit) == PARAMS.pow_limit


def test_target_never_falls_below_one() -> None:
    assert next_target(0, target=3) == 1
    assert next_target(0, target=1) == 1


def test_target_rounds_down() -> None:
    assert next_target(EXPECTED - 1, target=1_000) == 990
    assert next_target(EXPECTED + 1, target=99) == 99  # 99.99 rounds down


@given(
    target=st.integers(1, PARAMS.pow_limit),
    first=st.integers(0, 10**6),
    span=st.integers(-(10**4), 10**4),
)
def test_retarget_stays_within_clamp_and_pow_limit(target, first, span) -> None:
    new = compute_next_target(target, first, first + span, PARAMS)
    assert 1 <= new <= PARAMS.pow_limit
    assert target // 4 <= new <= target * 4
    assert new <= compute_next_target(target, first, first + span + 1, PARAMS)


# --- retarget on a chain ---------------------------------------------------------------


@pytest.fixture
def slow_pow_node(tmp_path, clock):
    """A node whose initial target is 8 below its pow limit, so it may rise too."""
    params = funded_params("alice", pow_limit=2**255, initial_target=2**252)
    chain = open_node(tmp_path, params, clock, verify_threads=1)
    yield chain
    chain.close()


def extend_by(node, count: int, step: int) -> None:
    for _ in range(count):
        node.submit_block(make_block(node, timestamp=node.tip.header.timestamp + step))


@pytest.mark.parametrize(("step", "percent"), [(1, 25), (2, 25), (5, 45), (10, 90), (11, 99)])
def test_fast_blocks_get_a_smaller_target_at_the_retarget_height(
    node, forge, step, percent
) -> None:
    """The first window is the times of blocks 0..9: nine intervals against 100 s expected;
    faster than a quarter of that is clamped to a quarter."""
    extend_by(node, 9, step)
    initial = node.params.initial_target
    expected = initial * percent // 100
    assert node.parent_facts(node.tip).expected_target == expected
    stale = forge(make_block(node, solve=False), target=initial)
    with pytest.raises(InvalidBlock) as err:
        node.submit_block(stale)
    assert err.value.code == "block-bad-target"
    block = make_block(node)
    assert block.header.target == expected
    node.submit_block(block)
    assert node.tip.hash == block.hash


def test_slow_blocks_get_a_larger_target_up_to_the_clamp(slow_pow_node) -> None:
    node = slow_pow_node
    extend_by(node, 9, 1_000)
    assert node.parent_facts(node.tip).expected_target == node.params.initial_target * 4


def test_slow_blocks_never_get_a_target_above_the_pow_limit(node) -> None:
    extend_by(node, 9, 1_000)
    assert node.params.initial_target == node.params.pow_limit
    assert node.parent_facts(node.tip).expected_target == node.params.pow_limit


def test_target_holds_between_retargets(node) -> None:
    extend_by(node, 10, 1)  # block 10 carries a quarter of the initial target
    quarter = node.tip.header.target
    assert quarter == node.params.initial_target // 4
    extend_by(node, 5, 100)  # slow blocks, but no retarget before height 20
    assert node.tip.header.target == quarter
    assert node.parent_facts(node.tip).expected_target == quarter


def test_second_window_spans_ten_intervals_from_the_last_retarget_parent(node) -> None:
    extend_by(node, 19, 10)  # blocks 9..19: ten intervals of 10 s, on schedule
    facts = node.parent_facts(node.tip)
    assert facts.expected_target == node.index[node.store.chain_hash_at(10)].header.target


def test_side_branch_retargets_on_its_own_times(node) -> None:
    genesis = node.tip.hash
    extend_by(node, 9, 10)
    main_expected = node.parent_facts(node.tip).expected_target
    parent = genesis
    for _ in range(9):
        block = make_block(
            node,
            parent,
            timestamp=node.index[parent].header.timestamp + 1,
            miner=key_for("bob").account,
        )
        node.submit_block(block)
        parent = block.hash
    assert node.tip.height == 9 and node.tip.hash != parent  # the first seen stays
    assert main_expected == node.params.initial_target * 90 // 100
    side_expected = node.parent_facts(node.index[parent]).expected_target
    assert side_expected == node.params.initial_target * 25 // 100
