"""Receipts: signed by the node, verifiable offline, broken by any change to any field."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from factories import key_for
from hypothesis import given
from hypothesis import strategies as st
from test_market_payments import PAYER, FakeRun, Market, tx_payment

from modelchain.chain.encoding import canonical_bytes
from modelchain.chain.keys import KeyPair
from modelchain.market.cli import cli
from modelchain.market.receipts import (
    RECEIPT_TAG,
    ReceiptInvalid,
    compute_receipt_id,
    compute_receipt_message,
    draft_receipt,
    receipt_problem,
    sign_receipt,
    sign_receipt_encoded,
    verify_receipt,
)
from modelchain.web import create_app

NODE = key_for("node")


def fields(**overrides: Any) -> dict[str, Any]:
    values = {
        "chain_id": "modelchain-regtest",
        "height": 12,
        "model": "summer",
        "model_version": "1",
        "model_sha256": hashlib.sha256(b"model").hexdigest(),
        "input_hash": hashlib.sha256(b"input").hexdigest(),
        "output_hash": hashlib.sha256(b"output").hexdigest(),
        "price": 1_001,
        "payment": {"kind": "channel", "channel": "ab" * 32, "amount": 3_003},
        "request_id": "req-7",
    }
    return values | overrides


def test_signed_receipt_verifies_offline_with_the_nodes_account() -> None:
    receipt = sign_receipt(NODE, fields())
    assert receipt["node"] == NODE.account
    assert receipt["version"] == 1
    assert verify_receipt(receipt)
    assert verify_receipt(receipt, NODE.account)
    assert not verify_receipt(receipt, key_for("other node").account)


def test_receipt_signature_covers_the_tag_and_the_canonical_fields() -> None:
    receipt = sign_receipt(NODE, fields())
    unsigned = {k: v for k, v in receipt.items() if k != "sig"}
    assert compute_receipt_message(receipt) == RECEIPT_TAG + canonical_bytes(unsigned)
    assert compute_receipt_id(receipt) == hashlib.sha256(canonical_bytes(receipt)).hexdigest()


def _altered(receipt: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    changed = copy.deepcopy(receipt)
    target = changed
    for name in path[:-1]:
        target = target[name]
    value = target[path[-1]]
    if isinstance(value, bool) or value is None:
        target[path[-1]] = "x"
    elif isinstance(value, int):
        target[path[-1]] = value + 1
    elif path[-1] == "kind":
        target[path[-1]] = "tx" if value == "channel" else "channel"
    elif len(value) in (64, 128) and all(c in "0123456789abcdef" for c in value):
        target[path[-1]] = ("1" if value[0] != "1" else "2") + value[1:]
    else:
        target[path[-1]] = value + "x"
    return changed


FIELD_PATHS = [
    ("version",),
    ("node",),
    ("chain_id",),
    ("height",),
    ("model",),
    ("model_version",),
    ("model_sha256",),
    ("input_hash",),
    ("output_hash",),
    ("price",),
    ("payment", "kind"),
    ("payment", "channel"),
    ("payment", "amount"),
    ("request_id",),
    ("sig",),
]


@pytest.mark.parametrize("path", FIELD_PATHS, ids=["/".join(p) for p in FIELD_PATHS])
def test_receipt_with_any_field_altered_fails_to_verify(path: tuple[str, ...]) -> None:
    receipt = sign_receipt(NODE, fields())
    assert not verify_receipt(_altered(receipt, path))


def test_tx_payment_receipt_fails_when_its_txid_is_altered() -> None:
    receipt = sign_receipt(NODE, fields(payment={"kind": "tx", "txid": "cd" * 32}))
    assert verify_receipt(receipt)
    assert not verify_receipt(_altered(receipt, ("payment", "txid")))


def _broken_receipts() -> dict[str, Any]:
    good = sign_receipt(NODE, fields())
    missing = {k: v for k, v in good.items() if k != "request_id"}
    return {
        "not an object": "receipt",
        "a list": [],
        "empty": {},
        "an extra field": good | {"extra": 1},
        "a missing field": missing,
        "a tx payment without txid": good | {"payment": {"kind": "tx"}},
        "an unknown payment kind": good | {"payment": {"kind": "cash", "amount": 1}},
        "a negative price": good | {"price": -1},
        "a float price": good | {"price": 1.5},
        "a boolean height": good | {"height": True},
        "a model outside the grammar": good | {"model": "Not A Name"},
        "a numeric request id": good | {"request_id": 5},
        "a sig that is not hex": good | {"sig": "zz"},
    }


@pytest.mark.parametrize("name", list(_broken_receipts()))
def test_malformed_receipt_does_not_verify_and_says_why(name: str) -> None:
    receipt = _broken_receipts()[name]
    assert not verify_receipt(receipt)
    assert receipt_problem(receipt)


def test_sign_receipt_refuses_fields_that_do_not_make_a_receipt() -> None:
    with pytest.raises(ReceiptInvalid) as err:
        sign_receipt(NODE, fields(output_hash="nope"))
    assert err.value.code == "receipt-invalid"
    with pytest.raises(ReceiptInvalid):
        sign_receipt(NODE, fields(node=key_for("someone else").account))


def test_signed_receipt_comes_with_its_canonical_json_the_id_hashes() -> None:
    receipt, body = sign_receipt_encoded(NODE, fields(request_id="café ☕"))
    assert body == canonical_bytes(receipt)
    assert compute_receipt_id(receipt) == hashlib.sha256(body).hexdigest()
    assert verify_receipt(receipt, NODE.account)


@given(
    request_id=st.none() | st.text(st.characters(codec="utf-8"), max_size=40),
    chain_id=st.text(st.characters(codec="utf-8"), min_size=1, max_size=20),
    height=st.integers(0, 2**53),
    payment=st.sampled_from(
        [{"kind": "tx", "txid": "cd" * 32}, {"kind": "channel", "channel": "ab" * 32, "amount": 9}]
    ),
)
def test_signed_receipts_encoding_is_its_canonical_json_for_any_fields(
    request_id: str | None, chain_id: str, height: int, payment: dict[str, Any]
) -> None:
    """The signed encoding is spliced from the unsigned one: it must stay canonical."""
    values = fields(request_id=request_id, chain_id=chain_id, height=height, payment=payment)
    try:
        receipt, body = sign_receipt_encoded(NODE, values)
    except ReceiptInvalid:  # an unprintable request id
        return
    assert body == canonical_bytes(receipt)
    assert verify_receipt(receipt, NODE.account)


def drafted(**overrides: Any) -> tuple[Any, str]:
    """A draft of fields(**overrides) by NODE, and the output hash it leaves out."""
    values = fields(**overrides)
    output_hash = values.pop("output_hash")
    return draft_receipt(NODE.account, values), output_hash


@pytest.mark.parametrize(
    "text",
    ['","output_hash":"' + "0" * 40, '"output_hash":"', "output_hash", '\\"output_hash\\":"'],
)
def test_a_drafts_message_is_the_receipts_signed_message_whatever_the_strings_hold(
    text: str,
) -> None:
    """The draft finds the output hash's place in its own encoding: strings that spell
    its key must not move it."""
    draft, output_hash = drafted(chain_id=text, request_id=text)
    receipt, body = draft.sign(NODE, output_hash)
    assert draft.message(output_hash) == compute_receipt_message(receipt)
    assert receipt["chain_id"] == receipt["request_id"] == text
    assert receipt["output_hash"] == output_hash
    assert body == canonical_bytes(receipt)
    assert verify_receipt(receipt, NODE.account)


def test_a_draft_signed_with_a_signature_from_elsewhere_is_the_receipt_signed_here() -> None:
    """What an inference worker sends back (the output hash and a signature) completes
    the node's draft into the receipt the node would have signed itself."""
    draft, output_hash = drafted()
    signature = NODE.sign(draft.message(output_hash))
    assert draft.signed(output_hash, signature) == sign_receipt_encoded(NODE, fields())


def test_a_draft_is_signed_only_by_its_node_and_only_for_an_output_hash() -> None:
    draft, output_hash = drafted()
    with pytest.raises(ReceiptInvalid, match="signing key"):
        draft.sign(key_for("someone else"), output_hash)
    for bad in ("nope", output_hash.upper(), None, 7):
        with pytest.raises(ReceiptInvalid, match="output_hash"):
            draft.sign(NODE, bad)


def test_draft_receipt_refuses_fields_that_do_not_make_a_receipt() -> None:
    for values in (
        {**fields(), "extra": 1},
        {name: value for name, value in fields().items() if name != "price"},
        fields(node=key_for("someone else").account),
        fields(height=-1),
    ):
        values.pop("output_hash", None)
        with pytest.raises(ReceiptInvalid):
            draft_receipt(NODE.account, values)


def test_sign_receipt_refuses_a_chain_id_that_utf8_cannot_encode() -> None:
    with pytest.raises(ReceiptInvalid) as err:
        sign_receipt(NODE, fields(chain_id="chain-\ud800"))
    assert "canonical" in err.value.message


# --- the node's receipts over HTTP ------------------------------------------------------


@pytest.fixture
def market(tmp_path: Path) -> Iterator[Market]:
    market = Market(tmp_path / "node")
    market.register_models()
    market.fund(PAYER.account)
    yield market
    market.close()


def test_receipt_routes_serve_stored_receipts_and_verify_any(market: Market) -> None:
    tx = market.pay_tx(PAYER, "a")
    answer = market.payments.infer_paid(market.call("a", tx_payment(tx)), FakeRun())
    receipt, receipt_id = answer["parameters"]["receipt"], answer["parameters"]["receipt_id"]
    assert receipt_id == compute_receipt_id(receipt)
    client = create_app(node=market.node).test_client()

    got = client.get(f"/api/v1/receipts/{receipt_id}")
    assert got.status_code == 200
    assert got.get_json() == {"id": receipt_id, "receipt": receipt}
    assert client.get(f"/api/v1/receipts?txid={tx.txid}").get_json() == {"receipts": [receipt_id]}
    missing = client.get(f"/api/v1/receipts/{'0' * 64}")
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "receipt-unknown"

    ok = client.post("/api/v1/receipts/verify", json=receipt).get_json()
    assert ok == {"valid": True, "reason": None}
    pinned = client.post(f"/api/v1/receipts/verify?node={market.node.account}", json=receipt)
    assert pinned.get_json()["valid"] is True
    other = client.post(f"/api/v1/receipts/verify?node={NODE.account}", json=receipt)
    assert other.get_json()["valid"] is False
    forged = client.post("/api/v1/receipts/verify", json=receipt | {"price": 1}).get_json()
    assert forged["valid"] is False and forged["reason"]


def test_receipt_example_in_the_docs_verifies_and_has_the_documented_id() -> None:
    text = (Path(__file__).parents[2] / "docs" / "payments.md").read_text()
    example = text.split("Example (node seed")[1].split("```json")[1].split("```")[0]
    receipt = json.loads(example)
    node = KeyPair.from_seed(bytes(range(32)))
    assert verify_receipt(receipt, node.account)
    documented_id = text.split("Its id is `")[1].split("`")[0]
    assert compute_receipt_id(receipt) == documented_id
    assert sign_receipt(node, {k: v for k, v in receipt.items() if k != "sig"}) == receipt


def test_receipt_verify_command_checks_offline_and_fails_a_forgery(tmp_path: Path) -> None:
    receipt = sign_receipt(NODE, fields())
    answer = tmp_path / "answer.json"
    answer.write_text(json.dumps({"outputs": [], "parameters": {"receipt": receipt}}))
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(receipt | {"price": 1}))
    runner = CliRunner()
    home = ["--home", str(tmp_path / "home"), "--node", "http://127.0.0.1:9"]  # never called

    ok = runner.invoke(cli, [*home, "--json", "receipt", "verify", str(answer)])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["valid"] is True
    pinned = runner.invoke(
        cli, [*home, "receipt", "verify", str(answer), "--node-account", key_for("x").account]
    )
    assert pinned.exit_code == 1
    bad = runner.invoke(cli, [*home, "--json", "receipt", "verify", str(forged)])
    assert bad.exit_code == 1
    assert json.loads(bad.stdout)["error"]["code"] == "receipt-invalid"
