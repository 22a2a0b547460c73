"""Transactions: signing, decoding rules, stateless validation, ids."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelchain.chain.encoding import MAX_SAFE_INTEGER, canonical_bytes, tagged_hash
from modelchain.chain.errors import InvalidTransaction, TxMalformed
from modelchain.chain.keys import KeyPair
from modelchain.chain.params import MAX_AMOUNT, regtest_params
from modelchain.chain.tx import (
    SIGN_TAG,
    TX_FIELDS,
    Tx,
    compute_signing_message,
    decode_tx,
    make_reward,
    make_transfer,
    make_tx,
    tx_from_json,
    tx_signing_parts,
    validate_tx_stateless,
    verify_tx_signature,
)


def keypair_for(label: str) -> KeyPair:
    """Same derivation as the `keypair` fixture: seed = sha256(label)."""
    return KeyPair.from_seed(hashlib.sha256(label.encode()).digest())


def _loose_bytes(fields: Any) -> bytes:
    """Compact sorted JSON without the canonical value checks (floats, big ints pass)."""
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def _assert_malformed(fields: Any) -> None:
    """Both entry points, bytes and JSON object, refuse `fields` as tx-malformed."""
    with pytest.raises(TxMalformed) as err:
        decode_tx(_loose_bytes(fields))
    assert err.value.code == "tx-malformed"
    with pytest.raises(TxMalformed) as err:
        tx_from_json(fields)
    assert err.value.code == "tx-malformed"


# --- signing and decoding round trips ----------------------------------------


def test_signed_tx_verifies_and_passes_stateless_validation(make_signed_tx, params) -> None:
    tx = make_signed_tx()
    assert verify_tx_signature(tx)
    validate_tx_stateless(tx, params)


def test_signed_tx_decodes_from_its_bytes_and_json_to_an_equal_tx(make_signed_tx) -> None:
    tx = make_signed_tx()
    assert decode_tx(tx.raw) == tx
    assert tx_from_json(tx.to_json()) == tx
    assert tx_from_json(json.loads(tx.raw)) == tx


def test_signature_covers_tag_chain_id_and_canonical_body(make_signed_tx, keypair) -> None:
    tx = make_signed_tx()
    message = SIGN_TAG + tx.chain_id.encode() + b"\x00" + canonical_bytes(tx.body())
    assert compute_signing_message(tx.body()) == message
    assert keypair("alice").sign(message).hex() == tx.sig
    public_key, signed_message, signature = tx_signing_parts(tx)
    assert (public_key.hex(), signed_message, signature.hex()) == (tx.sender, message, tx.sig)


def test_txid_is_the_tagged_hash_of_the_signed_bytes(make_signed_tx) -> None:
    tx = make_signed_tx()
    assert tx.raw == canonical_bytes(tx.to_json())
    assert tx.txid == tagged_hash("modelchain/txid", tx.raw).hex()
    assert tx.size == len(tx.raw)


def test_transfer_is_a_coin_call_with_to_and_amount(keypair) -> None:
    tx = make_transfer(keypair("alice"), chain_id="c", nonce=3, fee=2, to="ab" * 32, amount=5)
    assert (tx.contract, tx.method, tx.args) == ("coin", "transfer", {"to": "ab" * 32, "amount": 5})


# --- decoding rules: each case breaks one rule -------------------------------


@pytest.fixture
def fields(make_signed_tx) -> dict[str, Any]:
    return make_signed_tx().to_json()


@pytest.mark.parametrize("name", sorted(TX_FIELDS))
def test_tx_missing_a_field_is_malformed(fields, name: str) -> None:
    del fields[name]
    _assert_malformed(fields)


def test_tx_with_an_extra_field_is_malformed(fields) -> None:
    fields["memo"] = "hi"
    _assert_malformed(fields)


BROKEN_FIELDS: dict[str, tuple[str, Any]] = {
    "chain-id-empty": ("chain_id", ""),
    "chain-id-65-chars": ("chain_id", "c" * 65),
    "chain-id-not-string": ("chain_id", 1),
    "nonce-negative": ("nonce", -1),
    "nonce-above-2**53-1": ("nonce", MAX_AMOUNT + 1),
    "nonce-string": ("nonce", "1"),
    "nonce-float": ("nonce", 1.5),
    "nonce-integral-float": ("nonce", 1.0),
    "nonce-bool": ("nonce", True),
    "nonce-null": ("nonce", None),
    "fee-negative": ("fee", -1),
    "fee-above-2**53-1": ("fee", MAX_AMOUNT + 1),
    "fee-huge": ("fee", 2**64),
    "fee-float": ("fee", 0.5),
    "fee-string": ("fee", "1"),
    "sender-uppercase-hex": ("sender", "AB" * 32),
    "sender-not-hex": ("sender", "zz" * 32),
    "sender-short": ("sender", "ab" * 31),
    "sender-trailing-newline": ("sender", "ab" * 32 + "\n"),
    "sender-empty": ("sender", ""),
    "sender-not-string": ("sender", 7),
    "sig-uppercase-hex": ("sig", "AB" * 64),
    "sig-not-hex": ("sig", "zz" * 64),
    "sig-short": ("sig", "ab" * 63),
    "sig-empty": ("sig", ""),
    "sig-not-string": ("sig", 1),
    "contract-uppercase": ("contract", "Coin"),
    "contract-leading-digit": ("contract", "1coin"),
    "contract-dash": ("contract", "co-in"),
    "contract-empty": ("contract", ""),
    "contract-33-chars": ("contract", "c" * 33),
    "contract-trailing-newline": ("contract", "coin\n"),
    "contract-not-string": ("contract", 5),
    "method-space": ("method", "trans fer"),
    "method-non-ascii": ("method", "trånsfer"),
    "args-list": ("args", []),
    "args-string": ("args", "to=bob"),
    "args-null": ("args", None),
    "args-with-float": ("args", {"amount": 1.5}),
    "args-with-big-int": ("args", {"amount": MAX_SAFE_INTEGER + 1}),
    "args-with-non-ascii-key": ("args", {"é": 1}),
}


@pytest.mark.parametrize(("name", "value"), BROKEN_FIELDS.values(), ids=BROKEN_FIELDS.keys())
def test_tx_with_a_field_outside_its_rule_is_malformed(fields, name: str, value: Any) -> None:
    fields[name] = value
    _assert_malformed(fields)


@pytest.mark.parametrize("value", [[], "tx", 1, None])
def test_tx_that_is_not_an_object_is_malformed(value: Any) -> None:
    _assert_malformed(value)


def test_tx_bytes_not_in_canonical_form_are_malformed(make_signed_tx) -> None:
    tx = make_signed_tx()
    spaced = json.dumps(tx.to_json(), sort_keys=True, ensure_ascii=False).encode()
    with pytest.raises(TxMalformed):
        decode_tx(spaced)
    with pytest.raises(TxMalformed):
        decode_tx(tx.raw + b"\n")


@pytest.mark.parametrize(
    ("name", "value"),
    [("sender", "ab" * 32), ("sig", "ab" * 64)],
)
def test_reward_with_a_sender_or_signature_is_malformed(name: str, value: str) -> None:
    fields = make_reward("modelchain-regtest", 1, "ab" * 32, 50).to_json()
    fields[name] = value
    _assert_malformed(fields)


def test_longest_chain_id_and_names_are_accepted(keypair) -> None:
    tx = make_tx(
        keypair("alice"),
        chain_id="😀" * 64,  # 64 code points
        nonce=MAX_AMOUNT,
        fee=MAX_AMOUNT,
        contract="c" * 32,
        method="m_1",
        args={},
    )
    assert decode_tx(tx.raw) == tx


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"args": {"x": 0.5}}, id="float-arg"),
        pytest.param({"args": {"x": "\ud800"}}, id="lone-surrogate-arg"),
        pytest.param({"chain_id": "\ud800"}, id="lone-surrogate-chain-id"),
        pytest.param({"fee": -1}, id="negative-fee"),
        pytest.param({"contract": "Coin"}, id="bad-contract-name"),
    ],
)
def test_making_a_tx_from_bad_fields_is_refused_as_malformed(make_signed_tx, overrides) -> None:
    with pytest.raises(TxMalformed) as err:
        make_signed_tx(**overrides)
    assert err.value.code == "tx-malformed"


# --- stateless validation -------------------------------------------------------


def test_tx_for_another_chain_is_refused(make_signed_tx) -> None:
    tx = make_signed_tx(chain_id="modelchain-dev")
    with pytest.raises(InvalidTransaction) as err:
        validate_tx_stateless(tx, regtest_params(chain_id="modelchain-regtest"))
    assert err.value.code == "tx-wrong-chain"


@pytest.mark.parametrize("byte", [0, 31, 32, 63])
def test_tx_with_a_flipped_signature_byte_is_refused(make_signed_tx, params, byte: int) -> None:
    fields = make_signed_tx().to_json()
    sig = bytearray.fromhex(fields["sig"])
    sig[byte] ^= 0x01
    fields["sig"] = sig.hex()
    with pytest.raises(InvalidTransaction) as err:
        validate_tx_stateless(tx_from_json(fields), params)
    assert err.value.code == "tx-bad-signature"


CHANGES_AFTER_SIGNING: dict[str, tuple[str, Any]] = {
    "nonce": ("nonce", 1),
    "fee": ("fee", 2),
    "contract": ("contract", "registry"),
    "method": ("method", "burn"),
    "args-amount": ("args", {"to": keypair_for("bob").account, "amount": 11}),
    "args-recipient": ("args", {"to": keypair_for("mallory").account, "amount": 10}),
    "sender": ("sender", keypair_for("mallory").account),
}


@pytest.mark.parametrize(
    ("name", "value"), CHANGES_AFTER_SIGNING.values(), ids=CHANGES_AFTER_SIGNING.keys()
)
def test_tx_changed_after_signing_is_refused(make_signed_tx, params, name: str, value: Any) -> None:
    fields = make_signed_tx().to_json()
    fields[name] = value
    with pytest.raises(InvalidTransaction) as err:
        validate_tx_stateless(tx_from_json(fields), params)
    assert err.value.code == "tx-bad-signature"


def test_tx_replayed_on_another_chain_does_not_verify(make_signed_tx) -> None:
    """Relabelling a tx's chain id breaks its signature: the chain id is signed."""
    fields = make_signed_tx(chain_id="modelchain-dev").to_json()
    fields["chain_id"] = "modelchain-main"
    with pytest.raises(InvalidTransaction) as err:
        validate_tx_stateless(tx_from_json(fields), regtest_params(chain_id="modelchain-main"))
    assert err.value.code == "tx-bad-signature"


def test_tx_over_the_size_limit_is_refused(make_signed_tx, params) -> None:
    tx = make_signed_tx(args={"blob": "x" * params.max_tx_bytes})
    with pytest.raises(InvalidTransaction) as err:
        validate_tx_stateless(tx, params)
    assert err.value.code == "tx-too-large"


def test_tx_exactly_at_the_size_limit_is_accepted(make_signed_tx, params) -> None:
    base = make_signed_tx(args={"blob": ""})
    tx = make_signed_tx(args={"blob": "x" * (params.max_tx_bytes - base.size)})
    assert tx.size == params.max_tx_bytes
    validate_tx_stateless(tx, params)


def test_reward_tx_outside_a_block_is_refused(params, keypair) -> None:
    reward = make_reward(params.chain_id, 1, keypair("alice").account, 50)
    assert decode_tx(reward.raw) == reward  # well-formed as bytes...
    with pytest.raises(InvalidTransaction) as err:
        validate_tx_stateless(reward, params)  # ...but never valid on its own
    assert err.value.code == "tx-malformed"


def test_signature_check_can_be_skipped_for_batch_verification(make_signed_tx, params) -> None:
    fields = make_signed_tx().to_json()
    fields["fee"] = 5
    validate_tx_stateless(tx_from_json(fields), params, check_signature=False)


# --- properties -------------------------------------------------------------------

KEYS = [keypair_for(label) for label in ("alice", "bob", "carol")]
names = st.from_regex(r"[a-z][a-z0-9_]{0,31}", fullmatch=True)
texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
amounts = st.integers(0, MAX_AMOUNT)
arg_values = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER) | texts,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.text(st.characters(max_codepoint=0x7F), max_size=6), children, max_size=3
        )
    ),
    max_leaves=10,
)
tx_fields = st.fixed_dictionaries(
    {
        "chain_id": st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=64),
        "nonce": amounts,
        "fee": amounts,
        "contract": names.filter(lambda name: name != "reward"),
        "method": names,
        "args": st.dictionaries(st.text(st.characters(max_codepoint=0x7F), max_size=6), arg_values),
    }
)


def _sign(key: KeyPair, fields: dict[str, Any]) -> Tx:
    return make_tx(key, **fields)


@settings(max_examples=60)
@given(st.sampled_from(KEYS), tx_fields)
def test_any_valid_tx_decodes_from_its_bytes_to_itself(
    key: KeyPair, fields: dict[str, Any]
) -> None:
    tx = _sign(key, fields)
    assert decode_tx(tx.raw) == tx
    assert tx_from_json(tx.to_json()) == tx
    assert verify_tx_signature(tx)


@settings(max_examples=60)
@given(st.sampled_from(KEYS), tx_fields, st.data())
def test_changing_any_field_changes_the_txid(
    key: KeyPair, fields: dict[str, Any], data: st.DataObject
) -> None:
    tx = _sign(key, fields)
    name = data.draw(st.sampled_from([*sorted(fields), "sender"]))
    if name == "sender":
        other_key = data.draw(st.sampled_from([k for k in KEYS if k != key]))
        changed = _sign(other_key, fields)
    else:
        strategy = tx_fields.map(lambda new: new[name]).filter(lambda v: v != fields[name])
        changed = _sign(key, {**fields, name: data.draw(strategy)})
    assert changed.raw != tx.raw
    assert changed.txid != tx.txid


@given(
    fee=st.integers(0, 2**53 - 1),
    nonce=st.integers(0, 2**53 - 1),
    memo=st.text(max_size=40),
)
def test_fast_signing_message_equals_the_clear_one(fee: int, nonce: int, memo: str) -> None:
    """tx_signing_parts cuts the body out of the signed bytes; it must equal re-encoding."""
    from modelchain.chain.encoding import canonical_bytes
    from modelchain.chain.errors import TxMalformed
    from modelchain.chain.tx import compute_signing_message, tx_signing_parts

    try:
        canonical_bytes(memo)
    except Exception:  # lone surrogates are refused anyway
        return
    key = KeyPair.from_seed(bytes(range(32)))
    try:
        tx = make_tx(
            key,
            chain_id="modelchain-regtest",
            nonce=nonce,
            fee=fee,
            contract="coin",
            method="note",
            args={"memo": memo, "z": [1, {"sig": "x"}]},
        )
    except TxMalformed:
        return
    public, message, signature = tx_signing_parts(tx)
    assert message == compute_signing_message(tx.body())
    assert public == bytes.fromhex(tx.sender)
    assert signature == bytes.fromhex(tx.sig)
