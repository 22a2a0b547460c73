"""Model upload: a model file and its owner's signed registration enter together or not at all.

The bytes are staged while they are hashed, validated in the sandbox child, and matched
against the signed `registry.register` tx (same sha256, same extracted I/O signature); the
file is committed only when the tx would enter the mempool, and removed again if it does not,
so a rejected file or tx leaves neither behind. A dry run validates a file and returns its
signature without storing anything: clients put that signature into the tx they sign.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from modelchain.chain.encoding import decode_canonical
from modelchain.chain.errors import MempoolAlreadyKnown, ModelchainError, NonCanonicalValue
from modelchain.chain.execute import check_call_shape
from modelchain.chain.mempool import AddResult
from modelchain.chain.node import ChainNode
from modelchain.chain.tx import Tx, tx_from_json, validate_tx_stateless
from modelchain.contracts import registry
from modelchain.contracts.errors import (
    RegistryNotOwner,
    RegistrySha256Exists,
    RegistryVersionExists,
)
from modelchain.contracts.split import BPS_TOTAL
from modelchain.market.config import NodeConfig
from modelchain.models_store import ModelStore, ModelStoreError, StagedModel, ValidationLimits
from modelchain.models_store.limits import MAX_PROTOBUF_BYTES
from modelchain.models_store.sandbox import inspect_model

DEFAULT_OWNER_BPS = 9000
"""The owner's share of a split when none is given (the serving node gets the rest)."""
DEFAULT_NODE_BPS = BPS_TOTAL - DEFAULT_OWNER_BPS

STATUS_KNOWN = "known"
"""Upload status when the very same tx was already pending or mined: only the file was kept."""


# --- errors ----------------------------------------------------------------------------


class UploadError(ModelchainError):
    code = "upload-error"


class UploadBadTx(UploadError):
    """The tx sent with a file is unreadable or is not a `registry.register` call."""

    code = "upload-bad-tx"


class UploadSha256Mismatch(UploadError):
    code = "upload-sha256-mismatch"


class UploadSignatureMismatch(UploadError):
    code = "upload-signature-mismatch"


class ModelFileRejected(ModelchainError):
    """A models_store error in the project's error family: same code, same HTTP status."""

    code = "model-invalid"

    def __init__(self, error: ModelStoreError) -> None:
        super().__init__(error.message)
        self.code = error.code
        self.http_status = error.http_status


@contextmanager
def store_errors() -> Iterator[None]:
    """Re-raise models_store errors as ModelFileRejected (the web layer answers those)."""
    try:
        yield
    except ModelStoreError as exc:
        raise ModelFileRejected(exc) from exc


# --- values ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InspectResult:
    """What a dry run found: the file's hash, size and extracted I/O signature."""

    sha256: str
    size: int
    signature: dict[str, Any]
    """ModelSignature.to_json(): put it verbatim into the tx's metadata.io_signature."""
    registered_as: str | None = None
    """name@version of the main-chain registration of this very file, if there is one."""

    def to_json(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "size": self.size,
            "signature": self.signature,
            "registered_as": self.registered_as,
        }


@dataclass(frozen=True, slots=True)
class UploadResult:
    """A stored file and its admitted registration tx."""

    txid: str
    status: str
    """Mempool status (`ready`), or `known` when the tx was already pending or mined."""
    name: str
    version: str
    sha256: str
    size: int
    signature: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "txid": self.txid,
            "status": self.status,
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "size": self.size,
            "signature": self.signature,
        }


# --- building a registration -------------------------------------------------------------


def default_split(owner: str) -> dict[str, Any]:
    """One owner with DEFAULT_OWNER_BPS, the serving node with the rest."""
    return {"owners": [[owner, DEFAULT_OWNER_BPS]], "node": DEFAULT_NODE_BPS}


def registration_args(
    *,
    name: str,
    version: str,
    sha256: str,
    price: int,
    split: dict[str, Any],
    io_signature: dict[str, Any],
    description: str = "",
    license: str = "",
    tags: tuple[str, ...] | list[str] = (),
) -> dict[str, Any]:
    """The args of a `registry.register` call for an uploaded file (docs/contracts.md)."""
    return {
        "name": name,
        "version": version,
        "sha256": sha256,
        "price": price,
        "split": split,
        "metadata": {
            "description": description,
            "license": license,
            "tags": list(tags),
            "io_signature": io_signature,
        },
    }


def parse_tx_json(data: bytes) -> Tx:
    """The tx sent with an upload, from its JSON bytes; raises UploadBadTx or TxMalformed."""
    try:
        fields = decode_canonical(data, strict=False)
    except NonCanonicalValue as exc:
        raise UploadBadTx(f"the tx is not JSON of integers and strings: {exc.message}") from None
    return tx_from_json(fields)


def validation_limits(config: NodeConfig) -> ValidationLimits:
    """What one validation may cost on this node: the upload size limit, default memory/time."""
    return ValidationLimits(max_bytes=min(config.max_upload_bytes, MAX_PROTOBUF_BYTES))


# --- the service -----------------------------------------------------------------------


class ModelUploads:
    """Dry runs and uploads for one node's chain and model store. Thread-safe."""

    def __init__(
        self,
        chain: ChainNode,
        models: ModelStore,
        limits: ValidationLimits,
        submit: Callable[[Tx], AddResult],
    ) -> None:
        self.chain = chain
        self.models = models
        self.limits = limits
        self.submit = submit

    def inspect(self, stream: BinaryIO) -> InspectResult:
        """Validate the streamed file and return its signature; stores nothing.

        Raises ModelFileRejected with the models_store code (model-not-onnx, model-too-large...).
        """
        with store_errors(), self.models.staging(stream) as staged:
            signature = self._signature(staged.path)
        taken = registry.find_by_sha256(self.chain.store, staged.sha256)
        return InspectResult(staged.sha256, staged.size, signature, taken.ref if taken else None)

    def upload(self, stream: BinaryIO, tx: Tx) -> UploadResult:
        """Store the streamed file and admit `tx`, its registration: both or neither.

        Raises UploadBadTx, the chain's tx and mempool errors, the registry's shape errors
        and conflicts (registry-not-owner, registry-version-exists, registry-sha256-exists),
        ModelFileRejected, UploadSha256Mismatch and UploadSignatureMismatch.
        """
        validate_registration_shape(self.chain, tx)
        with self.chain.lock:  # fail fast, before reading a file bound to be refused
            if not is_known_tx(self.chain, tx):
                check_registration_admissible(self.chain, tx)
        args = tx.args
        with store_errors(), self.models.staging(stream) as staged:
            if staged.sha256 != args["sha256"]:
                raise UploadSha256Mismatch(
                    f"the file's sha256 is {staged.sha256}, the tx registers {args['sha256']}",
                    file_sha256=staged.sha256,
                    tx_sha256=args["sha256"],
                )
            signature = self._signature(staged.path)
            declared = args.get("metadata", {}).get("io_signature")
            if declared != signature:
                raise UploadSignatureMismatch(
                    "the tx's metadata.io_signature must equal the signature the node extracts "
                    "from the file (get it from POST /api/v1/models/inspect, then sign)",
                    signature=signature,
                )
            status = self._store_and_admit(staged, tx)
            return UploadResult(
                txid=tx.txid,
                status=status,
                name=args["name"],
                version=args["version"],
                sha256=staged.sha256,
                size=staged.size,
                signature=signature,
            )

    def _signature(self, path: Path) -> dict[str, Any]:
        return inspect_model(path, self.limits).to_json()

    def _store_and_admit(self, staged: StagedModel, tx: Tx) -> str:
        # under the chain lock nothing can admit a competing registration between the
        # checks and the submit, so the file is committed only for a tx that enters
        with self.chain.lock:
            if is_known_tx(self.chain, tx):
                staged.commit()  # the registration is already in: keep its file too
                return STATUS_KNOWN
            check_registration_admissible(self.chain, tx)
            existed = self.models.has(staged.sha256)
            staged.commit()
            try:
                result = self.submit(tx)
            except BaseException:
                if not existed:
                    self.models.delete(staged.sha256)
                raise
            return result.status


def validate_registration_shape(chain: ChainNode, tx: Tx) -> None:
    """The tx is a well-formed, correctly signed `registry.register` call for this chain.

    Raises UploadBadTx, the chain's stateless tx errors (tx-wrong-chain, tx-bad-signature,
    ...) or the registry's shape errors (registry-bad-name, ...).
    """
    if (tx.contract, tx.method) != (registry.REGISTRY, "register"):
        raise UploadBadTx(
            f"an upload's tx must call {registry.REGISTRY}.register, not {tx.contract}.{tx.method}"
        )
    validate_tx_stateless(tx, chain.params)
    check_call_shape(tx, chain.contracts)


def is_known_tx(chain: ChainNode, tx: Tx) -> bool:
    """True when this very tx is pending or in a main-chain block."""
    return tx.txid in chain.mempool or chain.store.tx_location(tx.txid) is not None


def check_registration_admissible(chain: ChainNode, tx: Tx) -> None:
    """Raise unless `tx` would enter the mempool as ready and then register successfully.

    Checks the registry's rules against the chain state and the pending registrations
    (so a file is never stored for a registration bound to fail), then the mempool's
    own admission (fee, nonce, balance). Call it holding `chain.lock`.
    """
    name, version, sha256 = tx.args["name"], tx.args["version"], tx.args["sha256"]
    model = registry.get_model(chain.store, name)
    if model is not None and model.owner != tx.sender:
        raise RegistryNotOwner(f"{name} is owned by {model.owner[:16]}, not {tx.sender[:16]}")
    if registry.get_version(chain.store, name, version) is not None:
        raise RegistryVersionExists(f"{name}@{version} is already registered")
    taken = registry.find_by_sha256(chain.store, sha256)
    if taken is not None:
        raise RegistrySha256Exists(f"sha256 {sha256[:16]} is already registered as {taken.ref}")
    for other in pending_registrations(chain):
        if other.txid == tx.txid:
            raise MempoolAlreadyKnown(f"tx {tx.txid[:16]} is already in the mempool")
        pending = f"pending tx {other.txid[:16]}"
        if other.args["sha256"] == sha256:
            raise RegistrySha256Exists(f"sha256 {sha256[:16]} is being registered by {pending}")
        if other.args["name"] != name:
            continue
        if other.args["version"] == version:
            raise RegistryVersionExists(f"{name}@{version} is being registered by {pending}")
        if model is None and other.sender != tx.sender:
            raise RegistryNotOwner(
                f"{name} is being registered by {other.sender[:16]} in {pending}"
            )
    chain.mempool.check_ready(tx, chain.store, chain.now())


def pending_registrations(chain: ChainNode) -> list[Tx]:
    """The `registry.register` txs waiting in the mempool."""
    return [
        entry.tx
        for entry in chain.mempool.entries()
        if (entry.tx.contract, entry.tx.method) == (registry.REGISTRY, "register")
    ]
