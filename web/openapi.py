"""The node's OpenAPI 3.1 document: the JSON API at /api/v1 and the Open Inference Protocol at /v2.

It is built here as plain Python data from what the route modules really do: their
parameters, bodies, statuses, answers, and the error codes each status may carry.
tests/web/test_web_openapi.py holds it to that: it validates as OpenAPI 3.1, it lists
exactly the app's routes, and real answers match the schema documented for their status.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import modelchain
from modelchain.chain.params import MAX_AMOUNT
from modelchain.chain.peers import MAX_LOCATOR_HASHES
from modelchain.contracts.grammar import HASH_RE, NAME_RE, SIG_RE, VERSION_RE
from modelchain.market.catalog import MAX_OFFSET, MAX_QUERY_CHARS, SORTS
from modelchain.market.explorer import MAX_PAGE
from modelchain.market.network import MAX_MEMPOOL_IDS, MAX_SYNC_BLOCKS, SYNC_BATCH_BLOCKS
from modelchain.market.receipts import MAX_REQUEST_ID_CHARS

OPENAPI_VERSION = "3.1.0"
JSON = "application/json"
OCTETS = "application/octet-stream"
MULTIPART = "multipart/form-data"
ERROR_CODE_RE = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
"""Error codes are kebab-case; a code ending in `*` in this module stands for a family."""
SAFE_INTEGER = 2**53 - 1
"""Counts and heights travel as JSON numbers; a browser reads them exactly up to here."""

Schema = dict[str, Any]


# --- schema helpers ------------------------------------------------------------------------


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _or_null(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _object(
    properties: Mapping[str, Schema],
    *,
    optional: Sequence[str] = (),
    description: str | None = None,
    closed: bool = True,
) -> Schema:
    """An object with these properties, all required but `optional`; a closed object
    has no others (so the tests notice a key the code answers and the document lacks)."""
    schema: Schema = {"type": "object"}
    if description:
        schema["description"] = description
    schema["properties"] = dict(properties)
    schema["required"] = [name for name in properties if name not in optional]
    if closed:
        schema["additionalProperties"] = False
    return schema


def _array(items: Schema, description: str | None = None, **extra: Any) -> Schema:
    schema: Schema = {"type": "array", "items": items, **extra}
    if description:
        schema["description"] = description
    return schema


def _count(description: str | None = None) -> Schema:
    schema: Schema = {"type": "integer", "minimum": 0, "maximum": SAFE_INTEGER}
    if description:
        schema["description"] = description
    return schema


def _string(description: str | None = None, **extra: Any) -> Schema:
    schema: Schema = {"type": "string", **extra}
    if description:
        schema["description"] = description
    return schema


def _bool(description: str | None = None) -> Schema:
    schema: Schema = {"type": "boolean"}
    if description:
        schema["description"] = description
    return schema


def _pattern(regex: re.Pattern[str]) -> str:
    """A grammar regex as a JSON Schema pattern (anchored at both ends)."""
    pattern = regex.pattern
    return pattern if pattern.startswith("^") else f"^{pattern}$"


BINARY: Schema = {"type": "string", "contentMediaType": OCTETS}


# --- components: values -----------------------------------------------------------------------


def _value_schemas() -> dict[str, Schema]:
    return {
        "Hash": _string(
            "A sha256 (a txid, block hash, model file hash, channel or receipt id): 64 lowercase"
            " hex.",
            pattern=_pattern(HASH_RE),
        ),
        "Account": _string(
            "An account: its Ed25519 public key, 64 lowercase hex.", pattern=_pattern(HASH_RE)
        ),
        "Signature": _string("An Ed25519 signature, 128 lowercase hex.", pattern=_pattern(SIG_RE)),
        "Amount": {
            "type": "integer",
            "minimum": 0,
            "maximum": MAX_AMOUNT,
            "description": "Coins in the smallest unit: an integer, never a float.",
        },
        "Height": _count("A block height (the genesis block is 0)."),
        "Target": _string("A proof-of-work target as 64 hex digits.", pattern="^[0-9a-f]{64}$"),
        "BigNumber": _string(
            "A non-negative integer too large for a JSON number, in decimal.",
            pattern="^[0-9]+$",
        ),
        "ModelName": _string(
            "A model name: 1..64 of a-z 0-9 '-', not starting or ending with '-'.",
            pattern=_pattern(NAME_RE),
        ),
        "Version": _string(
            "A model version: 1..32 of A-Z a-z 0-9 '.' '_' '-', starting with a letter or digit.",
            pattern=_pattern(VERSION_RE),
        ),
        "V2Error": {
            "type": "object",
            "description": (
                'The Open Inference Protocol\'s error body under /v2: {"error": message}, its'
                " clients read `error` as a string; the project's stable `code` and any detail"
                " keys stand beside it."
            ),
            "properties": {
                "error": _string("What went wrong, naming the values."),
                "code": _string("Kebab-case reason code.", pattern=_pattern(ERROR_CODE_RE)),
            },
            "required": ["error", "code"],
        },
        "Error": {
            "type": "object",
            "description": (
                'The one error body: {"error": {"code", "message", ...}}. `code` is stable and'
                " for programs; `message` is for people; other keys carry detail (values the"
                " failure names) and may be added, `code` and `message` are never removed."
            ),
            "properties": {
                "error": {
                    "type": "object",
                    "properties": {
                        "code": _string("Kebab-case reason code.", pattern=_pattern(ERROR_CODE_RE)),
                        "message": _string("What went wrong, naming the values."),
                    },
                    "required": ["code", "message"],
                }
            },
            "required": ["error"],
            "additionalProperties": False,
        },
    }


# --- components: the chain -----------------------------------------------------------------


_BLOCK_SUMMARY: dict[str, Schema] = {
    "hash": _ref("Hash"),
    "height": _ref("Height"),
    "prev_hash": _ref("Hash"),
    "timestamp": _count("Unix seconds."),
    "miner": _ref("Account"),
    "target": _ref("Target"),
    "difficulty": _ref("BigNumber"),
    "tx_count": _count(),
    "size": _count("Bytes of the block."),
    "reward": _ref("Amount"),
    "confirmations": _count("0 when the block is not on the main chain."),
}

_TX_FIELDS: dict[str, Schema] = {
    "chain_id": _string("The network the tx is for.", minLength=1, maxLength=64),
    "sender": _string(
        "The signing account; empty for a block reward.", pattern="^([0-9a-f]{64})?$"
    ),
    "nonce": _count("The sender's count of earlier txs (a reward's is its height)."),
    "fee": _ref("Amount"),
    "contract": _string("The contract called: coin, registry, usage_fee, channel, or reward."),
    "method": _string(),
    "args": {"type": "object", "description": "The call's arguments (docs/contracts.md)."},
    "sig": _string(
        "Ed25519 signature, 128 hex; empty for a block reward.", pattern="^([0-9a-f]{128})?$"
    ),
}

_CHAIN_EVENT: dict[str, Schema] = {
    "id": _count("Event ids grow in chain order."),
    "block_hash": _ref("Hash"),
    "height": _ref("Height"),
    "txid": _ref("Hash"),
    "tx_index": _count(),
    "event_index": _count(),
    "contract": _string(),
    "type": _string("Kebab-case event type (docs/contracts.md)."),
    "data": {"type": "object"},
}

_ACCOUNT: dict[str, Schema] = {
    "account": _ref("Account"),
    "balance": _ref("Amount"),
    "nonce": _count(),
    "pending_nonce": _count("The nonce of the account's next tx, counting its pooled txs."),
    "pending_balance": {
        "type": "integer",
        "description": "The balance minus what the account's pooled txs may spend.",
    },
    "height": _ref("Height"),
}

_CHANNEL_RECORD: dict[str, Schema] = {
    "id": _ref("Hash"),
    "payer": _ref("Account"),
    "node": _ref("Account"),
    "model": _ref("ModelName"),
    "version": _ref("Version"),
    "sha256": _ref("Hash"),
    "deposit": _ref("Amount"),
    "claimed": _ref("Amount"),
    "expiry": _ref("Height"),
    "opened_height": _ref("Height"),
    "closed": _bool("Refunded to the payer."),
}


def _chain_schemas() -> dict[str, Schema]:
    tx_with_id = {**_TX_FIELDS, "txid": _ref("Hash")}
    confirmed = {
        "txid": _ref("Hash"),
        "status": {"const": "confirmed"},
        "tx": _ref("Tx"),
        "block_hash": _ref("Hash"),
        "height": _ref("Height"),
        "index": _count("Position in the block (0 is the reward)."),
        "confirmations": _count(),
        "receipt": _or_null(_ref("TxReceipt")),
    }
    pending = {
        "txid": _ref("Hash"),
        "status": {"const": "pending"},
        "pool": {"enum": ["ready", "future"]},
        "tx": _ref("Tx"),
        "confirmations": {"const": 0},
    }
    audit_events = _array(_ref("AuditEvent"), "The tx's events, in order.")
    return {
        "ChainInfo": _object(
            {
                "chain_id": _string(),
                "height": _ref("Height"),
                "tip": _ref("Hash"),
                "tip_time": _count("The tip's timestamp, Unix seconds."),
                "target": _ref("Target"),
                "difficulty": _ref("BigNumber"),
                "cumulative_work": _ref("BigNumber"),
                "genesis": _ref("Hash"),
                "mempool_size": _count(),
                "target_block_seconds": _count(),
                "node_account": _ref("Account"),
                "channel_margin_blocks": _count(
                    "This node takes a channel's vouchers only while height + this < expiry."
                ),
            },
            description=(
                "The node's chain tip, its own account (receipts, node shares) and how close"
                " to a channel's expiry it stops taking vouchers."
            ),
        ),
        "Tx": _object(
            _TX_FIELDS,
            description=(
                "A tx as JSON (docs/encoding.md): canonical JSON of these fields is what the"
                " signature covers and the txid hashes."
            ),
        ),
        "SignedTx": _object(
            {**_TX_FIELDS, "sender": _ref("Account"), "sig": _ref("Signature")},
            description="A signed tx as a client sends it.",
        ),
        "TxReceipt": _object(
            {
                "block_hash": _ref("Hash"),
                "index": _count(),
                "height": _ref("Height"),
                "status": {"enum": ["ok", "failed"]},
                "code": _string("The failure's reason code; empty when ok."),
                "message": _string(),
                "fee": _ref("Amount"),
                "events": _array(_ref("ChainEvent")),
            },
            description="How a mined tx ran: a failed call changes no state but pays its fee.",
        ),
        "ChainEvent": _object(_CHAIN_EVENT, description="An event a contract emitted."),
        "AuditEvent": _object(
            {
                **_CHAIN_EVENT,
                "confirmations": _count(),
                "cursor": _string(
                    "Continue a listing after this event: `{id}.{height}.{16 hex of the block}`.",
                    pattern="^[0-9]+\\.[0-9]+\\.[0-9a-f]{16}$",
                ),
            },
            description="An event of a main-chain block, with its confirmations and cursor.",
        ),
        "BlockHeader": _object(
            {
                "version": _count(),
                "height": _ref("Height"),
                "prev_hash": _ref("Hash"),
                "merkle_root": _ref("Hash"),
                "timestamp": _count(),
                "target": _ref("Target"),
                "miner": _ref("Account"),
                "nonce": _ref("BigNumber"),
            }
        ),
        "BlockSummary": _object(_BLOCK_SUMMARY),
        "Block": _object(
            {
                **_BLOCK_SUMMARY,
                "header": _ref("BlockHeader"),
                "on_main_chain": _bool(),
                "txs": _array(
                    _object({**tx_with_id, "receipt": _or_null(_ref("TxReceipt"))}),
                    "The reward first, then the block's txs, each with its receipt (null off"
                    " the main chain).",
                ),
            },
            description="A block by hash (any branch) or main-chain height, with its txs.",
        ),
        "BlockList": _object({"blocks": _array(_ref("BlockSummary"), "Newest first.")}),
        "BlockSubmitted": _object(
            {
                "hash": _ref("Hash"),
                "status": {"enum": ["accepted", "duplicate"]},
                "code": {"const": ""},
                "height": _ref("Height"),
            }
        ),
        "BlockOrphaned": _object(
            {
                "hash": _ref("Hash"),
                "status": {"const": "orphan"},
                "code": {"const": "block-unknown-parent"},
                "height": _ref("Height"),
            },
            description="Valid proof of work on an unknown parent: kept until the parent comes.",
        ),
        "TxSubmitted": _object(
            {
                "txid": _ref("Hash"),
                "status": {"enum": ["ready", "future"]},
                "replaced": _or_null(_ref("Hash")),
            },
            description=(
                "ready: minable now; future: waits for an earlier nonce. `replaced`: the pooled"
                " tx of the same nonce this one replaced (it paid a higher fee)."
            ),
        ),
        "TxDetail": {
            "oneOf": [
                _object(confirmed, description="Mined on the main chain."),
                _object(pending, description="Waiting in the mempool."),
            ]
        },
        "TxAudit": {
            "oneOf": [
                _object({**confirmed, "events": audit_events}),
                _object({**pending, "events": _array(_ref("AuditEvent"), maxItems=0)}),
            ]
        },
        "AccountInfo": _object(_ACCOUNT),
        "Mempool": _object(
            {
                "size": _count("Txs in the pool."),
                "bytes": _count(),
                "txs": _array(
                    _object(
                        {
                            "txid": _ref("Hash"),
                            "sender": _ref("Account"),
                            "nonce": _count(),
                            "fee": _ref("Amount"),
                            "size": _count(),
                            "contract": _string(),
                            "method": _string(),
                            "status": {"enum": ["ready", "future"]},
                            "added": _count("Unix seconds."),
                        }
                    ),
                    "Highest fee rate first.",
                ),
            }
        ),
        "MineRequested": _object(
            {
                "requested": {"type": "integer", "minimum": 1, "maximum": 100},
                "height": _ref("Height"),
            }
        ),
    }


# --- components: models, catalog, audit ----------------------------------------------------


_VERSION_RECORD: dict[str, Schema] = {
    "name": _ref("ModelName"),
    "version": _ref("Version"),
    "sha256": _ref("Hash"),
    "registrant": _ref("Account"),
    "price": _ref("Amount"),
    "split": _ref("RevenueSplit"),
    "metadata": _object(
        {
            "description": _string(),
            "license": _string(),
            "tags": _array(_ref("ModelName")),
            "io_signature": {
                "type": "object",
                "description": (
                    "The signature as registered: a ModelSignature for every upload through"
                    " this node; the chain itself only requires an object."
                ),
            },
        }
    ),
    "deprecated": _bool(),
    "successor": _or_null(_ref("Version")),
    "registered_height": _ref("Height"),
}

_VERSION_ENTRY: dict[str, Schema] = {
    **_VERSION_RECORD,
    "ref": _string("name@version"),
    "owner": _ref("Account"),
    "registration": _or_null(
        _object(
            {
                "txid": _ref("Hash"),
                "block_hash": _ref("Hash"),
                "height": _ref("Height"),
                "confirmations": _count(),
            }
        )
    ),
    "confirmations": _count(),
    "usage": _ref("Usage"),
}


def _value_type_schema() -> Schema:
    dim = {"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]}
    tensor = _object(
        {
            "elem_type": _string("ONNX element type, e.g. float32, int64, string."),
            "shape": _or_null(_array(dim, "A dimension is a size, a symbol, or null.")),
        }
    )
    return {
        "description": "An ONNX value type, one key naming its kind.",
        "oneOf": [
            _object({"tensor": tensor}),
            _object({"sparse_tensor": tensor}),
            _object({"sequence": _ref("ValueType")}),
            _object({"map": _object({"key": _string(), "value": _ref("ValueType")})}),
            _object({"optional": _ref("ValueType")}),
            _object({"opaque": _object({"domain": _string(), "name": _string()})}),
            _object({"unknown": _object({})}),
        ],
    }


def _model_schemas() -> dict[str, Schema]:
    model_version = {
        **_VERSION_ENTRY,
        "file_available": _bool("This node holds the model file."),
    }
    return {
        "RevenueSplit": _object(
            {
                "owners": _array(
                    {
                        "type": "array",
                        "prefixItems": [_ref("Account"), {"type": "integer"}],
                        "minItems": 2,
                        "maxItems": 2,
                    },
                    "[account, basis points] pairs.",
                ),
                "node": {"type": "integer", "description": "The serving node's basis points."},
            },
            description="How a call's price splits, in basis points adding up to 10000.",
        ),
        "ValueType": _value_type_schema(),
        "ValueInfo": _object({"name": _string(), "type": _ref("ValueType")}),
        "ModelSignature": _object(
            {
                "inputs": _array(_ref("ValueInfo")),
                "outputs": _array(_ref("ValueInfo")),
                "opsets": {
                    "type": "object",
                    "additionalProperties": {"type": "integer"},
                    "description": 'Opset version by domain ("" is ai.onnx).',
                },
                "ir_version": _count(),
                "producer_name": _string(),
                "producer_version": _string(),
                "parameter_count": _count(),
                "size_bytes": _count(),
            },
            description="What the sandbox reads from a model file; registered as io_signature.",
        ),
        "Usage": _object(
            {
                "paid_calls": _count("usage-paid events: one per call paid per call."),
                "paid_amount": _ref("Amount"),
                "channel_claims": _count("channel-claimed events: each settles many calls."),
                "channel_amount": _ref("Amount"),
                "revenue": _ref("Amount"),
            }
        ),
        "UploadResult": _object(
            {
                "txid": _ref("Hash"),
                "status": {
                    "enum": ["ready", "known"],
                    "description": (
                        "known: this very tx was pending or mined; only the file was kept."
                    ),
                },
                "name": _ref("ModelName"),
                "version": _ref("Version"),
                "sha256": _ref("Hash"),
                "size": _count(),
                "signature": _ref("ModelSignature"),
            }
        ),
        "InspectResult": _object(
            {
                "sha256": _ref("Hash"),
                "size": _count(),
                "signature": _ref("ModelSignature"),
                "registered_as": _or_null(
                    _string("name@version registered with this very file on the main chain.")
                ),
            }
        ),
        "VersionEntry": _object(
            _VERSION_ENTRY,
            description="A registered version: its on-chain record, owner, registration, usage.",
        ),
        "ModelVersion": _object(
            model_version, description="A catalog entry: a VersionEntry and file_available."
        ),
        "ModelVersionDetail": _object({**model_version, "height": _ref("Height")}),
        "CatalogPage": _object(
            {
                "versions": _array(_ref("ModelVersion")),
                "total": _count("Versions matching, over all pages."),
                "limit": _count(),
                "offset": _count(),
                "sort": {"enum": list(SORTS)},
                "height": _ref("Height"),
            }
        ),
        "ModelDetail": _object(
            {
                "name": _ref("ModelName"),
                "owner": _ref("Account"),
                "version_count": _count(),
                "registered_height": _ref("Height"),
                "latest": _or_null(_ref("Version")),
                "usage": _ref("Usage"),
                "versions": _array(_ref("ModelVersion"), "Oldest first."),
                "height": _ref("Height"),
            },
            description="A model with every version; `latest` is the newest live one.",
        ),
        "ModelHistory": _object(
            {
                "name": _ref("ModelName"),
                "owner": _ref("Account"),
                "registered_height": _ref("Height"),
                "owners": _array(
                    _object({"owner": _ref("Account"), "since_height": _ref("Height")}),
                    "Each owner in turn.",
                ),
                "versions": _array(_ref("VersionEntry")),
                "usage": _ref("Usage"),
                "registry_events": _array(_ref("AuditEvent"), "Oldest first."),
                "recent_payments": _array(
                    _ref("AuditEvent"), "usage-paid and channel-claimed events, newest first."
                ),
                "height": _ref("Height"),
            }
        ),
        "AccountHistory": _object(
            {
                **_ACCOUNT,
                "models_owned": _array(_ref("ModelName")),
                "revenue_shares": _array(
                    _object(
                        {
                            "ref": _string("name@version"),
                            "bps": {"type": "integer"},
                            "price": _ref("Amount"),
                            "deprecated": _bool(),
                        }
                    )
                ),
                "payments_made": _object(
                    {
                        "paid_calls": _count(),
                        "paid_amount": _ref("Amount"),
                        "channel_claims": _count(),
                        "channel_amount": _ref("Amount"),
                        "total": _ref("Amount"),
                    }
                ),
                "payments_received": _object(
                    {
                        "count": _count(),
                        "total": _ref("Amount"),
                        "as_owner": _ref("Amount"),
                        "as_node": _ref("Amount"),
                    }
                ),
                "registrations": _object({"count": _count(), "fees": _ref("Amount")}),
                "transfers": _object(
                    {
                        "sent": _count(),
                        "sent_amount": _ref("Amount"),
                        "received": _count(),
                        "received_amount": _ref("Amount"),
                    }
                ),
                "channels": _array(
                    _object(
                        {
                            **_CHANNEL_RECORD,
                            "role": {"enum": ["payer", "node"]},
                            "remaining": _ref("Amount"),
                        }
                    )
                ),
                "recent_events": _array(_ref("AuditEvent"), "Newest first."),
            }
        ),
        "EventPage": _object(
            {
                "events": _array(_ref("AuditEvent"), "Oldest first."),
                "has_more": _bool(),
                "next_cursor": _or_null(_string("Pass as `cursor` to continue.")),
                "limit": _count(),
                "height": _ref("Height"),
            }
        ),
    }


# --- components: payments, channels, receipts ----------------------------------------------


def _payment_schemas() -> dict[str, Schema]:
    call = _object(
        {"contract": _string(), "method": _string(), "args": {"type": "object"}},
        description="A contract call to sign as a tx.",
    )
    return {
        "ChannelRecord": _object(_CHANNEL_RECORD, description="A channel as the chain has it."),
        "ChannelStatus": _object(
            {
                "channel": _ref("Hash"),
                "onchain": _or_null(_ref("ChannelRecord")),
                "node": _ref("Account"),
                "served_here": _bool("The channel pays this node."),
                "accepted": _ref("Amount"),
                "claimed": _ref("Amount"),
                "unclaimed": _ref("Amount"),
                "claim_pending": _or_null(
                    _object({"txid": _ref("Hash"), "amount": _ref("Amount")})
                ),
                "accepting": _bool("This node takes vouchers on it now."),
                "height": _ref("Height"),
                "margin_blocks": _count(),
            },
            description="A channel on-chain, with the vouchers this node accepted and claimed.",
        ),
        "ChannelList": _object({"channels": _array(_ref("ChannelStatus"), "Newest first.")}),
        "ClaimSent": _object(
            {"channel": _ref("Hash"), "txid": _ref("Hash"), "amount": _ref("Amount")},
            description="The channel.claim tx the node sent for its highest voucher.",
        ),
        "Receipt": _object(
            {
                "version": {"const": 1},
                "node": _ref("Account"),
                "chain_id": _string(minLength=1, maxLength=64),
                "height": _ref("Height"),
                "model": _ref("ModelName"),
                "model_version": _ref("Version"),
                "model_sha256": _ref("Hash"),
                "input_hash": _ref("Hash"),
                "output_hash": _ref("Hash"),
                "price": _ref("Amount"),
                "payment": {
                    "oneOf": [
                        _object({"kind": {"const": "tx"}, "txid": _ref("Hash")}),
                        _object(
                            {
                                "kind": {"const": "channel"},
                                "channel": _ref("Hash"),
                                "amount": _ref("Amount"),
                            }
                        ),
                    ]
                },
                "request_id": _or_null(_string(maxLength=MAX_REQUEST_ID_CHARS)),
                "sig": _ref("Signature"),
            },
            description=(
                "What a paid call bought, signed by the serving node over"
                ' b"modelchain/receipt/v1\\x00" + canonical JSON of every field but sig'
                " (docs/payments.md)."
            ),
        ),
        "StoredReceipt": _object({"id": _ref("Hash"), "receipt": _ref("Receipt")}),
        "ReceiptIds": _object({"receipts": _array(_ref("Hash"))}),
        "ReceiptCheck": _object(
            {"valid": _bool(), "reason": _or_null(_string("Why it does not verify."))}
        ),
        "Quote": _object(
            {
                "price": _ref("Amount"),
                "node": _ref("Account"),
                "model": _ref("ModelName"),
                "version": _ref("Version"),
                "sha256": _ref("Hash"),
                "chain_id": _string(),
                "request": _ref("Hash"),
                "height": _ref("Height"),
                "how": _object(
                    {
                        "text": _string(),
                        "per_call": _object({"call": call, "payment": {"type": "object"}}),
                        "channel": _object(
                            {
                                "open": call,
                                "payment": {"type": "object"},
                                "voucher_message": _string(),
                                "margin_blocks": _count(),
                            }
                        ),
                    }
                ),
            },
            description=(
                "What the call costs on this node and how to pay: `request` is this request's"
                " hash, which a usage_fee.pay tx must bind."
            ),
        ),
        "Payment": {
            "description": "parameters.payment of an inference request: exactly one form.",
            "oneOf": [
                _object({"tx": _ref("SignedTx")}, description="Per call: a usage_fee.pay tx."),
                _object(
                    {
                        "channel": _ref("Hash"),
                        "amount": {"type": "integer", "minimum": 1, "maximum": MAX_AMOUNT},
                        "sig": _ref("Signature"),
                    },
                    description="By channel: a voucher for the cumulative amount.",
                ),
            ],
        },
    }


# --- components: the Open Inference Protocol -------------------------------------------------


def _inference_schemas() -> dict[str, Schema]:
    tensor_meta = _object(
        {
            "name": _string(),
            "datatype": _string(
                "A v2 datatype (FP32, INT64, BYTES, ...) or JSON.", pattern="^[A-Z0-9_]+$"
            ),
            "shape": _array(
                {"type": "integer", "minimum": -1}, "-1: a symbolic or unknown dimension."
            ),
        }
    )
    binary_size = _object(
        {"binary_data_size": _count("Bytes of this tensor after the JSON header.")},
        optional=["binary_data_size"],
        closed=False,
    )
    return {
        "ServerMetadata": _object(
            {"name": {"const": "modelchain"}, "version": _string(), "extensions": _array(_string())}
        ),
        "ServerLive": _object({"live": {"const": True}}),
        "ServerReady": _object({"ready": {"const": True}}),
        "TensorMetadata": tensor_meta,
        "ModelMetadata": _object(
            {
                "name": _ref("ModelName"),
                "versions": _array(_ref("Version"), "Every registered version, oldest first."),
                "platform": {"const": "onnxruntime_onnx"},
                "inputs": _array(_ref("TensorMetadata")),
                "outputs": _array(_ref("TensorMetadata")),
                "parameters": _object(
                    {
                        "version": _ref("Version"),
                        "sha256": _ref("Hash"),
                        "price": _ref("Amount"),
                        "deprecated": _bool(),
                        "successor": _or_null(_ref("Version")),
                    }
                ),
            }
        ),
        "ModelReady": _object(
            {"name": _ref("ModelName"), "version": _ref("Version"), "ready": {"const": True}}
        ),
        "InferInput": _object(
            {
                "name": _string(),
                "datatype": _string(pattern="^[A-Z0-9_]+$"),
                "shape": _array(_count()),
                "data": {
                    "description": (
                        "A flat row-major list or a nested list of `shape`; for datatype JSON"
                        " the value itself. Absent when sent binary."
                    )
                },
                "parameters": binary_size,
            },
            optional=["data", "parameters"],
            closed=False,  # other keys are ignored
        ),
        "InferRequest": _object(
            {
                "id": _string(
                    "Echoed in the answer; a paid call's goes into its receipt, so there it is"
                    f" at most {MAX_REQUEST_ID_CHARS} printable characters."
                ),
                "inputs": _array(_ref("InferInput"), "Every input of the model, once."),
                "outputs": _array(
                    _object(
                        {"name": _string(), "parameters": {"type": "object"}},
                        optional=["parameters"],
                        closed=False,
                    ),
                    "Which outputs to answer with (default: all, in the model's order).",
                ),
                "parameters": _object(
                    {
                        "payment": _ref("Payment"),
                        "binary_data_output": _bool("Answer every tensor output binary."),
                    },
                    optional=["payment", "binary_data_output"],
                    closed=False,
                ),
            },
            optional=["id", "outputs", "parameters"],
            closed=False,
            description="An Open Inference Protocol request (docs/inference.md).",
        ),
        "InferOutput": _object(
            {
                "name": _string(),
                "datatype": _string(pattern="^[A-Z0-9_]+$"),
                "shape": _array(_count()),
                "data": {"description": "Flat row-major values; for datatype JSON the value."},
                "parameters": binary_size,
            },
            optional=["data", "parameters"],
        ),
        "InferResponse": _object(
            {
                "model_name": _ref("ModelName"),
                "model_version": _ref("Version"),
                "id": _string(),
                "outputs": _array(_ref("InferOutput")),
                "parameters": {
                    **_object(
                        {
                            "model_sha256": _ref("Hash"),
                            "request_hash": _ref("Hash"),
                            "output_hash": _ref("Hash"),
                            "receipt": _ref("Receipt"),
                            "receipt_id": _ref("Hash"),
                        },
                        optional=["receipt", "receipt_id"],
                    ),
                    "dependentRequired": {"receipt": ["receipt_id"], "receipt_id": ["receipt"]},
                    "description": "A paid call's carry its signed receipt and the receipt's id.",
                },
            },
            optional=["id"],
        ),
    }


# --- parameters and responses ----------------------------------------------------------------


def _path(name: str, description: str) -> Schema:
    """A path parameter: a string segment, which the view parses (refusing a bad one)."""
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


TXID_PATH = _path("txid", "The txid, 64 lowercase hex.")
ACCOUNT_PATH = _path("account", "The account, 64 lowercase hex.")
MODEL_NAME_PATH = _path("name", "The model's name.")
VERSION_PATH = _path("version", "The version.")


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "description": description, "schema": schema}


def _limit(default: int, description: str = "Page size.") -> Schema:
    return _query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": default},
        description,
    )


def _content(media_type: str, schema: Schema, description: str, headers: Schema | None) -> Schema:
    response: Schema = {"description": description, "content": {media_type: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _json(schema: Schema, description: str, headers: Schema | None = None) -> Schema:
    """A JSON response; with "required" beside it, a JSON request body."""
    return _content(JSON, schema, description, headers)


def _binary(description: str, headers: Schema | None = None) -> Schema:
    """A response of raw bytes; with "required" beside it, a request body of raw bytes."""
    return _content(OCTETS, BINARY, description, headers)


def _code_schema(codes: Sequence[str]) -> Schema:
    """The codes a response may carry; `prefix-*` stands for a whole family."""
    exact = [code for code in codes if not code.endswith("*")]
    families = [code[:-1] for code in codes if code.endswith("*")]
    for code in exact + [family.rstrip("-") for family in families]:
        if not ERROR_CODE_RE.match(code):
            raise ValueError(f"{code!r} is not a kebab-case error code")
    if not families:
        return {"enum": exact}
    family = {"pattern": "^(" + "|".join(families) + ")[a-z0-9-]+$"}
    return {"anyOf": ([{"enum": exact}] if exact else []) + [family]}


def _error(codes: Sequence[str], *, v2: bool = False, quote: bool = False) -> Schema:
    """An error response with its code one of `codes`: the Error body, or under /v2 the
    V2Error body, whose code stands beside the message as the protocol's clients read it."""
    listed = ", ".join(f"`{code}`" for code in codes)
    fields: Schema = {"properties": {"code": _code_schema(codes)}}
    description = f"Refused: {listed}."
    if quote:
        fields["properties"]["quote"] = _ref("Quote")
        fields["required"] = ["quote"] if v2 else ["code", "message", "quote"]
        description += " The body's `quote` says what the call costs and how to pay."
    if v2:
        schema = {"allOf": [_ref("V2Error")], **fields}
    else:
        schema = {"allOf": [_ref("Error")], "properties": {"error": fields}}
    return _json(schema, description)


def _errors(
    spec: Mapping[int, Sequence[str]], *, v2: bool = False, quoted: Sequence[int] = ()
) -> dict[str, Schema]:
    """Error responses by status (V2Error bodies if `v2`); every operation may also answer
    500 internal-error."""
    spec = dict(spec)
    spec[500] = [*spec.get(500, ()), "internal-error"]
    return {
        str(status): _error(codes, v2=v2, quote=status in quoted)
        for status, codes in sorted(spec.items())
    }


def _op(
    operation_id: str,
    tag: str,
    summary: str,
    responses: dict[str, Schema],
    *,
    description: str | None = None,
    parameters: Sequence[Schema] = (),
    body: Schema | None = None,
) -> Schema:
    operation: Schema = {"operationId": operation_id, "tags": [tag], "summary": summary}
    if description:
        operation["description"] = description
    if parameters:
        operation["parameters"] = list(parameters)
    if body is not None:
        operation["requestBody"] = body
    operation["responses"] = dict(sorted(responses.items()))
    return operation


def _json_body(schema: Schema, description: str, *, required: bool = True) -> Schema:
    return {"required": required, **_json(schema, description)}


TOO_LARGE = "request-too-large"
BAD_BODY = "request-invalid"
QUERY = "query-invalid"
TX_REFUSALS = ("encoding-*", "tx-*", "mempool-*", "registry-*", "usage-*", "channel-*", "voucher-*")
"""The chain's reasons to refuse a tx: its form, signature, nonce, balance, fee, call shape."""
MODEL_REFUSALS = ("model-*",)


# --- /api/v1 ---------------------------------------------------------------------------------


def _chain_paths() -> dict[str, Schema]:
    block_ref = _path(
        "ref",
        "A main-chain height (decimal) or a block hash (64 hex, any branch).",
    )
    return {
        "/api/v1/chain": {
            "get": _op(
                "getChain",
                "chain",
                "The chain's tip and the node's account",
                {"200": _json(_ref("ChainInfo"), "The chain as this node has it."), **_errors({})},
            )
        },
        "/api/v1/blocks": {
            "get": _op(
                "listBlocks",
                "chain",
                "Main-chain blocks, newest first",
                {
                    "200": _json(_ref("BlockList"), "A page of blocks."),
                    **_errors({400: [QUERY]}),
                },
                parameters=[
                    _limit(20),
                    _query(
                        "before",
                        {"type": "integer", "minimum": 0},
                        "Start below this height (for the next page).",
                    ),
                ],
            ),
            "post": _op(
                "submitBlock",
                "chain",
                "Submit a block (as a peer does)",
                {
                    "200": _json(
                        _ref("BlockSubmitted"), "Connected (or stored on a side branch), or known."
                    ),
                    "202": _json(
                        _ref("BlockOrphaned"), "Kept as an orphan until its parent comes."
                    ),
                    **_errors({400: [BAD_BODY, "block-*"], 413: [TOO_LARGE]}),
                },
                description=(
                    "The block's bytes: its 156-byte header, then each tx as a 4-byte big-endian"
                    " length and its canonical bytes. A block that breaks a rule is refused with"
                    " that rule's `block-*` code."
                ),
                body={"required": True, **_binary("The block's bytes.")},
            ),
        },
        "/api/v1/blocks/{ref}": {
            "get": _op(
                "getBlock",
                "chain",
                "A block with its txs and their receipts",
                {
                    "200": _json(_ref("Block"), "The block."),
                    **_errors({404: ["block-unknown"]}),
                },
                parameters=[block_ref],
            )
        },
        "/api/v1/blocks/{ref}/raw": {
            "get": _op(
                "getBlockRaw",
                "chain",
                "A block's bytes (what POST /api/v1/blocks takes)",
                {
                    "200": _binary("The block's bytes."),
                    **_errors({404: ["block-unknown"]}),
                },
                parameters=[block_ref],
            )
        },
        "/api/v1/txs": {
            "post": _op(
                "submitTx",
                "chain",
                "Submit a signed tx to the mempool",
                {
                    "202": _json(_ref("TxSubmitted"), "Admitted to the mempool."),
                    **_errors({400: [BAD_BODY, *TX_REFUSALS], 413: [TOO_LARGE]}),
                },
                description=(
                    "The tx is checked against the pending state (balance minus what the"
                    " mempool already spends, the next nonce, the fee) and refused with a"
                    " reason code, or admitted and relayed."
                ),
                body=_json_body(_ref("SignedTx"), "The signed tx (docs/encoding.md)."),
            )
        },
        "/api/v1/txs/{txid}": {
            "get": _op(
                "getTx",
                "chain",
                "A tx: mined with its block and receipt, or pending",
                {
                    "200": _json(_ref("TxDetail"), "The tx."),
                    **_errors({400: [QUERY], 404: ["tx-unknown"]}),
                },
                parameters=[TXID_PATH],
            )
        },
        "/api/v1/accounts/{account}": {
            "get": _op(
                "getAccount",
                "chain",
                "An account's balance and nonces",
                {
                    "200": _json(_ref("AccountInfo"), "The account (zero if never used)."),
                    **_errors({400: [QUERY]}),
                },
                parameters=[ACCOUNT_PATH],
            )
        },
        "/api/v1/mempool": {
            "get": _op(
                "getMempool",
                "chain",
                "The txs waiting to be mined",
                {"200": _json(_ref("Mempool"), "The pool."), **_errors({400: [QUERY]})},
                parameters=[_limit(100)],
            )
        },
        "/api/v1/mine": {
            "post": _op(
                "requestBlocks",
                "chain",
                "Ask the node's miner for blocks (dev and regtest networks)",
                {
                    "202": _json(_ref("MineRequested"), "The miner will mine that many blocks."),
                    **_errors(
                        {
                            400: [BAD_BODY],
                            403: ["feature-disabled"],
                            409: ["mining-disabled"],
                            413: [TOO_LARGE],
                        }
                    ),
                },
                description=(
                    "Only on dev and regtest networks (`feature-disabled` elsewhere), and only"
                    " on a node started with mining on (`mining-disabled` otherwise)."
                ),
                body=_json_body(
                    _object(
                        {"blocks": {"type": "integer", "minimum": 1, "maximum": 100, "default": 1}},
                        optional=["blocks"],
                        closed=False,
                    ),
                    "How many blocks; no body asks for one.",
                    required=False,
                ),
            )
        },
        "/api/v1/faucet": {
            "post": _op(
                "faucet",
                "chain",
                "Send dev coins to an account (dev and regtest networks)",
                {
                    "202": _json(
                        _object(
                            {
                                "txid": _ref("Hash"),
                                "account": _ref("Account"),
                                "amount": _ref("Amount"),
                                "status": {"enum": ["ready", "future"]},
                            }
                        ),
                        "The dev wallet's coin.transfer to the account, admitted to the mempool.",
                    ),
                    **_errors(
                        {
                            400: [BAD_BODY, *TX_REFUSALS],
                            403: ["feature-disabled"],
                            413: [TOO_LARGE],
                        }
                    ),
                },
                description=(
                    "Only on dev and regtest networks (`feature-disabled` elsewhere), whose dev"
                    " wallet is public: the node signs a `coin.transfer` of the configured"
                    " faucet amount from it. Follow the txid to see it confirmed."
                ),
                body=_json_body(
                    _object({"account": _ref("Account")}, closed=False),
                    "The account to fund.",
                ),
            )
        },
    }


def _model_paths() -> dict[str, Schema]:
    model_file = {
        "required": True,
        "description": "The ONNX file, alone.",
        "content": {
            MULTIPART: {
                "schema": _object({"file": BINARY}, closed=False),
                "encoding": {"file": {"contentType": OCTETS}},
            },
            OCTETS: {"schema": BINARY},
        },
    }
    upload_body = {
        "required": True,
        "description": (
            "The file and its signed registry.register tx, both or neither: multipart parts"
            " `file` and `tx` (the tx's JSON, as a field or a file part), or the file as the"
            " body with the tx in the X-Modelchain-Tx header."
        ),
        "content": {
            MULTIPART: {
                "schema": _object(
                    {"file": BINARY, "tx": _string("The signed registry.register tx's JSON.")},
                    closed=False,
                ),
                "encoding": {
                    "file": {"contentType": OCTETS},
                    "tx": {"contentType": f"text/plain, {JSON}"},
                },
            },
            OCTETS: {"schema": BINARY},
        },
    }
    file_refusals: dict[int, Sequence[str]] = {
        413: ["model-too-large", "model-validation-memory", TOO_LARGE],
        415: ["upload-bad-content-type"],
    }
    return {
        "/api/v1/models": {
            "get": _op(
                "listModels",
                "models",
                "The catalog: a page of registered versions",
                {"200": _json(_ref("CatalogPage"), "A page."), **_errors({400: [QUERY]})},
                parameters=[
                    _query(
                        "q",
                        {"type": "string", "maxLength": MAX_QUERY_CHARS},
                        "Case-insensitive text in the name, description or tags.",
                    ),
                    _query("tag", _ref("ModelName"), "A whole tag."),
                    _query("owner", _ref("Account"), "The name's current owner."),
                    _query(
                        "sort",
                        {"enum": list(SORTS), "default": "newest"},
                        "newest; most_used (paid calls, then revenue); price (cheapest first);"
                        " name.",
                    ),
                    _limit(20),
                    _query(
                        "offset",
                        {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0},
                        "Skip this many.",
                    ),
                    _query(
                        "deprecated",
                        {"enum": ["0", "1", "true", "false"], "default": "0"},
                        "Include deprecated versions.",
                    ),
                ],
            ),
            "post": _op(
                "uploadModel",
                "models",
                "Upload a model file with its signed registration",
                {
                    "202": _json(_ref("UploadResult"), "Stored, and the tx admitted."),
                    **_errors(
                        {
                            400: [
                                BAD_BODY,
                                "upload-*",
                                *MODEL_REFUSALS,
                                *TX_REFUSALS,
                            ],
                            **file_refusals,
                            500: ["store-*"],
                        }
                    ),
                },
                description=(
                    "The tx is checked first (a tx that cannot enter is refused before the file"
                    " is read), then the file is hashed (it must be the tx's sha256), validated"
                    " in a sandbox, and its signature compared with the tx's"
                    " metadata.io_signature. See docs/api-models.md."
                ),
                parameters=[
                    {
                        "name": "X-Modelchain-Tx",
                        "in": "header",
                        "description": (
                            "With an application/octet-stream body: the signed tx's JSON,"
                            " base64url (padding optional)."
                        ),
                        "schema": {"type": "string"},
                    }
                ],
                body=upload_body,
            ),
        },
        "/api/v1/models/inspect": {
            "post": _op(
                "inspectModel",
                "models",
                "Dry run: validate a model file, store nothing",
                {
                    "200": _json(_ref("InspectResult"), "The file's hash, size and signature."),
                    **_errors({400: [BAD_BODY, *MODEL_REFUSALS], **file_refusals}),
                },
                body=model_file,
            )
        },
        "/api/v1/models/{name}": {
            "get": _op(
                "getModel",
                "models",
                "A model with all its versions",
                {
                    "200": _json(_ref("ModelDetail"), "The model."),
                    **_errors({404: ["catalog-unknown-model"]}),
                },
                parameters=[MODEL_NAME_PATH],
            )
        },
        "/api/v1/models/{name}/versions/{version}": {
            "get": _op(
                "getModelVersion",
                "models",
                "One version of a model",
                {
                    "200": _json(_ref("ModelVersionDetail"), "The version."),
                    **_errors({404: ["catalog-unknown-model", "catalog-unknown-version"]}),
                },
                parameters=[MODEL_NAME_PATH, VERSION_PATH],
            )
        },
        "/api/v1/models/{name}/versions/{version}/quote": {
            "post": _op(
                "quoteCall",
                "models",
                "What one call with this request body costs here, without running it",
                {
                    "200": _json(
                        _object({"quote": _ref("Quote")}),
                        "The quote a priced infer would answer with 402.",
                    ),
                    **_errors(
                        {
                            400: [BAD_BODY, *QUOTE_INPUT_ERRORS],
                            404: READY_ERRORS[404],
                            410: READY_ERRORS[410],
                            413: [TOO_LARGE, "infer-too-many-elements"],
                            422: [*READY_ERRORS[422], "infer-unsupported-type"],
                        }
                    ),
                },
                description=(
                    "The same checks of the inputs as an infer, then the quote (price, node,"
                    " chain, the request hash to sign, how to pay) with 200: a browser checks"
                    " its own request hash against it before it signs a payment."
                ),
                parameters=[MODEL_NAME_PATH, VERSION_PATH],
                body=_json_body(_ref("InferRequest"), "The inference request to price."),
            )
        },
        "/api/v1/models/files/{sha256}": {
            "get": _op(
                "downloadModelFile",
                "models",
                "A model file by its sha256",
                {
                    "200": _binary(
                        (
                            "The file, just verified to hash to `sha256`; content-addressed, so"
                            " cacheable for a year."
                        ),
                        headers={
                            "Content-Disposition": {
                                "description": "attachment; filename=<name>-<version>.onnx",
                                "schema": {"type": "string"},
                            },
                            "ETag": {"description": "The sha256.", "schema": {"type": "string"}},
                            "X-Modelchain-Sha256": {
                                "description": "The sha256.",
                                "schema": _ref("Hash"),
                            },
                        },
                    ),
                    **_errors(
                        {
                            400: [QUERY],
                            404: ["store-model-not-found"],
                            500: ["store-corrupt-file"],
                        }
                    ),
                },
                parameters=[_path("sha256", "The file's sha256, 64 lowercase hex.")],
            )
        },
    }


def _audit_paths() -> dict[str, Schema]:
    height = {"type": "integer", "minimum": 0}
    return {
        "/api/v1/audit/models/{name}": {
            "get": _op(
                "auditModel",
                "audit",
                "A model's whole history from the chain",
                {
                    "200": _json(
                        _ref("ModelHistory"), "Owners, versions, registry events, payments."
                    ),
                    **_errors({400: [QUERY], 404: ["audit-unknown-model"]}),
                },
                parameters=[
                    MODEL_NAME_PATH,
                    _limit(20, "How many recent payments."),
                ],
            )
        },
        "/api/v1/audit/accounts/{account}": {
            "get": _op(
                "auditAccount",
                "audit",
                "An account's payments, registrations, revenue shares and channels",
                {
                    "200": _json(_ref("AccountHistory"), "The account's history."),
                    **_errors({400: [QUERY]}),
                },
                parameters=[
                    ACCOUNT_PATH,
                    _limit(20, "How many recent events."),
                ],
            )
        },
        "/api/v1/audit/txs/{txid}": {
            "get": _op(
                "auditTx",
                "audit",
                "A tx with its block, confirmations and events",
                {
                    "200": _json(_ref("TxAudit"), "The tx; a pending one has no events."),
                    **_errors({400: [QUERY], 404: ["tx-unknown"]}),
                },
                parameters=[TXID_PATH],
            )
        },
        "/api/v1/audit/events": {
            "get": _op(
                "listEvents",
                "audit",
                "Events by filter, oldest first",
                {
                    "200": _json(_ref("EventPage"), "A page of events."),
                    **_errors({400: [QUERY], 409: ["audit-cursor-stale"]}),
                },
                description=(
                    "A cursor whose event left the main chain (a reorg) is refused with 409"
                    " `audit-cursor-stale` (detail `from_height`: query again from there) rather"
                    " than silently skipping events."
                ),
                parameters=[
                    _query("contract", {"type": "string"}, "A contract the node runs, or reward."),
                    _query("type", {"type": "string"}, "An event type (kebab-case)."),
                    _query("model", _ref("ModelName"), "Events of this model."),
                    _query("version", {"type": "string"}, "Events of this version: name@version."),
                    _query("account", _ref("Account"), "Events naming this account."),
                    _query("from_height", height, "From this height (inclusive)."),
                    _query("to_height", height, "Up to this height (inclusive)."),
                    _limit(50),
                    _query("cursor", {"type": "string"}, "`next_cursor` of an earlier page."),
                ],
            )
        },
    }


def _payment_paths() -> dict[str, Schema]:
    channel_id = _path("channel_id", "The channel id: its open tx's txid.")
    return {
        "/api/v1/channels": {
            "get": _op(
                "listChannels",
                "channels",
                "Channels of an account, or those this node holds vouchers for",
                {
                    "200": _json(_ref("ChannelList"), "The channels."),
                    **_errors({400: [QUERY]}),
                },
                parameters=[
                    _query("account", _ref("Account"), "Channels this account pays or serves."),
                    _limit(50),
                ],
            )
        },
        "/api/v1/channels/{channel_id}": {
            "get": _op(
                "getChannel",
                "channels",
                "A channel as this node sees it",
                {
                    "200": _json(_ref("ChannelStatus"), "The channel."),
                    **_errors({400: [QUERY], 404: ["channel-unknown"]}),
                },
                parameters=[channel_id],
            )
        },
        "/api/v1/channels/{channel_id}/claim": {
            "post": _op(
                "claimChannel",
                "channels",
                "Claim the highest accepted voucher now",
                {
                    "202": _json(_ref("ClaimSent"), "The claim tx is in the mempool."),
                    **_errors(
                        {
                            400: [QUERY, "tx-*", "mempool-*"],
                            404: ["channel-unknown"],
                            409: ["channel-nothing-to-claim"],
                        }
                    ),
                },
                description="The node's claim loop normally does this on its own.",
                parameters=[channel_id],
            )
        },
        "/api/v1/receipts": {
            "get": _op(
                "listReceipts",
                "receipts",
                "Ids of the receipts for one payment tx or one channel",
                {"200": _json(_ref("ReceiptIds"), "Receipt ids."), **_errors({400: [QUERY]})},
                description="Give exactly one of `txid` and `channel`.",
                parameters=[
                    _query("txid", _ref("Hash"), "A usage_fee.pay tx."),
                    _query("channel", _ref("Hash"), "A channel id."),
                ],
            )
        },
        "/api/v1/receipts/{receipt_id}": {
            "get": _op(
                "getReceipt",
                "receipts",
                "A receipt this node signed",
                {
                    "200": _json(_ref("StoredReceipt"), "The receipt."),
                    **_errors({404: ["receipt-unknown"]}),
                },
                parameters=[_path("receipt_id", "The receipt's id.")],
            )
        },
        "/api/v1/receipts/verify": {
            "post": _op(
                "verifyReceipt",
                "receipts",
                "Check any receipt's signature (no node state needed)",
                {
                    "200": _json(_ref("ReceiptCheck"), "Whether it verifies, and why not."),
                    **_errors({400: [QUERY, BAD_BODY], 413: [TOO_LARGE]}),
                },
                parameters=[
                    _query("node", _ref("Account"), "Also require that this node signed it.")
                ],
                body=_json_body({"description": "The receipt (any JSON is judged)."}, "A receipt."),
            )
        },
        "/api/v1/openapi.json": {
            "get": _op(
                "getOpenApi",
                "meta",
                "This document",
                {
                    "200": _json(
                        {"type": "object", "description": "An OpenAPI 3.1 document."},
                        "The node's OpenAPI document.",
                    ),
                    **_errors({}),
                },
            )
        },
    }


# --- /v2 -------------------------------------------------------------------------------------


READY_ERRORS: dict[int, Sequence[str]] = {
    404: ["model-unknown", "model-version-unknown"],
    410: ["model-version-deprecated"],
    422: ["model-signature-invalid"],
    503: ["model-file-missing"],
}
"""Why a version cannot run here; an infer and a quote check these too."""

QUOTE_INPUT_ERRORS = [
    "infer-bad-request",
    "infer-bad-input",
    "infer-unknown-input",
    "infer-missing-input",
    "infer-duplicate-input",
    "infer-bad-datatype",
    "infer-bad-shape",
    "infer-bad-data",
    "infer-unknown-output",
    "infer-unsupported-parameter",
    "infer-input-rejected",
    "request-id-invalid",
]
"""What is wrong with an inference request's inputs; an infer checks these too."""

INFER_ERRORS: dict[int, Sequence[str]] = {
    400: [
        *QUOTE_INPUT_ERRORS,
        "payment-malformed",
        "payment-wrong-chain",
        "payment-wrong-contract",
        "payment-wrong-model",
        "payment-wrong-node",
        "payment-wrong-request",
        "payment-bad-signature",
        "channel-wrong-node",
        "channel-wrong-model",
        "voucher-bad-signature",
    ],
    402: [
        "payment-required",
        "payment-wrong-amount",
        "payment-insufficient-funds",
        "payment-fee-too-low",
        "channel-unknown",
        "channel-closed",
        "channel-expiring",
        "voucher-too-low",
        "voucher-over-deposit",
    ],
    404: READY_ERRORS[404],
    409: [
        "payment-replayed",
        "payment-nonce-used",
        "payment-nonce-gap",
        "payment-refused",
        "payment-not-settled",
    ],
    410: READY_ERRORS[410],
    413: ["infer-request-too-large", "infer-too-many-elements", TOO_LARGE],
    422: [
        *READY_ERRORS[422],
        "infer-unsupported-type",
        "infer-out-of-memory",
        "infer-timeout",
        "infer-output-too-large",
        "infer-failed",
    ],
    500: [
        "model-file-corrupt",
        "model-signature-mismatch",
        "model-load-failed",
        "infer-worker-crashed",
    ],
    503: [*READY_ERRORS[503], "infer-busy", "infer-unavailable", "market-store-failed"],
}


def _inference_paths() -> dict[str, Schema]:
    name = _path("name", "The registry's model name.")
    version = _path("version", "A registered version.")
    header_length = {
        "name": "Inference-Header-Content-Length",
        "in": "header",
        "description": (
            "Binary tensor extension: the first N bytes of the body are the JSON request, the"
            " rest the binary inputs in input order."
        ),
        "schema": {"type": "integer", "minimum": 0},
    }
    infer_body = {
        "required": True,
        "description": "An inference request; its binary form under the binary tensor extension.",
        "content": {
            JSON: {"schema": _ref("InferRequest")},
            OCTETS: {"schema": BINARY},
        },
    }
    infer_ok = {
        "description": (
            "The outputs, the request and output hashes, and for a paid call the signed"
            " receipt. With binary outputs: the JSON header, then their bytes."
        ),
        "headers": {
            "Inference-Header-Content-Length": {
                "description": "With binary outputs: bytes of JSON before them.",
                "schema": {"type": "integer", "minimum": 0},
            }
        },
        "content": {JSON: {"schema": _ref("InferResponse")}, OCTETS: {"schema": BINARY}},
    }
    paths: dict[str, Schema] = {
        "/v2": {
            "get": _op(
                "serverMetadata",
                "inference",
                "Server metadata",
                {"200": _json(_ref("ServerMetadata"), "The server."), **_errors({}, v2=True)},
            )
        },
        "/v2/health/live": {
            "get": _op(
                "serverLive",
                "inference",
                "Liveness",
                {"200": _json(_ref("ServerLive"), "Alive."), **_errors({}, v2=True)},
            )
        },
        "/v2/health/ready": {
            "get": _op(
                "serverReady",
                "inference",
                "Readiness",
                {"200": _json(_ref("ServerReady"), "Ready."), **_errors({}, v2=True)},
            )
        },
    }
    for suffix, params, what in (
        ("", [name], "the newest version that is not deprecated"),
        ("/versions/{version}", [name, version], "one version"),
    ):
        ident = "ModelVersion" if suffix else "Model"
        base = f"/v2/models/{{name}}{suffix}"
        paths[base] = {
            "get": _op(
                f"get{ident}Metadata",
                "inference",
                f"Inputs and outputs of {what}",
                {
                    "200": _json(_ref("ModelMetadata"), "The model's metadata."),
                    **_errors({404: READY_ERRORS[404], 422: READY_ERRORS[422]}, v2=True),
                },
                description="A deprecated version is described too.",
                parameters=params,
            )
        }
        paths[f"{base}/ready"] = {
            "get": _op(
                f"get{ident}Ready",
                "inference",
                f"Whether {what} can run on this node",
                {
                    "200": _json(_ref("ModelReady"), "It can run here."),
                    **_errors(READY_ERRORS, v2=True),
                },
                parameters=params,
            )
        }
        paths[f"{base}/infer"] = {
            "post": _op(
                f"infer{ident}",
                "inference",
                f"Run {what}",
                {"200": infer_ok, **_errors(INFER_ERRORS, v2=True, quoted=[402])},
                description=(
                    "Every check runs before anything is run or charged. A priced version is"
                    " run only with `parameters.payment` (a signed usage_fee.pay tx, or a"
                    " channel voucher); without it the answer is 402 `payment-required` with a"
                    " quote. See docs/inference.md and docs/payments.md."
                ),
                parameters=[*params, header_length],
                body=infer_body,
            )
        }
    return paths


# --- peers and sync (docs/network.md) ------------------------------------------------------


def _peer_schemas() -> dict[str, Schema]:
    hex_block = _string("A block's bytes (header, then length-prefixed txs) as lowercase hex.")
    return {
        "Peer": _object(
            {
                "url": _string("The peer's base URL, normalized."),
                "source": {"enum": ["config", "learned"]},
                "state": {
                    "enum": ["new", "connected", "unreachable", "banned", "self"],
                    "description": "`self`: the URL leads back to this node; never contacted.",
                },
                "ban_score": _count("Points for offences; at 100 the peer is banned."),
                "ban_reason": _string("The code of the last offence; empty if none."),
                "banned_until": _count("Unix seconds; 0 when not banned."),
                "failures": _count("Failed contacts in a row (the backoff grows with them)."),
                "last_seen": _count("Unix seconds of its last answer; 0 if never."),
                "height": {"type": "integer", "minimum": -1, "maximum": SAFE_INTEGER},
                "tip": _string("Its tip when it last answered; empty if never."),
            },
            description="A peer as this node sees it.",
        ),
        "SyncStatus": _object(
            {
                "chain_id": _string(),
                "node_id": _string(
                    "This node process's random id: a node that reads its own id back"
                    " from a peer URL knows the URL leads to itself."
                ),
                "genesis": _ref("Hash"),
                "height": _ref("Height"),
                "tip": _ref("Hash"),
                "work": _ref("BigNumber"),
                "locator": _array(
                    _ref("Hash"),
                    "Main-chain hashes from the tip back to genesis: ten one by one, then"
                    " exponentially spaced.",
                    minItems=1,
                ),
                "mempool_size": _count(),
            },
            description="What a peer needs to decide whether to pull from or push to this node.",
        ),
        "SyncBlocks": _object(
            {
                "fork_height": _ref("Height"),
                "fork_hash": _ref("Hash"),
                "tip_height": _ref("Height"),
                "tip": _ref("Hash"),
                "blocks": _array(hex_block, "Main-chain blocks after the fork, oldest first."),
                "more": _bool("True when blocks past the last one sent remain: ask again."),
            },
            description="The blocks after the first locator hash on this node's main chain.",
        ),
        "SyncMempool": _object(
            {
                "size": _count("Txs in the pool."),
                "txids": _array(_ref("Hash"), "Their txids (at most `limit`)."),
            }
        ),
    }


def _peer_paths() -> dict[str, Schema]:
    return {
        "/api/v1/peers": {
            "get": _op(
                "listPeers",
                "peers",
                "The node's peers: state, height, ban score",
                {
                    "200": _json(
                        _object({"peers": _array(_ref("Peer"))}), "Every peer this node knows."
                    ),
                    **_errors({}),
                },
            )
        },
        "/api/v1/sync/status": {
            "get": _op(
                "getSyncStatus",
                "peers",
                "Tip, cumulative work and block locator (what a peer asks first)",
                {"200": _json(_ref("SyncStatus"), "The chain in brief."), **_errors({})},
            )
        },
        "/api/v1/sync/blocks": {
            "post": _op(
                "syncBlocks",
                "peers",
                "Main-chain blocks after a locator's fork point",
                {
                    "200": _json(_ref("SyncBlocks"), "The blocks the locator's owner lacks."),
                    **_errors({400: [BAD_BODY, "sync-bad-locator"], 413: [TOO_LARGE]}),
                },
                description=(
                    "The fork point is the first locator hash on this node's main chain"
                    " (genesis when none is). At most `max_blocks` blocks and about 8 MiB are"
                    " sent; `more` says whether to ask again with a locator that starts at the"
                    " last block received."
                ),
                body=_json_body(
                    _object(
                        {
                            "locator": _array(
                                _ref("Hash"),
                                "The asker's locator, newest first.",
                                minItems=1,
                                maxItems=MAX_LOCATOR_HASHES,
                            ),
                            "max_blocks": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": MAX_SYNC_BLOCKS,
                                "default": SYNC_BATCH_BLOCKS,
                            },
                        },
                        optional=["max_blocks"],
                    ),
                    "The asker's block locator.",
                ),
            )
        },
        "/api/v1/sync/mempool": {
            "get": _op(
                "syncMempool",
                "peers",
                "The txids waiting in the mempool (a peer fetches those it lacks)",
                {"200": _json(_ref("SyncMempool"), "The txids."), **_errors({400: [QUERY]})},
                parameters=[
                    _query(
                        "limit",
                        {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_MEMPOOL_IDS,
                            "default": MAX_MEMPOOL_IDS,
                        },
                        "The most txids to list.",
                    )
                ],
            )
        },
    }


# --- the document ----------------------------------------------------------------------------


DESCRIPTION = """\
A modelchain node: a model marketplace on its own proof-of-work chain.

Two APIs: the JSON API under `/api/v1` (chain, models, audit, channels, receipts) and the
Open Inference Protocol (KServe/Triton v2 REST) under `/v2`, so existing inference clients
work unchanged.

Every error answers one body, `{"error": {"code": ..., "message": ...}}`, with a stable
kebab-case `code`; detail keys may be added beside them. Each operation lists the codes
each status carries (`prefix-*` stands for a whole family). Routing errors under `/api/`
and `/v2` answer the same body: 404 `not-found`, 405 `method-not-allowed`, and a body over
the node's upload limit 413 `request-too-large`. Anything unexpected is 500
`internal-error`, without a traceback.

Amounts are integers in the smallest unit, never floats; numbers too large for JSON
(work, difficulty, a header's nonce) are decimal strings.
"""

TAGS = [
    {"name": "chain", "description": "Blocks, txs, accounts, the mempool, dev mining."},
    {"name": "models", "description": "Upload, dry run, catalog, model files by hash."},
    {"name": "audit", "description": "Who registered what, who paid whom: from the chain alone."},
    {"name": "channels", "description": "Payment channels as this node sees them."},
    {"name": "receipts", "description": "Receipts of paid calls, and a verifier for any."},
    {"name": "inference", "description": "The Open Inference Protocol (v2)."},
    {"name": "peers", "description": "Peers, and what peers ask to sync (docs/network.md)."},
    {"name": "meta", "description": "This document."},
]


def openapi_document() -> dict[str, Any]:
    """The node's OpenAPI 3.1 document, as a fresh JSON value."""
    paths = {
        **_chain_paths(),
        **_model_paths(),
        **_audit_paths(),
        **_payment_paths(),
        **_inference_paths(),
        **_peer_paths(),
    }
    schemas = {
        **_value_schemas(),
        **_chain_schemas(),
        **_model_schemas(),
        **_payment_schemas(),
        **_inference_schemas(),
        **_peer_schemas(),
    }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "modelchain node",
            "version": modelchain.__version__,
            "description": DESCRIPTION,
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": TAGS,
        "paths": paths,
        "components": {"schemas": schemas},
    }
