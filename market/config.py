"""The node's configuration: one frozen value built once from flags and env.

Lives in `market/` (the web layer re-exports it) so that the service and
the CLI share it without importing Flask.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from modelchain.chain.keys import KeyPair
from modelchain.chain.params import ChainParams, dev_params, regtest_params
from modelchain.market.marketdb import DEFAULT_SYNC_MS

DEV_WALLET_SEED = hashlib.sha256(b"modelchain dev wallet 0").digest()
"""The dev network's well-known wallet (like Hardhat's test accounts): public, dev only."""
DEV_WALLET_FUNDS = 1_000_000_000_000
"""What the dev genesis gives the dev wallet, in base units."""
NETWORKS = ("dev", "regtest")


def dev_wallet() -> KeyPair:
    """The dev network's funded wallet. Its seed is public: never use it elsewhere."""
    return KeyPair.from_seed(DEV_WALLET_SEED)


def network_params(network: str) -> ChainParams:
    """Consensus parameters of a named network; raises ValueError for an unknown name."""
    allocations = ((dev_wallet().account, DEV_WALLET_FUNDS),)
    if network == "dev":
        return dev_params(allocations)
    if network == "regtest":
        return regtest_params(allocations=allocations)
    raise ValueError(f"unknown network {network!r} (known: {', '.join(NETWORKS)})")


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything a node needs to start; tests build their own."""

    data_dir: Path
    network: str = "dev"
    host: str = "127.0.0.1"
    port: int = 8080
    """0 asks the OS for a free port; the node reports the one it bound."""
    mine: bool = True
    """Run a mining loop (it mines only when txs wait or blocks are asked for)."""
    miner_workers: int | None = None
    """Mining processes; None means one per core."""
    peers: tuple[str, ...] = ()
    """Base URLs of peer nodes to sync and gossip with (market/network.py)."""
    peer_poll_seconds: float = 1.0
    """How often each peer is asked for its status when nothing happens here."""
    max_request_bytes: int = 16 * 1024 * 1024
    """The largest JSON request body."""
    max_upload_bytes: int = 512 * 1024 * 1024
    """The largest model file."""
    max_tensor_elements: int = 10_000_000
    """The most elements one inference input or output may hold."""
    max_concurrent_inferences: int = 8
    inference_workers: int = 2
    inference_memory_bytes: int = 2 * 1024**3
    inference_seconds: float = 30.0
    faucet_amount: int = 10_000_000
    """What the dev faucet gives per request (dev and regtest networks only)."""
    threads: int = 16
    """WSGI server threads."""
    receipt_sync_ms: int = DEFAULT_SYNC_MS
    """How often the receipt log is fsynced (market/marketdb.py). A paid call answers
    once its receipt is appended: a killed node keeps it at once, a power cut may lose
    the last this many ms. 0 fsyncs before every paid answer (group commit)."""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def params(self) -> ChainParams:
        return network_params(self.network)

    @property
    def faucet_enabled(self) -> bool:
        return self.network in ("dev", "regtest")
