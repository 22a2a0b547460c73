"""Shared test factories: deterministic keys, signed txs, regtest parameters.

Keys come from a label (seed = sha256(label)), so a failing test names the
same accounts every run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from modelchain.chain.keys import KeyPair
from modelchain.chain.params import ChainParams, regtest_params
from modelchain.chain.tx import Tx, make_tx

TEST_CHAIN_ID = "modelchain-regtest"

# CI and these machines are shared and noisy: Hypothesis judges invariants here,
# not speed (speed lives in bench/), so no deadlines and no too-slow health check.
settings.register_profile(
    "modelchain",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("modelchain")


def keypair_for(label: str) -> KeyPair:
    """The key pair whose seed is sha256(label): the same for every run."""
    return KeyPair.from_seed(hashlib.sha256(label.encode("utf-8")).digest())


@pytest.fixture
def keypair() -> Callable[[str], KeyPair]:
    """Factory: `keypair("alice")` is alice's deterministic key pair."""
    return keypair_for


@pytest.fixture
def params() -> ChainParams:
    """Regtest consensus parameters (chain id `modelchain-regtest`)."""
    return regtest_params(chain_id=TEST_CHAIN_ID)


@pytest.fixture
def make_signed_tx() -> Callable[..., Tx]:
    """Factory: a signed coin transfer from alice to bob; any field can be overridden.

    `make_signed_tx(nonce=3, key=keypair("carol"), args={...})`.
    """

    def factory(**overrides: Any) -> Tx:
        fields: dict[str, Any] = {
            "key": keypair_for("alice"),
            "chain_id": TEST_CHAIN_ID,
            "nonce": 0,
            "fee": 1,
            "contract": "coin",
            "method": "transfer",
            "args": {"to": keypair_for("bob").account, "amount": 10},
        }
        fields.update(overrides)
        return make_tx(**fields)

    return factory
