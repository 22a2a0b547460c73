"""Voucher bytes, signatures and the published test vectors (docs/vectors/voucher_vectors.json).

Run this file as a script to rewrite the vectors after a deliberate format change:
`python tests/contracts/test_contracts_voucher.py`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from modelchain.chain.keys import KeyPair
from modelchain.chain.params import MAX_AMOUNT
from modelchain.contracts.errors import VoucherMalformed
from modelchain.contracts.voucher import (
    VOUCHER_TAG,
    compute_voucher_message,
    sign_voucher,
    verify_voucher,
)

VECTORS_PATH = Path(__file__).resolve().parents[2] / "docs" / "vectors" / "voucher_vectors.json"
SEED = bytes(range(32))
"""The payer's Ed25519 seed in every vector: 0x00 0x01 ... 0x1f."""
OTHER_SEED = bytes(range(32, 64))


def _channel(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def build_voucher_vectors() -> dict[str, Any]:
    """The vectors file's content, computed from the code."""
    payer = KeyPair.from_seed(SEED)
    other = KeyPair.from_seed(OTHER_SEED)
    cases = [
        ("modelchain-dev", _channel("channel-a"), 1),
        ("modelchain-dev", _channel("channel-a"), 1_000),
        ("modelchain-regtest", _channel("channel-b"), 123_456_789),
        ("modelchain-dev", _channel("channel-b"), MAX_AMOUNT),
    ]
    vectors = []
    for chain_id, channel, amount in cases:
        message = compute_voucher_message(chain_id, channel, amount)
        vectors.append(
            {
                "seed_hex": SEED.hex(),
                "payer": payer.account,
                "chain_id": chain_id,
                "channel": channel,
                "amount": amount,
                "message_hex": message.hex(),
                "sig": sign_voucher(payer, chain_id, channel, amount),
            }
        )
    first = vectors[0]
    rejected = [
        {"why": "another chain", **first, "chain_id": "modelchain-main"},
        {"why": "another channel", **first, "channel": _channel("channel-b")},
        {"why": "another amount", **first, "amount": 2},
        {"why": "another payer", **first, "payer": other.account},
    ]
    for case in rejected:
        del case["message_hex"], case["seed_hex"]
    return {
        "description": (
            "modelchain payment-channel vouchers (docs/contracts.md#vouchers). "
            "message = tag || canonical JSON of {amount, chain_id, channel}; "
            "sig = Ed25519(payer seed, message), hex. Every `vectors` entry verifies; "
            "every `rejected` entry (a valid sig moved to other values) does not."
        ),
        "tag_hex": VOUCHER_TAG.hex(),
        "vectors": vectors,
        "rejected": rejected,
    }


def render_vectors() -> str:
    return json.dumps(build_voucher_vectors(), indent=2, sort_keys=True) + "\n"


def test_published_voucher_vectors_are_reproduced_by_the_code():
    assert VECTORS_PATH.read_text(encoding="utf-8") == render_vectors()


def test_every_published_vector_verifies_and_every_rejected_one_does_not():
    data = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
    for case in data["vectors"]:
        message = bytes.fromhex(case["message_hex"])
        assert message.startswith(bytes.fromhex(data["tag_hex"]))
        assert KeyPair.from_seed(bytes.fromhex(case["seed_hex"])).account == case["payer"]
        args = (case["payer"], case["chain_id"], case["channel"], case["amount"], case["sig"])
        assert verify_voucher(*args)
    for case in data["rejected"]:
        args = (case["payer"], case["chain_id"], case["channel"], case["amount"], case["sig"])
        assert not verify_voucher(*args), case["why"]


def test_voucher_message_is_the_tag_then_canonical_json():
    channel = _channel("c")
    message = compute_voucher_message("modelchain-dev", channel, 42)
    expected = (
        b"modelchain/voucher/v1\x00"
        + b'{"amount":42,"chain_id":"modelchain-dev","channel":"'
        + channel.encode()
        + b'"}'
    )
    assert message == expected


@pytest.mark.parametrize(
    ("chain_id", "channel", "amount"),
    [
        ("", _channel("c"), 1),
        ("x" * 65, _channel("c"), 1),
        (7, _channel("c"), 1),
        ("modelchain-dev", "C" * 64, 1),
        ("modelchain-dev", _channel("c")[:-1], 1),
        ("modelchain-dev", _channel("c"), 0),
        ("modelchain-dev", _channel("c"), MAX_AMOUNT + 1),
        ("modelchain-dev", _channel("c"), 1.0),
        ("modelchain-dev", _channel("c"), True),
        ("\ud800", _channel("c"), 1),
    ],
)
def test_signing_a_malformed_voucher_raises(chain_id, channel, amount):
    key = KeyPair.from_seed(SEED)
    with pytest.raises(VoucherMalformed) as err:
        sign_voucher(key, chain_id, channel, amount)
    assert err.value.code == "voucher-malformed"


@pytest.mark.parametrize(
    "change",
    [
        {"payer": "nobody"},
        {"sig": "zz" * 64},
        {"sig": "ab" * 10},
        {"sig": None},
        {"amount": -1},
        {"channel": 5},
        {"chain_id": None},
    ],
)
def test_verify_answers_false_for_malformed_input_and_never_raises(change):
    key = KeyPair.from_seed(SEED)
    channel = _channel("c")
    args = {
        "payer": key.account,
        "chain_id": "modelchain-dev",
        "channel": channel,
        "amount": 5,
        "sig": sign_voucher(key, "modelchain-dev", channel, 5),
    }
    assert verify_voucher(**args)
    assert not verify_voucher(**{**args, **change})


if __name__ == "__main__":
    VECTORS_PATH.parent.mkdir(parents=True, exist_ok=True)
    VECTORS_PATH.write_text(render_vectors(), encoding="utf-8")
    print(f"wrote {VECTORS_PATH}")
