"""Typed errors of the native contracts, each with a stable kebab-case reason code.

Shape errors found by `check_call` (no state needed) subclass the chain's
`TxBadCall`: such a tx is refused, never included. Failures found while
executing subclass `ContractError`: the tx is included, pays its fee, and
changes nothing else. Codes never change once shipped.
"""

from __future__ import annotations

from modelchain.chain.contract import ContractError
from modelchain.chain.errors import ModelchainError, TxBadCall

# --- registry: call shape ----------------------------------------------------


class RegistryBadCall(TxBadCall):
    code = "registry-bad-call"


class RegistryUnknownMethod(RegistryBadCall):
    code = "registry-unknown-method"


class RegistryBadArgs(RegistryBadCall):
    """Missing or unexpected argument names."""

    code = "registry-bad-args"


class RegistryBadName(RegistryBadCall):
    code = "registry-bad-name"


class RegistryBadVersion(RegistryBadCall):
    code = "registry-bad-version"


class RegistryBadSha256(RegistryBadCall):
    code = "registry-bad-sha256"


class RegistryBadMetadata(RegistryBadCall):
    code = "registry-bad-metadata"


class RegistryBadPrice(RegistryBadCall):
    code = "registry-bad-price"


class RegistryBadSplit(RegistryBadCall):
    code = "registry-bad-split"


class RegistryBadAccount(RegistryBadCall):
    code = "registry-bad-account"


class RegistryBadSuccessor(RegistryBadCall):
    code = "registry-bad-successor"


# --- registry: execution -----------------------------------------------------


class RegistryError(ContractError):
    code = "registry-error"


class RegistryNotOwner(RegistryError):
    code = "registry-not-owner"


class RegistryUnknownModel(RegistryError):
    code = "registry-unknown-model"


class RegistryUnknownVersion(RegistryError):
    code = "registry-unknown-version"


class RegistryVersionExists(RegistryError):
    code = "registry-version-exists"


class RegistrySha256Exists(RegistryError):
    code = "registry-sha256-exists"


class RegistryDeprecated(RegistryError):
    code = "registry-deprecated"


class RegistryUnknownSuccessor(RegistryError):
    code = "registry-unknown-successor"


class RegistrySuccessorDeprecated(RegistryError):
    code = "registry-successor-deprecated"


# --- usage_fee: call shape ---------------------------------------------------


class UsageBadCall(TxBadCall):
    code = "usage-bad-call"


class UsageUnknownMethod(UsageBadCall):
    code = "usage-unknown-method"


class UsageBadArgs(UsageBadCall):
    code = "usage-bad-args"


class UsageBadModel(UsageBadCall):
    code = "usage-bad-model"


class UsageBadVersion(UsageBadCall):
    code = "usage-bad-version"


class UsageBadAmount(UsageBadCall):
    code = "usage-bad-amount"


class UsageBadNode(UsageBadCall):
    code = "usage-bad-node"


class UsageBadRequest(UsageBadCall):
    code = "usage-bad-request"


# --- usage_fee: execution ----------------------------------------------------


class UsageError(ContractError):
    code = "usage-error"


class UsageUnknownVersion(UsageError):
    code = "usage-unknown-version"


class UsageDeprecatedVersion(UsageError):
    code = "usage-deprecated-version"


class UsageFreeVersion(UsageError):
    code = "usage-free-version"


class UsageWrongPrice(UsageError):
    code = "usage-wrong-price"


# --- channel: call shape -----------------------------------------------------


class ChannelBadCall(TxBadCall):
    code = "channel-bad-call"


class ChannelUnknownMethod(ChannelBadCall):
    code = "channel-unknown-method"


class ChannelBadArgs(ChannelBadCall):
    code = "channel-bad-args"


class ChannelBadModel(ChannelBadCall):
    code = "channel-bad-model"


class ChannelBadVersion(ChannelBadCall):
    code = "channel-bad-version"


class ChannelBadNode(ChannelBadCall):
    code = "channel-bad-node"


class ChannelBadAmount(ChannelBadCall):
    """A deposit or a voucher amount out of range."""

    code = "channel-bad-amount"


class ChannelBadExpiry(ChannelBadCall):
    code = "channel-bad-expiry"


class ChannelBadId(ChannelBadCall):
    code = "channel-bad-id"


class ChannelBadSig(ChannelBadCall):
    """The voucher signature is not 128 lowercase hex characters."""

    code = "channel-bad-sig"


# --- channel: execution ------------------------------------------------------


class ChannelError(ContractError):
    code = "channel-error"


class ChannelUnknownVersion(ChannelError):
    code = "channel-unknown-version"


class ChannelDeprecatedVersion(ChannelError):
    code = "channel-deprecated-version"


class ChannelFreeVersion(ChannelError):
    code = "channel-free-version"


class ChannelExpiryPassed(ChannelError):
    """A new expiry must lie after the block that sets it."""

    code = "channel-expiry-passed"


class ChannelExpiryEarlier(ChannelError):
    code = "channel-expiry-earlier"


class ChannelTopupNoop(ChannelError):
    code = "channel-topup-noop"


class ChannelDepositTooLarge(ChannelError):
    code = "channel-deposit-too-large"


class ChannelUnknown(ChannelError):
    code = "channel-unknown"


class ChannelClosed(ChannelError):
    code = "channel-closed"


class ChannelNotPayer(ChannelError):
    code = "channel-not-payer"


class ChannelNotNode(ChannelError):
    code = "channel-not-node"


class ChannelExpired(ChannelError):
    code = "channel-expired"


class ChannelNotExpired(ChannelError):
    code = "channel-not-expired"


class ChannelVoucherOverDeposit(ChannelError):
    code = "channel-voucher-over-deposit"


class ChannelVoucherStale(ChannelError):
    """The voucher's cumulative amount is not above what was already claimed."""

    code = "channel-voucher-stale"


class ChannelVoucherInvalid(ChannelError):
    """The signature is not the payer's over (this chain, this channel, this amount)."""

    code = "channel-voucher-invalid"


# --- vouchers off-chain ------------------------------------------------------


class VoucherMalformed(ModelchainError):
    """A voucher's fields cannot be encoded (bad chain id, channel id or amount)."""

    code = "voucher-malformed"
