"""How fast is the chain layer, against baselines measured in the same run?

Validation: a block of thousands of signed transfers taken from its bytes to
connected (decode, rules, signatures, execution, the SQLite write), as txs/s
over PyNaCl's raw verify rate of the same signatures (`validation_vs_verify`,
want >= 0.7), and the time of a 2n-tx block over an n-tx one
(`validation_growth_2n_vs_n`, want about 2: no quadratic step).

Mining: the miner's hash rate with one worker process against a bare hashlib
sha256d loop over a 156-byte header (`miner_vs_sha256d`, want >= 0.9), and
with two workers against one (`miner_2w_vs_1w`, want >= 1.8 on two cores).

Run `python bench/chain.py [--seconds S]`: progress goes to stderr, human
lines to stdout, and the last stdout line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nacl.signing import VerifyKey
from procstat import process_cpu_seconds  # bench/procstat.py

from modelchain.chain.block import (
    BLOCK_VERSION,
    Block,
    Header,
    compute_block_merkle_root,
    decode_block,
)
from modelchain.chain.keys import KeyPair
from modelchain.chain.miner import PREFIX_BYTES, Miner, mine_header, search_nonces
from modelchain.chain.node import ChainNode
from modelchain.chain.params import ChainParams, block_subsidy, regtest_params
from modelchain.chain.store import ChainStore
from modelchain.chain.tx import Tx, make_reward, make_transfer, tx_signing_parts

DEFAULT_SECONDS = 3.0
"""Time spent measuring each configuration; --seconds scales it."""

DEFAULT_ROUNDS = 5
"""Each configuration is timed in this many interleaved rounds; the best counts."""

IMPOSSIBLE_TARGET = 0
"""No sha256d is all zero bytes: a job at this target runs until cancelled."""


BENCH_MINER = KeyPair.from_seed(hashlib.sha256(b"bench-miner").digest()).account


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def sha256d_loop(prefix: bytes, count: int) -> None:
    """The baseline: hash whole 156-byte headers, the nonce changing, as a plain loop would."""
    sha256 = hashlib.sha256
    for nonce in range(count):
        sha256(sha256(prefix + nonce.to_bytes(8, "big")).digest()).digest()


def calibrate(loop: Callable[[int], object], seconds: float) -> int:
    """A count of iterations of `loop` worth about `seconds`."""
    start = time.perf_counter()
    loop(1 << 16)
    return max(1 << 16, int((1 << 16) / (time.perf_counter() - start) * seconds))


def time_loop(loop: Callable[[int], object], count: int) -> float:
    """Hashes per second of `loop(count)` (each iteration is one hash)."""
    start = time.perf_counter()
    loop(count)
    return count / (time.perf_counter() - start)


def wait_for_each_worker_count(miner: Miner) -> list[tuple[float, int]]:
    """Per worker, the time its hash count next changes and the new count.

    Counts move once per chunk; timing from one change to another counts
    whole chunks only, so the rate is not skewed by a partly done chunk.
    """
    before = miner.worker_hashes
    seen: dict[int, tuple[float, int]] = {}
    while len(seen) < len(before):
        time.sleep(0.0005)
        now = time.perf_counter()
        counts = miner.worker_hashes
        for index, count in enumerate(counts):
            if index not in seen and count != before[index]:
                seen[index] = (now, count)
    return [seen[index] for index in range(len(before))]


def start_miner(workers: int, prefix: bytes) -> tuple[Miner, float]:
    """A started Miner and its start-up seconds: construction to the first result
    of a job that every nonce solves."""
    start = time.perf_counter()
    miner = Miner(workers=workers)
    miner.submit("warm-up", prefix, 2**256 - 1)
    if miner.poll(timeout=60) is None:
        miner.close()
        raise RuntimeError("the miner did not start within 60 s")
    return miner, time.perf_counter() - start


def time_miner(miner: Miner, prefix: bytes, seconds: float) -> tuple[float, float]:
    """(hashes per second, cores used) of a started miner over about `seconds`.

    The rate sums each worker's whole chunks; cores used is the workers' CPU
    time over the wall time (below `workers` when other load took CPU from
    them). The miner is idle again on return.
    """
    miner.submit("rate", prefix, IMPOSSIBLE_TARGET)
    first = wait_for_each_worker_count(miner)
    cpu_start, wall_start = process_cpu_seconds(miner.pids), time.perf_counter()
    time.sleep(seconds)
    last = wait_for_each_worker_count(miner)
    cores = (process_cpu_seconds(miner.pids) - cpu_start) / (time.perf_counter() - wall_start)
    miner.cancel()
    while not miner.idle:
        time.sleep(0.001)
    rate = sum((h1 - h0) / (t1 - t0) for (t0, h0), (t1, h1) in zip(first, last, strict=True))
    return rate, cores


def bench_mining(seconds: float = DEFAULT_SECONDS, rounds: int = DEFAULT_ROUNDS) -> dict[str, Any]:
    """Hash rates of the bare loop, the in-process hot loop and the miner (1 and 2 workers).

    Each is timed in `rounds` interleaved rounds of `seconds / rounds`; the
    best round counts (load from other processes only ever slows a round).
    """
    prefix = os.urandom(PREFIX_BYTES)
    phase = seconds / rounds

    def bare(count: int) -> None:
        sha256d_loop(prefix, count)

    def hot(count: int) -> None:
        search_nonces(prefix, IMPOSSIBLE_TARGET, 0, count)

    bare_count, hot_count = calibrate(bare, phase), calibrate(hot, phase)
    one_worker, startup = start_miner(1, prefix)
    two_workers, _ = start_miner(2, prefix)
    rates: dict[str, list[float]] = {"bare": [], "hot": [], "1w": [], "2w": []}
    cores: dict[str, list[float]] = {"1w": [], "2w": []}
    try:
        for round_ in range(1, rounds + 1):
            progress(f"mining: round {round_}/{rounds}, 4 phases of {phase:.2g} s")
            rates["bare"].append(time_loop(bare, bare_count))
            rates["hot"].append(time_loop(hot, hot_count))
            for name, miner in (("1w", one_worker), ("2w", two_workers)):
                rate, used = time_miner(miner, prefix, phase)
                rates[name].append(rate)
                cores[name].append(used)
    finally:
        one_worker.close()
        two_workers.close()
    best = {name: max(values) for name, values in rates.items()}
    best_cores = {name: used[rates[name].index(best[name])] for name, used in cores.items()}
    spread = {name: min(values) / max(values) for name, values in rates.items()}
    baseline, in_process, one, two = best["bare"], best["hot"], best["1w"], best["2w"]
    print(f"best of {rounds} rounds (worst round as a fraction of the best)")
    print(f"bare sha256d loop       {baseline / 1e6:7.3f} MH/s  ({spread['bare']:.2f})")
    print(
        f"search_nonces in-proc   {in_process / 1e6:7.3f} MH/s  ({spread['hot']:.2f})"
        f"  x{in_process / baseline:.2f} of bare"
    )
    print(
        f"miner, 1 worker         {one / 1e6:7.3f} MH/s  ({spread['1w']:.2f})"
        f"  x{one / baseline:.2f} of bare"
    )
    print(
        f"miner, 2 workers        {two / 1e6:7.3f} MH/s  ({spread['2w']:.2f})"
        f"  x{two / one:.2f} of 1 worker"
    )
    print(f"miner start-up (spawn)  {startup:7.3f} s")
    print(
        f"cores the workers got in their best round: 1 worker {best_cores['1w']:.2f}, "
        f"2 workers {best_cores['2w']:.2f} (below 2: other load took CPU)"
    )
    # hashes per CPU second of 2 workers over 1: near 1.0 when the workers only
    # lacked CPU, not when they slow each other down (the 2-core ratio / 2)
    per_cpu = (two / best_cores["2w"]) / (one / best_cores["1w"]) if all(best_cores.values()) else 0
    print(f"per CPU second, 2 workers hash x{per_cpu:.2f} as fast as 1")
    return {
        "sha256d_hps": round(baseline),
        "search_nonces_hps": round(in_process),
        "miner_1w_hps": round(one),
        "miner_2w_hps": round(two),
        "search_vs_sha256d": round(in_process / baseline, 3),
        "miner_vs_sha256d": round(one / baseline, 3),
        "miner_2w_vs_1w": round(two / one, 3),
        "miner_round_spread": {name: round(value, 3) for name, value in spread.items()},
        "miner_startup_s": round(startup, 3),
        "miner_1w_cores_used": round(best_cores["1w"], 2),
        "miner_2w_cores_used": round(best_cores["2w"], 2),
        "miner_2w_vs_1w_per_cpu_second": round(per_cpu, 3),
    }


# --- block validation -----------------------------------------------------------


def _signed_transfers(count: int, senders: int) -> tuple[ChainParams, list[Tx]]:
    """`count` signed transfers from `senders` funded accounts, nonces in order."""
    keys = [
        KeyPair.from_seed(hashlib.sha256(f"bench-sender-{i}".encode()).digest())
        for i in range(senders)
    ]
    params = regtest_params(
        allocations=tuple((k.account, 10**12) for k in keys), max_block_bytes=64_000_000
    )
    txs = [
        make_transfer(
            keys[i % senders],
            chain_id=params.chain_id,
            nonce=i // senders,
            fee=1_000,
            to=keys[(i + 1) % senders].account,
            amount=7,
        )
        for i in range(count)
    ]
    return params, txs


def _solved_block(node: ChainNode, txs: list[Tx]) -> bytes:
    parent = node.tip
    height = parent.height + 1
    reward = make_reward(
        node.params.chain_id,
        height,
        BENCH_MINER,
        block_subsidy(height, node.params) + sum(tx.fee for tx in txs),
    )
    all_txs = (reward, *txs)
    header = Header(
        version=BLOCK_VERSION,
        height=height,
        prev_hash=parent.hash,
        merkle_root=compute_block_merkle_root(all_txs),
        timestamp=parent.header.timestamp + 10,
        target=node.expected_target(parent),
        miner=BENCH_MINER,
        nonce=0,
    )
    return Block(mine_header(header), all_txs).to_bytes()


def time_block_validation(params: ChainParams, txs: list[Tx]) -> float:
    """Seconds to take a block of `txs` from its bytes to connected on a fresh node:
    decode, header and shape rules, every signature, execution, the SQLite write."""
    with tempfile.TemporaryDirectory() as tmp:
        node = ChainNode(ChainStore(Path(tmp) / "chain.sqlite"), params, clock=lambda: 2e9)
        try:
            raw = _solved_block(node, txs)
            start = time.perf_counter()
            node.submit_block(decode_block(raw, 128_000_000))
            elapsed = time.perf_counter() - start
            assert node.height == 1, "the bench block must connect"
            return elapsed
        finally:
            node.close()


def time_raw_verify(txs: list[Tx]) -> float:
    """Seconds for PyNaCl alone to verify the same signatures, one after another."""
    parts = [tx_signing_parts(tx) for tx in txs]
    start = time.perf_counter()
    for public, message, signature in parts:
        VerifyKey(public).verify(message, signature)
    return time.perf_counter() - start


def bench_validation(
    seconds: float = DEFAULT_SECONDS, rounds: int = DEFAULT_ROUNDS, block_txs: int = 4_000
) -> dict[str, Any]:
    """Block validation throughput vs raw signature verification, and its growth.

    `seconds` is unused: a round validates one n-tx and one 2n-tx block."""
    params, txs = _signed_transfers(2 * block_txs, senders=500)
    small, large = txs[:block_txs], txs
    ratios = []
    growth = []
    for round_ in range(rounds):
        verify = time_raw_verify(small)
        n_time = time_block_validation(params, small)
        two_n_time = time_block_validation(params, large)
        ratio = verify / n_time  # (txs/s validating) / (verifies/s)
        ratios.append(ratio)
        growth.append(two_n_time / n_time)
        progress(
            f"validation round {round_ + 1}/{rounds}: {block_txs / n_time:,.0f} txs/s vs "
            f"{block_txs / verify:,.0f} verifies/s = {ratio:.2f}; 2n/n time {growth[-1]:.2f}"
        )
    print(
        f"block validation: {max(ratios):.2f} of the raw verify rate (best of {rounds}), "
        f"median {statistics.median(ratios):.2f}; a 2n-tx block costs "
        f"{statistics.median(growth):.2f}x an n-tx block"
    )
    return {
        "validation_vs_verify": round(max(ratios), 3),
        "validation_vs_verify_median": round(statistics.median(ratios), 3),
        "validation_txs_per_block": block_txs,
        "validation_growth_2n_vs_n": round(statistics.median(growth), 3),
    }


BENCHES: list[Callable[..., dict[str, Any]]] = [bench_validation, bench_mining]
"""Each is called with `seconds=` and `rounds=` and returns figures merged into the JSON line."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds",
        type=float,
        default=DEFAULT_SECONDS,
        help=f"time spent measuring each configuration (default {DEFAULT_SECONDS:g})",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help=f"interleaved rounds per configuration, the best counts (default {DEFAULT_ROUNDS})",
    )
    args = parser.parse_args(argv)
    results: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "loadavg_1m_before": round(os.getloadavg()[0], 2),
    }
    for bench in BENCHES:
        results.update(bench(seconds=args.seconds, rounds=args.rounds))
    results["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
    print(
        f"load average (1 min): {results['loadavg_1m_before']} before, "
        f"{results['loadavg_1m_after']} after, on {results['cpu_count']} cores"
    )
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
