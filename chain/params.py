"""Every consensus parameter of a network, in one frozen value.

Tests and the dev network use easy parameters (regtest/dev) instead of
patching; a node refuses blocks and txs made for another `chain_id`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_AMOUNT = 2**53 - 1
"""The largest amount anywhere: exact in a browser Number and in SQLite INTEGER."""


@dataclass(frozen=True, slots=True)
class ChainParams:
    """Consensus rules of one network. Changing any field makes another chain."""

    chain_id: str
    """Names the network; signed into every tx (replay protection)."""
    genesis_time: int
    """Unix seconds of the genesis block."""
    genesis_allocations: tuple[tuple[str, int], ...] = ()
    """(account, amount) pairs funded at genesis."""
    pow_limit: int = 2**252
    """The easiest target allowed; no block's target may exceed it."""
    initial_target: int = 2**252
    """Target of the first blocks, until the first retarget."""
    target_block_seconds: int = 10
    """The block time difficulty retargets toward."""
    retarget_interval: int = 20
    """Blocks between retargets."""
    retarget_clamp: int = 4
    """A retarget changes the target by at most this factor either way."""
    initial_subsidy: int = 50_000_000
    """Reward of a block before any halving, in base units."""
    halving_interval: int = 210_000
    """Blocks between halvings of the subsidy."""
    max_block_bytes: int = 4_000_000
    """Header plus every tx's encoded size (with its 4-byte length prefix)."""
    max_tx_bytes: int = 128_000
    """The largest signed tx encoding."""
    max_future_seconds: int = 120
    """How far ahead of the node's clock a block's time may be."""
    median_time_span: int = 11
    """A block's time must exceed the median of this many ancestors' times."""
    genesis_extra: dict[str, str] = field(default_factory=dict, hash=False, compare=True)
    """Free-form text committed into the genesis block (a network's motto)."""

    def __post_init__(self) -> None:
        if not 0 < self.initial_target <= self.pow_limit < 2**256:
            raise ValueError("need 0 < initial_target <= pow_limit < 2**256")
        for account, amount in self.genesis_allocations:
            if not 0 <= amount <= MAX_AMOUNT:
                raise ValueError(f"genesis amount {amount} for {account} out of range")

    @property
    def genesis_supply(self) -> int:
        return sum(amount for _, amount in self.genesis_allocations)


def regtest_params(
    allocations: tuple[tuple[str, int], ...] = (),
    chain_id: str = "modelchain-regtest",
    **overrides: object,
) -> ChainParams:
    """Parameters for tests: about two hashes a block, no clock drift worries."""
    values: dict[str, object] = {
        "chain_id": chain_id,
        "genesis_time": 1_700_000_000,
        "genesis_allocations": allocations,
        "pow_limit": 2**255,
        "initial_target": 2**255,
        "target_block_seconds": 10,
        "retarget_interval": 10,
        "max_future_seconds": 7200,
    }
    values.update(overrides)
    return ChainParams(**values)  # type: ignore[arg-type]


def dev_params(allocations: tuple[tuple[str, int], ...] = ()) -> ChainParams:
    """The local dev network of `modelchain up`: fast blocks, a funded dev wallet."""
    return ChainParams(
        chain_id="modelchain-dev",
        genesis_time=1_764_000_000,
        genesis_allocations=allocations,
        pow_limit=2**250,
        initial_target=2**246,
        target_block_seconds=5,
        retarget_interval=20,
        max_future_seconds=120,
    )


def block_subsidy(height: int, params: ChainParams) -> int:
    """New coins a block at `height` may create: halves every `halving_interval`."""
    halvings = height // params.halving_interval
    if halvings >= 53:
        return 0
    return params.initial_subsidy >> halvings
