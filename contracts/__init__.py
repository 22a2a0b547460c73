"""contracts layer of modelchain: the native contracts a node runs.

`default_contracts()` is the registry of contract name -> code that the
chain executes: the chain's own `coin`, then `registry`, `usage_fee` and
`channel` (docs/contracts.md). All of them are pure and deterministic.
"""

from __future__ import annotations

from modelchain.chain.coin import CoinContract
from modelchain.chain.contract import Contract
from modelchain.contracts.channel import ChannelContract
from modelchain.contracts.registry import RegistryContract
from modelchain.contracts.usage_fee import UsageFeeContract


def default_contracts() -> dict[str, Contract]:
    """A fresh name -> contract mapping with every native contract."""
    contracts: list[Contract] = [
        CoinContract(),
        RegistryContract(),
        UsageFeeContract(),
        ChannelContract(),
    ]
    return {contract.name: contract for contract in contracts}


__all__ = ["default_contracts"]
