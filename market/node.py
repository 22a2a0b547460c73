"""The marketplace node: one chain, its contracts, its model files, its miner.

`MarketNode` composes the layers for one data directory and is what the web
app and the CLI talk to. It owns the node's own key (receipts, channel
claims), kept in an encrypted keystore in the data directory.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import nacl.pwhash.argon2id as argon2id

from modelchain.chain.errors import KeystoreNotFound, ModelchainError
from modelchain.chain.keys import KeyPair
from modelchain.chain.keystore import decrypt_key, encrypt_key, load_keystore, save_keystore
from modelchain.chain.mempool import AddResult
from modelchain.chain.miner import Miner
from modelchain.chain.mining import MiningLoop
from modelchain.chain.node import ChainNode, TipChange
from modelchain.chain.store import ChainStore
from modelchain.chain.tx import Tx
from modelchain.contracts import default_contracts
from modelchain.market.config import NodeConfig
from modelchain.market.inference import InferenceService
from modelchain.market.network import Network
from modelchain.market.payments import Payments
from modelchain.market.upload import ModelUploads, validation_limits
from modelchain.models_store import ModelStore, inspect_model

log = logging.getLogger(__name__)

NODE_KEY_FILE = "node-key.json"


class MiningDisabled(ModelchainError):
    code = "mining-disabled"
    http_status = 409


NODE_PASSPHRASE_ENV = "MODELCHAIN_NODE_PASSPHRASE"


def load_or_create_node_key(data_dir: Path) -> KeyPair:
    """The node's key from its keystore, made on first start.

    The passphrase comes from MODELCHAIN_NODE_PASSPHRASE (empty when unset:
    fine for a dev node, set it for anything else).
    """
    path = data_dir / NODE_KEY_FILE
    passphrase = os.environ.get(NODE_PASSPHRASE_ENV, "")
    try:
        return decrypt_key(load_keystore(path), passphrase)
    except KeystoreNotFound:
        key = KeyPair.generate()
        doc = encrypt_key(
            key,
            passphrase,
            opslimit=argon2id.OPSLIMIT_INTERACTIVE,
            memlimit=argon2id.MEMLIMIT_INTERACTIVE,
        )
        save_keystore(path, doc)
        return key


class MarketNode:
    """One node's services over one data directory."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.params = config.params
        self.store = ChainStore(config.data_dir / "chain.sqlite")
        self.chain = ChainNode(self.store, self.params, default_contracts())
        self.key = load_or_create_node_key(config.data_dir)
        self.payments = Payments(self)
        self.models = ModelStore(config.data_dir / "models", max_bytes=config.max_upload_bytes)
        self.uploads = ModelUploads(
            self.chain, self.models, validation_limits(config), self.submit_tx
        )
        self.inference = InferenceService(self.models, config, receipt_key=self.key)
        self.miner: Miner | None = None
        self.mining: MiningLoop | None = None
        self.chain.listeners.append(self._on_tip_change)
        self.network = Network(
            self.chain,
            self.models,
            self.submit_tx,
            config.peers,
            check_model=self._check_replicated_model,
            poll_seconds=config.peer_poll_seconds,
        )
        self._closed = threading.Event()

    @property
    def account(self) -> str:
        """The node's account: receipts are signed by it, node shares are paid to it."""
        return self.key.account

    def start(self) -> None:
        """Start background work: the mining loop when configured, the peer links."""
        if self.config.mine and self.mining is None:
            self.miner = Miner(self.config.miner_workers)
            self.mining = MiningLoop(self.chain, self.miner, self.account)
            self.mining.start()
        self.payments.start()
        self.inference.start()
        self.network.start()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self.network.close()
        if self.mining is not None:
            self.mining.stop()
        if self.miner is not None:
            self.miner.close()
        self.payments.close()
        self.inference.close()
        self.chain.close()

    # --- chain -----------------------------------------------------------------

    def submit_tx(self, tx: Tx, *, signature_checked: bool = False) -> AddResult:
        """Admit a tx to the mempool and wake the miner; raises with a reason code.
        `signature_checked`: see ChainNode.submit_tx."""
        result = self.chain.submit_tx(tx, signature_checked=signature_checked)
        if self.mining is not None:
            self.mining.wake()
        self.network.wake()
        return result

    def request_blocks(self, count: int) -> None:
        """Ask the mining loop for `count` blocks (dev and regtest networks)."""
        if self.mining is None:
            raise MiningDisabled("this node does not mine: start it with mining on (--mine)")
        self.mining.request_blocks(count)

    def _check_replicated_model(self, path: Path) -> None:
        """A model file fetched from a peer passes the upload's validation, or is not kept."""
        inspect_model(path, self.uploads.limits)

    def _on_tip_change(self, change: TipChange) -> None:
        log.debug("tip %d %s", change.tip.height, change.tip.hash[:16])
