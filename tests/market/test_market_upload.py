"""Model upload and dry run on a real regtest MarketNode, and the demo model of `modelchain up`.

Files are small affine models built with onnx.helper (distinct weights, distinct sha256s);
validation runs in the real sandbox child. After every refusal the test checks that the node
kept neither the file nor the tx.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from factories import key_for, mine_tip
from factories_market import affine_bytes as affine
from factories_market import register_tx, sha256_of

from modelchain.chain.errors import ModelchainError
from modelchain.chain.tx import Tx, make_tx, tx_from_json
from modelchain.contracts import registry
from modelchain.market.client import sign_call
from modelchain.market.config import NodeConfig, dev_wallet
from modelchain.market.demo import (
    build_demo_model,
    ensure_demo_model,
    load_demo_spec,
)
from modelchain.market.node import MarketNode
from modelchain.market.upload import (
    STATUS_KNOWN,
    UploadBadTx,
    parse_tx_json,
)
from modelchain.models_store import runtime
from modelchain.models_store.validate import validate_model_bytes

DEV = dev_wallet()
ALICE = key_for("alice")  # holds no funds


def open_market_node(data_dir: Path, **config: Any) -> MarketNode:
    return MarketNode(NodeConfig(data_dir=data_dir, network="regtest", mine=False, **config))


@pytest.fixture
def node(tmp_path: Path) -> Iterator[MarketNode]:
    node = open_market_node(tmp_path / "node")
    yield node
    node.close()


def upload(node: MarketNode, data: bytes, tx: Tx) -> Any:
    return node.uploads.upload(io.BytesIO(data), tx)


def assert_nothing_kept(node: MarketNode, mempool_before: int = 0) -> None:
    assert node.models.list_hashes() == []
    assert len(node.chain.mempool) == mempool_before
    leftovers = [p.name for p in node.models.root.iterdir()]
    assert leftovers == [], f"temp files left behind: {leftovers}"


# --- the happy paths -----------------------------------------------------------------------


def test_upload_stores_the_file_and_admits_its_registration(node: MarketNode) -> None:
    data = affine(2)
    tx = register_tx(node, data)
    result = upload(node, data, tx)
    assert result.status == "ready"
    assert result.txid == tx.txid
    assert result.sha256 == sha256_of(data)
    assert node.models.read_verified(result.sha256) == data
    assert tx.txid in node.chain.mempool
    mine_tip(node.chain)
    info = registry.get_version(node.store, "scaler", "1")
    assert info is not None and info.sha256 == result.sha256
    assert info.metadata["io_signature"] == result.signature


def test_dry_run_returns_the_signature_and_stores_nothing(node: MarketNode) -> None:
    data = affine(3)
    found = node.uploads.inspect(io.BytesIO(data))
    assert found.sha256 == sha256_of(data)
    assert found.size == len(data)
    assert found.signature == validate_model_bytes(data).to_json()
    assert found.registered_as is None
    assert_nothing_kept(node)


def test_dry_run_names_the_version_that_registered_the_same_file(node: MarketNode) -> None:
    data = affine(4)
    upload(node, data, register_tx(node, data))
    mine_tip(node.chain)
    assert node.uploads.inspect(io.BytesIO(data)).registered_as == "scaler@1"


def test_resending_an_admitted_upload_answers_known_and_keeps_one_file(
    node: MarketNode,
) -> None:
    data = affine(5)
    tx = register_tx(node, data)
    upload(node, data, tx)
    again = upload(node, data, tx)
    assert again.status == STATUS_KNOWN
    assert len(node.chain.mempool) == 1
    assert node.models.list_hashes() == [sha256_of(data)]


def test_upload_with_a_mined_tx_puts_back_a_lost_file(node: MarketNode) -> None:
    data = affine(6)
    tx = register_tx(node, data)
    upload(node, data, tx)
    mine_tip(node.chain)
    node.models.delete(sha256_of(data))
    assert upload(node, data, tx).status == STATUS_KNOWN
    assert node.models.has(sha256_of(data))


# --- refused files: no tx ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"this is not a model", "model-not-onnx"),
        (b"", "model-not-onnx"),
    ],
)
def test_upload_of_a_file_that_is_not_a_model_keeps_no_file_and_no_tx(
    node: MarketNode, data: bytes, code: str
) -> None:
    tx = register_tx(node, data, io_signature={})
    with pytest.raises(ModelchainError) as err:
        upload(node, data, tx)
    assert err.value.code == code
    assert err.value.http_status == 400
    assert_nothing_kept(node)


def test_upload_over_the_size_limit_is_refused_as_model_too_large(tmp_path: Path) -> None:
    node = open_market_node(tmp_path / "small", max_upload_bytes=100)
    try:
        data = affine(7)
        assert len(data) > 100
        with pytest.raises(ModelchainError) as err:
            upload(node, data, register_tx(node, data))
        assert err.value.code == "model-too-large"
        assert err.value.http_status == 413
        with pytest.raises(ModelchainError) as dry:
            node.uploads.inspect(io.BytesIO(data))
        assert dry.value.code == "model-too-large"
        assert_nothing_kept(node)
    finally:
        node.close()


def test_upload_whose_tx_names_another_sha256_is_refused(node: MarketNode) -> None:
    data = affine(8)
    tx = register_tx(node, data, sha256=sha256_of(affine(9)))
    with pytest.raises(ModelchainError) as err:
        upload(node, data, tx)
    assert err.value.code == "upload-sha256-mismatch"
    assert err.value.detail["file_sha256"] == sha256_of(data)
    assert_nothing_kept(node)


def test_upload_whose_tx_lacks_the_extracted_signature_is_refused_with_it(
    node: MarketNode,
) -> None:
    data = affine(10)
    signature = validate_model_bytes(data).to_json()
    tx = register_tx(node, data, io_signature={**signature, "producer_name": "someone else"})
    with pytest.raises(ModelchainError) as err:
        upload(node, data, tx)
    assert err.value.code == "upload-signature-mismatch"
    assert err.value.detail["signature"] == signature
    assert_nothing_kept(node)


# --- refused txs: no file ------------------------------------------------------------------


def _not_a_registration(node: MarketNode, data: bytes) -> Tx:
    return sign_call(
        DEV, node.params.chain_id, 0, "coin", "transfer", {"to": ALICE.account, "amount": 1}
    )


def _bad_signature(node: MarketNode, data: bytes) -> Tx:
    good = register_tx(node, data)
    other = register_tx(node, data, key=ALICE)
    return tx_from_json({**good.to_json(), "sig": other.sig})


BAD_TXS = {
    "upload-bad-tx": _not_a_registration,
    "tx-wrong-chain": lambda node, data: register_tx(node, data, chain_id="modelchain-dev"),
    "tx-bad-signature": _bad_signature,
    "registry-bad-split": lambda node, data: make_tx(
        DEV,
        chain_id=node.params.chain_id,
        nonce=0,
        fee=100_000,
        contract="registry",
        method="register",
        args={**register_tx(node, data).args, "split": {"owners": [], "node": 10_000}},
    ),
    "registry-bad-metadata": lambda node, data: register_tx(node, data, tags=["Not A Tag"]),
    "tx-insufficient-balance": lambda node, data: register_tx(node, data, key=ALICE),
    "tx-nonce-too-high": lambda node, data: register_tx(node, data, nonce=5),
    "tx-nonce-too-low": lambda node, data: register_tx(node, data, nonce=0),
    "mempool-fee-too-low": lambda node, data: register_tx(node, data, fee=1),
}


@pytest.mark.parametrize("code", sorted(BAD_TXS))
def test_upload_with_a_refused_tx_keeps_no_file_and_no_tx(node: MarketNode, code: str) -> None:
    if code == "tx-nonce-too-low":  # the dev wallet has used nonce 0 on chain
        seed = affine(99)
        upload(node, seed, register_tx(node, seed, name="first"))
        mine_tip(node.chain)
        node.models.delete(sha256_of(seed))
    data = affine(11)
    tx = BAD_TXS[code](node, data)
    with pytest.raises(ModelchainError) as err:
        upload(node, data, tx)
    assert err.value.code == code
    assert_nothing_kept(node)


def test_a_tx_that_is_not_json_of_integers_is_refused_as_upload_bad_tx() -> None:
    for raw in (b"{not json", b'{"fee": 1.5}', json.dumps({"sig": "0" * 128}).encode()):
        with pytest.raises(ModelchainError) as err:
            parse_tx_json(raw)
        assert err.value.code in ("upload-bad-tx", "tx-malformed")
    with pytest.raises(UploadBadTx):
        parse_tx_json(b"{not json")


# --- registrations bound to fail: no file --------------------------------------------------


def test_upload_of_a_version_already_on_chain_is_refused(node: MarketNode) -> None:
    first = affine(12)
    upload(node, first, register_tx(node, first))
    mine_tip(node.chain)
    data = affine(13)
    with pytest.raises(ModelchainError) as err:
        upload(node, data, register_tx(node, data))
    assert err.value.code == "registry-version-exists"
    assert node.models.list_hashes() == [sha256_of(first)]


def test_upload_under_a_name_owned_by_another_account_is_refused(node: MarketNode) -> None:
    first = affine(14)
    upload(node, first, register_tx(node, first))
    funding = sign_call(
        DEV,
        node.params.chain_id,
        node.chain.pending_nonce(DEV.account),
        "coin",
        "transfer",
        {"to": ALICE.account, "amount": 10_000_000},
    )
    node.submit_tx(funding)
    mine_tip(node.chain)
    data = affine(15)
    with pytest.raises(ModelchainError) as err:
        upload(node, data, register_tx(node, data, key=ALICE, version="2"))
    assert err.value.code == "registry-not-owner"
    assert node.models.list_hashes() == [sha256_of(first)]


@pytest.mark.parametrize(
    ("second", "code"),
    [
        ({"name": "other"}, "registry-sha256-exists"),  # the same file, pending
        ({"same_file": False}, "registry-version-exists"),  # the same name@version, pending
    ],
)
def test_upload_competing_with_a_pending_registration_is_refused(
    node: MarketNode, second: dict[str, Any], code: str
) -> None:
    first = affine(16)
    upload(node, first, register_tx(node, first))
    data = first if second.pop("same_file", True) else affine(17)
    with pytest.raises(ModelchainError) as err:
        upload(node, data, register_tx(node, data, **second))
    assert err.value.code == code
    assert len(node.chain.mempool) == 1
    assert node.models.list_hashes() == [sha256_of(first)]


def test_a_submit_that_fails_after_the_file_was_committed_removes_the_file(
    node: MarketNode,
) -> None:
    class DiskFull(ModelchainError):
        code = "test-disk-full"

    def failing_submit(tx: Tx) -> Any:
        assert node.models.has(tx.args["sha256"]), "the file is committed before the submit"
        raise DiskFull("the mempool write failed")

    node.uploads.submit = failing_submit
    data = affine(18)
    with pytest.raises(DiskFull):
        upload(node, data, register_tx(node, data))
    assert_nothing_kept(node)


def test_a_failed_submit_keeps_a_file_the_store_held_before(node: MarketNode) -> None:
    data = affine(19)
    node.models.put_bytes(data)

    def failing_submit(tx: Tx) -> Any:
        raise ModelchainError("no")

    node.uploads.submit = failing_submit
    with pytest.raises(ModelchainError):
        upload(node, data, register_tx(node, data))
    assert node.models.has(sha256_of(data))


# --- the demo model ------------------------------------------------------------------------


def test_demo_model_converts_celsius_to_fahrenheit_as_its_examples_say() -> None:
    spec = load_demo_spec()
    session = runtime.create_session(build_demo_model(spec))
    celsius = np.array([c for c, _ in spec.examples], dtype=np.float32)
    outputs = runtime.run(session, {spec.input: celsius})
    expected = [f for _, f in spec.examples]
    assert np.allclose(outputs[spec.output], expected, atol=1e-4)
    assert spec.name == "demo-celsius-to-fahrenheit" and spec.version == "1.0.0"


def test_demo_model_bytes_are_the_same_every_build() -> None:
    assert build_demo_model() == build_demo_model()


def test_demo_model_is_registered_once_by_the_dev_wallet_across_restarts(tmp_path: Path) -> None:
    spec = load_demo_spec()
    node = open_market_node(tmp_path / "dev")
    try:
        first = ensure_demo_model(node)
        assert first.state == "submitted"
        assert ensure_demo_model(node).state == "pending"
        mine_tip(node.chain)
        assert ensure_demo_model(node).state == "registered"
        assert len(node.chain.mempool) == 0
    finally:
        node.close()
    node = open_market_node(tmp_path / "dev")  # a restart on the same data
    try:
        node.models.delete(first.sha256)
        again = ensure_demo_model(node)
        assert again.state == "registered"
        assert node.models.read_verified(first.sha256) == build_demo_model(spec)
        info = registry.get_version(node.store, spec.name, spec.version)
        assert info is not None
        assert info.registrant == DEV.account
        assert info.price == spec.price
        assert info.split.owners == ((DEV.account, 9000),)
        assert info.split.node_bps == 1000
        assert len(node.chain.mempool) == 0
    finally:
        node.close()
