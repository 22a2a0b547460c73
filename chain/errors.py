"""Typed errors of the chain layer, each with a stable reason code.

One base class for the project, a family per area; the `code` is for programs
and never changes once shipped, the message is for people and names values.
"""

from __future__ import annotations


class ModelchainError(Exception):
    """Base of every error the project raises on purpose."""

    code = "error"
    http_status = 400

    def __init__(self, message: str = "", **detail: object) -> None:
        super().__init__(message or self.code)
        self.message = message or self.code
        self.detail = detail

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {"code": self.code, "message": self.message}
        body.update(self.detail)
        return {"error": body}


class EncodingError(ModelchainError):
    code = "encoding-invalid"


class InvalidTransaction(ModelchainError):
    code = "tx-invalid"


class InvalidBlock(ModelchainError):
    code = "block-invalid"


class MempoolRejected(ModelchainError):
    code = "mempool-rejected"


class KeystoreError(ModelchainError):
    code = "keystore-error"


# --- encoding -----------------------------------------------------------


class NonCanonicalValue(EncodingError):
    code = "encoding-non-canonical"


# --- transactions -------------------------------------------------------


class TxMalformed(InvalidTransaction):
    code = "tx-malformed"


class TxWrongChain(InvalidTransaction):
    code = "tx-wrong-chain"


class TxBadSignature(InvalidTransaction):
    code = "tx-bad-signature"


class TxNonceTooLow(InvalidTransaction):
    code = "tx-nonce-too-low"


class TxNonceTooHigh(InvalidTransaction):
    code = "tx-nonce-too-high"


class TxInsufficientBalance(InvalidTransaction):
    code = "tx-insufficient-balance"


class TxUnknownContract(InvalidTransaction):
    code = "tx-unknown-contract"


class TxBadCall(InvalidTransaction):
    """The call's arguments do not fit the method (checked before execution)."""

    code = "tx-bad-call"


class TxTooLarge(InvalidTransaction):
    code = "tx-too-large"


class TxUnknown(InvalidTransaction):
    code = "tx-unknown"
    http_status = 404


# --- blocks -------------------------------------------------------------


class BlockMalformed(InvalidBlock):
    code = "block-malformed"


class BlockBadPow(InvalidBlock):
    code = "block-bad-pow"


class BlockBadTarget(InvalidBlock):
    code = "block-bad-target"


class BlockBadHeight(InvalidBlock):
    code = "block-bad-height"


class BlockTimeTooOld(InvalidBlock):
    code = "block-time-too-old"


class BlockTimeTooNew(InvalidBlock):
    """Not invalid for ever: the block is accepted once its time has come."""

    code = "block-time-too-new"


class BlockBadMerkleRoot(InvalidBlock):
    code = "block-bad-merkle-root"


class BlockDuplicateTx(InvalidBlock):
    code = "block-duplicate-tx"


class BlockMissingReward(InvalidBlock):
    code = "block-missing-reward"


class BlockExtraReward(InvalidBlock):
    code = "block-extra-reward"


class BlockRewardTooHigh(InvalidBlock):
    code = "block-reward-too-high"


class BlockBadReward(InvalidBlock):
    code = "block-bad-reward"


class BlockTooLarge(InvalidBlock):
    code = "block-too-large"


class BlockBadTx(InvalidBlock):
    """A tx in the block is invalid against the state; names the tx's own code."""

    code = "block-bad-tx"


class BlockUnknownParent(InvalidBlock):
    code = "block-unknown-parent"


class BlockKnownInvalid(InvalidBlock):
    code = "block-known-invalid"


class BlockBadVersion(InvalidBlock):
    code = "block-bad-version"


class BlockBadGenesis(InvalidBlock):
    code = "block-bad-genesis"


class BlockUnknown(InvalidBlock):
    code = "block-unknown"
    http_status = 404


# --- mempool ------------------------------------------------------------


class MempoolFeeTooLow(MempoolRejected):
    code = "mempool-fee-too-low"


class MempoolReplacementFeeTooLow(MempoolRejected):
    code = "mempool-replacement-fee-too-low"


class MempoolFull(MempoolRejected):
    code = "mempool-full"


class MempoolAlreadyKnown(MempoolRejected):
    code = "mempool-already-known"


class MempoolFutureNonceFull(MempoolRejected):
    code = "mempool-future-nonce-limit"


# --- keystore -----------------------------------------------------------


class KeystoreBadPassphrase(KeystoreError):
    code = "keystore-bad-passphrase"
    http_status = 401


class KeystoreMalformed(KeystoreError):
    code = "keystore-malformed"


class KeystoreExists(KeystoreError):
    code = "keystore-exists"
    http_status = 409


class KeystoreNotFound(KeystoreError):
    code = "keystore-not-found"
    http_status = 404


class BadKey(KeystoreError):
    code = "key-invalid"


class KeystoreBadName(KeystoreError):
    """A wallet name outside the grammar `[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}`."""

    code = "keystore-bad-name"
