"""The model and audit routes of /api/v1 through Flask's test client on a real regtest node.

Every refusal answers the one error body with its code and leaves the node as it was:
nothing in the model store, nothing new in the mempool.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from factories import mine_tip
from factories_market import affine_bytes as affine
from factories_market import register_tx, sha256_of
from flask import Flask
from flask.testing import FlaskClient

from modelchain.chain.tx import Tx
from modelchain.market.client import sign_call
from modelchain.market.config import NodeConfig, dev_wallet
from modelchain.market.node import MarketNode
from modelchain.models_store.validate import validate_model_bytes
from modelchain.web import create_app

DEV = dev_wallet()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[MarketNode]:
    node = MarketNode(NodeConfig(data_dir=tmp_path / "node", network="regtest", mine=False))
    yield node
    node.close()


@pytest.fixture
def app(node: MarketNode) -> Flask:
    return create_app(node=node)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="module")
def idle_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlaskClient]:
    """One node for the tests that only read (bad queries change nothing)."""
    node = MarketNode(
        NodeConfig(data_dir=tmp_path_factory.mktemp("idle"), network="regtest", mine=False)
    )
    yield create_app(node=node).test_client()
    node.close()


def post_multipart(client: FlaskClient, data: bytes, tx: Any = None, path: str = "/api/v1/models"):
    form: dict[str, Any] = {"file": (io.BytesIO(data), "model.onnx")}
    if tx is not None:
        form["tx"] = tx if isinstance(tx, str) else json.dumps(tx.to_json())
    return client.post(path, data=form, content_type="multipart/form-data")


def post_octets(
    client: FlaskClient, data: bytes, header: str | None = None, path: str = "/api/v1/models"
):
    headers = {} if header is None else {"X-Modelchain-Tx": header}
    return client.post(path, data=data, content_type="application/octet-stream", headers=headers)


def tx_header(tx: Tx) -> str:
    return base64.urlsafe_b64encode(json.dumps(tx.to_json()).encode()).decode().rstrip("=")


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


def assert_unchanged(node: MarketNode, stored: tuple[str, ...] = (), pooled: int = 0) -> None:
    assert node.models.list_hashes() == sorted(stored)
    assert len(node.chain.mempool) == pooled
    assert [p.name for p in node.models.root.iterdir() if p.name.startswith(".")] == []


def upload_and_mine(client: FlaskClient, node: MarketNode, data: bytes, **kw: Any) -> str:
    response = post_multipart(client, data, register_tx(node, data, **kw))
    assert response.status_code == 202, response.get_json()
    mine_tip(node.chain)
    return response.get_json()["txid"]


# --- upload and dry run -----------------------------------------------------------------------


def test_multipart_upload_stores_the_file_and_pools_the_tx(
    client: FlaskClient, node: MarketNode
) -> None:
    data = affine(1)
    tx = register_tx(node, data)
    response = post_multipart(client, data, tx)
    assert response.status_code == 202
    body = response.get_json()
    assert body["txid"] == tx.txid
    assert body["status"] == "ready"
    assert body["sha256"] == sha256_of(data)
    assert body["signature"] == validate_model_bytes(data).to_json()
    assert_unchanged(node, stored=(sha256_of(data),), pooled=1)


def test_octet_stream_upload_takes_the_tx_from_its_header(
    client: FlaskClient, node: MarketNode
) -> None:
    data = affine(2)
    tx = register_tx(node, data)
    response = post_octets(client, data, tx_header(tx))
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["txid"] == tx.txid
    assert_unchanged(node, stored=(sha256_of(data),), pooled=1)


@pytest.mark.parametrize("style", ["multipart", "octets"])
def test_dry_run_answers_the_signature_and_stores_nothing(
    client: FlaskClient, node: MarketNode, style: str
) -> None:
    data = affine(3)
    path = "/api/v1/models/inspect"
    if style == "multipart":
        response = post_multipart(client, data, path=path)
    else:
        response = post_octets(client, data, path=path)
    assert response.status_code == 200
    assert response.get_json() == {
        "sha256": sha256_of(data),
        "size": len(data),
        "signature": validate_model_bytes(data).to_json(),
        "registered_as": None,
    }
    assert_unchanged(node)


def _bad_upload(client: FlaskClient, node: MarketNode, case: str) -> Any:
    data = affine(4)
    if case == "no-file-part":
        return client.post(
            "/api/v1/models",
            data={"tx": json.dumps(register_tx(node, data).to_json())},
            content_type="multipart/form-data",
        )
    if case == "no-tx-part":
        return post_multipart(client, data)
    if case == "tx-not-json":
        return post_multipart(client, data, "{not json")
    if case == "tx-with-a-float":
        return post_multipart(
            client, data, json.dumps({**register_tx(node, data).to_json(), "fee": 1.5})
        )
    if case == "no-tx-header":
        return post_octets(client, data)
    if case == "tx-header-not-base64":
        return post_octets(client, data, "%%%")
    if case == "wrong-content-type":
        return client.post("/api/v1/models", data=data, content_type="text/plain")
    if case == "not-onnx":
        junk = b"not a model at all"
        return post_multipart(client, junk, register_tx(node, junk, io_signature={}))
    if case == "sha256-mismatch":
        return post_multipart(client, data, register_tx(node, data, sha256=sha256_of(affine(5))))
    if case == "not-a-registration":
        transfer = sign_call(
            DEV, node.params.chain_id, 0, "coin", "transfer", {"to": "ab" * 32, "amount": 1}
        )
        return post_multipart(client, data, transfer)
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("no-file-part", 400, "request-invalid"),
        ("no-tx-part", 400, "upload-bad-tx"),
        ("tx-not-json", 400, "upload-bad-tx"),
        ("tx-with-a-float", 400, "upload-bad-tx"),
        ("no-tx-header", 400, "upload-bad-tx"),
        ("tx-header-not-base64", 400, "upload-bad-tx"),
        ("wrong-content-type", 415, "upload-bad-content-type"),
        ("not-onnx", 400, "model-not-onnx"),
        ("sha256-mismatch", 400, "upload-sha256-mismatch"),
        ("not-a-registration", 400, "upload-bad-tx"),
    ],
)
def test_a_bad_upload_is_refused_with_its_code_and_changes_nothing(
    client: FlaskClient, node: MarketNode, case: str, status: int, code: str
) -> None:
    assert_error(_bad_upload(client, node, case), status, code)
    assert_unchanged(node)


def test_an_upload_over_the_size_limit_answers_413_model_too_large(tmp_path: Path) -> None:
    config = NodeConfig(
        data_dir=tmp_path / "small", network="regtest", mine=False, max_upload_bytes=100
    )
    node = MarketNode(config)
    try:
        client = create_app(node=node).test_client()
        data = affine(6)
        assert_error(
            post_octets(client, data, tx_header(register_tx(node, data))), 413, "model-too-large"
        )
        assert_error(
            post_octets(client, data, path="/api/v1/models/inspect"), 413, "model-too-large"
        )
        huge = b"\0" * (3 * 1024 * 1024)  # past the room for multipart framing
        assert_error(
            post_octets(client, huge, path="/api/v1/models/inspect"), 413, "request-too-large"
        )
        assert_unchanged(node)
    finally:
        node.close()


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("no-file", "request-invalid"),
        ("not-onnx", "model-not-onnx"),
        ("text", "upload-bad-content-type"),
    ],
)
def test_a_bad_dry_run_is_refused_with_its_code(
    client: FlaskClient, node: MarketNode, case: str, code: str
) -> None:
    path = "/api/v1/models/inspect"
    if case == "no-file":
        response = client.post(path, data={"x": "1"}, content_type="multipart/form-data")
        status = 400
    elif case == "not-onnx":
        response = post_octets(client, b"\x08\x07junk", path=path)
        status = 400
    else:
        response = client.post(path, data=b"x", content_type="text/plain")
        status = 415
    assert_error(response, status, code)
    assert_unchanged(node)


# --- catalog ----------------------------------------------------------------------------------


def test_catalog_lists_a_mined_upload_with_its_record_and_confirmations(
    client: FlaskClient, node: MarketNode
) -> None:
    data = affine(7)
    txid = upload_and_mine(client, node, data, tags=("vision",))
    mine_tip(node.chain)
    page = client.get("/api/v1/models").get_json()
    assert page["total"] == 1
    entry = page["versions"][0]
    assert entry["ref"] == "scaler@1"
    assert entry["sha256"] == sha256_of(data)
    assert entry["confirmations"] == 2
    assert entry["registration"]["txid"] == txid
    assert entry["file_available"] is True
    assert entry["usage"]["paid_calls"] == 0
    assert client.get("/api/v1/models?tag=vision").get_json()["total"] == 1
    assert client.get("/api/v1/models?tag=audio").get_json()["total"] == 0
    detail = client.get("/api/v1/models/scaler").get_json()
    assert [v["version"] for v in detail["versions"]] == ["1"]
    assert detail["latest"] == "1"
    version = client.get("/api/v1/models/scaler/versions/1").get_json()
    assert version["split"] == {"owners": [[DEV.account, 9000]], "node": 1000}


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "limit=abc",
        "offset=-1",
        "offset=99999999",
        "sort=cheapest",
        "owner=alice",
        "tag=Not%20A%20Tag",
        "deprecated=maybe",
        "q=" + "x" * 201,
    ],
)
def test_catalog_with_a_bad_query_answers_query_invalid(
    idle_client: FlaskClient, query: str
) -> None:
    assert_error(idle_client.get(f"/api/v1/models?{query}"), 400, "query-invalid")


def test_unknown_models_and_versions_answer_404(client: FlaskClient, node: MarketNode) -> None:
    assert_error(client.get("/api/v1/models/nobody"), 404, "catalog-unknown-model")
    assert_error(client.get("/api/v1/models/Bad_Name"), 404, "catalog-unknown-model")
    upload_and_mine(client, node, affine(8))
    assert_error(client.get("/api/v1/models/scaler/versions/9"), 404, "catalog-unknown-version")


# --- files ------------------------------------------------------------------------------------


def test_download_by_hash_sends_the_verified_file_as_an_attachment(
    client: FlaskClient, node: MarketNode
) -> None:
    data = affine(9)
    upload_and_mine(client, node, data)
    response = client.get(f"/api/v1/models/files/{sha256_of(data)}")
    assert response.status_code == 200
    assert response.data == data
    assert response.mimetype == "application/octet-stream"
    assert "attachment" in response.headers["Content-Disposition"]
    assert "scaler-1.onnx" in response.headers["Content-Disposition"]
    response.close()


def test_download_of_an_absent_corrupt_or_malformed_hash_is_refused(
    client: FlaskClient, node: MarketNode
) -> None:
    assert_error(client.get(f"/api/v1/models/files/{'ab' * 32}"), 404, "store-model-not-found")
    assert_error(client.get("/api/v1/models/files/not-a-hash"), 400, "query-invalid")
    data = affine(10)
    stored = node.models.put_bytes(data)
    stored.path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert_error(client.get(f"/api/v1/models/files/{stored.sha256}"), 500, "store-corrupt-file")


# --- audit routes -----------------------------------------------------------------------------


def test_audit_routes_answer_a_model_an_account_a_tx_and_events(
    client: FlaskClient, node: MarketNode
) -> None:
    txid = upload_and_mine(client, node, affine(11))
    history = client.get("/api/v1/audit/models/scaler").get_json()
    assert [e["type"] for e in history["registry_events"]] == ["model-registered"]
    account = client.get(f"/api/v1/audit/accounts/{DEV.account}").get_json()
    assert account["models_owned"] == ["scaler"]
    tx = client.get(f"/api/v1/audit/txs/{txid}").get_json()
    assert tx["status"] == "confirmed"
    assert [e["type"] for e in tx["events"]] == ["model-registered"]
    page = client.get("/api/v1/audit/events?contract=registry&limit=1").get_json()
    assert [e["txid"] for e in page["events"]] == [txid]
    assert page["has_more"] is False
    ranged = client.get("/api/v1/audit/events?from_height=1&to_height=1").get_json()
    assert {e["height"] for e in ranged["events"]} == {1}


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/v1/audit/models/Bad_Name", 400, "query-invalid"),
        ("/api/v1/audit/models/nobody", 404, "audit-unknown-model"),
        ("/api/v1/audit/models/nobody?limit=0", 400, "query-invalid"),
        ("/api/v1/audit/accounts/alice", 400, "query-invalid"),
        (f"/api/v1/audit/accounts/{'ab' * 32}?limit=101", 400, "query-invalid"),
        ("/api/v1/audit/txs/xyz", 400, "query-invalid"),
        (f"/api/v1/audit/txs/{'ab' * 32}", 404, "tx-unknown"),
        ("/api/v1/audit/events?contract=bank", 400, "query-invalid"),
        ("/api/v1/audit/events?type=Not_A_Type", 400, "query-invalid"),
        ("/api/v1/audit/events?model=Bad_Name", 400, "query-invalid"),
        ("/api/v1/audit/events?version=scaler", 400, "query-invalid"),
        ("/api/v1/audit/events?account=alice", 400, "query-invalid"),
        ("/api/v1/audit/events?from_height=5&to_height=4", 400, "query-invalid"),
        ("/api/v1/audit/events?from_height=-1", 400, "query-invalid"),
        ("/api/v1/audit/events?limit=101", 400, "query-invalid"),
        ("/api/v1/audit/events?cursor=garbage", 400, "query-invalid"),
        (f"/api/v1/audit/events?cursor=999.3.{'0' * 16}", 409, "audit-cursor-stale"),
    ],
)
def test_audit_routes_refuse_bad_inputs_with_their_code(
    idle_client: FlaskClient, path: str, status: int, code: str
) -> None:
    error = assert_error(idle_client.get(path), status, code)
    if code == "audit-cursor-stale":
        assert error["from_height"] == 3
