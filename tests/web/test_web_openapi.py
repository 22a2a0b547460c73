"""The OpenAPI document at /api/v1/openapi.json, held to the app it describes.

It validates as OpenAPI 3.1; its paths and methods are exactly the app's routes; and a table
of calls, a happy path and bad inputs for every operation, runs through Flask's test client
against a regtest node with the standard models registered (tests/factories_market.py). For
each call the answer's status must be documented for its operation, its body must validate
(JSON Schema 2020-12, $refs resolved against the document's components) against the schema
documented for that status, an error must carry the code the case names, and a refused call
must leave the node as it was: same tip, mempool, model files, receipts and vouchers.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from factories import key_for, make_block, mine_tip, solve_header
from flask import Flask, Response
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi

from modelchain.chain.block import Block, Header, compute_block_merkle_root
from modelchain.chain.keys import KeyPair
from modelchain.chain.params import block_subsidy
from modelchain.chain.tx import Tx, make_reward
from modelchain.contracts.registry import VersionInfo
from modelchain.contracts.voucher import sign_voucher
from modelchain.market.client import sign_call
from modelchain.market.config import dev_wallet
from modelchain.market.demo import build_affine_model
from modelchain.market.node import MarketNode
from modelchain.market.upload import registration_args
from modelchain.models_store.validate import validate_model_bytes
from modelchain.web.openapi import openapi_document

DEV = dev_wallet()
STRANGER = key_for("openapi-stranger")
JSON = "application/json"
OCTETS = "application/octet-stream"
MULTIPART = "multipart/form-data"
IGNORED_METHODS = {"HEAD", "OPTIONS"}
UNKNOWN_HASH = "ab" * 32
ADDMUL_INPUTS = [
    {"name": "a", "datatype": "FP32", "shape": [2, 3], "data": [[1, 2, 3], [4, 5, 6]]},
    {"name": "b", "datatype": "FP32", "shape": [3], "data": [10, 20, 30]},
]
CHANNEL_DEPOSIT = 10_000


# --- the node's world: a paid call, two channels, a pending tx, an orphan block --------------


class StandInMiningLoop:
    """Takes /mine's requests in place of the node's mining loop (no miner processes)."""

    def __init__(self) -> None:
        self.requested = 0

    def request_blocks(self, count: int) -> None:
        self.requested += count

    def wake(self) -> None:
        pass

    def stop(self) -> None:
        pass


@dataclass
class World:
    """The node, its client, and the ids the calls refer to."""

    client: FlaskClient
    node: MarketNode
    versions: dict[str, VersionInfo]
    pay_tx: dict[str, Any] = field(default_factory=dict)
    """A mined usage_fee.pay tx (JSON) that paid a call of priced@1 with ADDMUL_INPUTS."""
    receipt_id: str = ""
    receipt: dict[str, Any] = field(default_factory=dict)
    channel: str = ""
    """priced@1's channel from the dev wallet, with one voucher accepted."""
    idle_channel: str = ""
    """A channel with no voucher."""
    pending_txid: str = ""
    orphan: bytes = b""
    """A block with valid proof of work on a parent the node never saw."""

    @property
    def ids(self) -> dict[str, str]:
        """What call paths name in {placeholders}."""
        return {
            "pay_txid": self.receipt["payment"]["txid"],
            "pending_txid": self.pending_txid,
            "receipt_id": self.receipt_id,
            "channel": self.channel,
            "idle_channel": self.idle_channel,
            "tip": self.node.chain.tip.hash,
            "node": self.node.account,
            "dev": DEV.account,
            "mlp_sha": self.sha("mlp@1"),
            "absent_sha": self.sha("absent@1"),
            "unknown": UNKNOWN_HASH,
        }

    @property
    def chain_id(self) -> str:
        return self.node.params.chain_id

    def sha(self, ref: str) -> str:
        return self.versions[ref].sha256

    def sign(self, contract: str, method: str, args: dict[str, Any], key: KeyPair = DEV) -> Tx:
        nonce = self.node.chain.pending_nonce(key.account)
        return sign_call(key, self.chain_id, nonce, contract, method, args)

    def submit(self, contract: str, method: str, args: dict[str, Any]) -> Tx:
        tx = self.sign(contract, method, args)
        self.node.submit_tx(tx)
        return tx

    def paid_per_call(self, path: str) -> dict[str, Any]:
        """An inference request for `path` paid by a fresh usage_fee.pay tx from its quote."""
        unpaid = self.client.post(path, json={"inputs": ADDMUL_INPUTS})
        assert unpaid.status_code == 402, unpaid.get_data(as_text=True)
        call = unpaid.get_json()["quote"]["how"]["per_call"]["call"]
        tx = self.sign(call["contract"], call["method"], call["args"])
        return {
            "id": "call-1",
            "inputs": ADDMUL_INPUTS,
            "parameters": {"payment": {"tx": tx.to_json()}},
        }

    def voucher(self, channel: str, raise_by: int) -> dict[str, Any]:
        amount = self.node.payments.book.amount(channel) + raise_by
        sig = sign_voucher(DEV, self.chain_id, channel, amount)
        return {
            "inputs": ADDMUL_INPUTS,
            "parameters": {"payment": {"channel": channel, "amount": amount, "sig": sig}},
        }


def orphan_block(node: MarketNode) -> bytes:
    """A block two above the tip whose parent (one above the tip) the node never gets."""
    parent = make_block(node.chain, miner=STRANGER.account)  # not the block "new" submits
    height = parent.header.height + 1
    reward = make_reward(
        node.params.chain_id, height, DEV.account, block_subsidy(height, node.params)
    )
    header = Header(
        version=parent.header.version,
        height=height,
        prev_hash=parent.hash,
        merkle_root=compute_block_merkle_root((reward,)),
        timestamp=parent.header.timestamp + 10,
        target=parent.header.target,
        miner=DEV.account,
        nonce=0,
    )
    return Block(solve_header(header), (reward,)).to_bytes()


@pytest.fixture(scope="module")
def world(app: Flask, market_node: MarketNode, versions: dict[str, VersionInfo]) -> Iterator[World]:
    world = World(app.test_client(), market_node, versions)
    price = versions["priced@1"].price
    request = world.paid_per_call("/v2/models/priced/infer")
    paid = world.client.post("/v2/models/priced/infer", json=request)
    assert paid.status_code == 200, paid.get_data(as_text=True)
    world.receipt = paid.get_json()["parameters"]["receipt"]
    world.receipt_id = paid.get_json()["parameters"]["receipt_id"]
    world.pay_tx = request["parameters"]["payment"]["tx"]
    open_args = {
        "model": "priced",
        "version": "1",
        "node": market_node.account,
        "deposit": CHANNEL_DEPOSIT,
        "expiry": market_node.chain.height + 1000,
    }
    world.channel = world.submit("channel", "open", open_args).txid
    world.idle_channel = world.submit("channel", "open", open_args).txid
    # the node pays its claims' fees
    world.submit("coin", "transfer", {"to": market_node.account, "amount": 1_000_000})
    mine_tip(market_node.chain)
    by_voucher = world.client.post(
        "/v2/models/priced/versions/1/infer", json=world.voucher(world.channel, price)
    )
    assert by_voucher.status_code == 200, by_voucher.get_data(as_text=True)
    world.pending_txid = world.submit(
        "coin", "transfer", {"to": STRANGER.account, "amount": 5}
    ).txid
    world.orphan = orphan_block(market_node)
    market_node.mining = StandInMiningLoop()  # type: ignore[assignment]
    yield world
    market_node.mining = None


# --- the document ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document()


def openapi_path(rule: str) -> str:
    """A Flask rule as an OpenAPI path: <ref> and <path:ref> become {ref}."""
    parts = []
    for piece in rule.split("/"):
        if piece.startswith("<") and piece.endswith(">"):
            piece = "{" + piece[1:-1].rpartition(":")[2] + "}"
        parts.append(piece)
    return "/".join(parts)


def app_operations(app: Flask) -> set[str]:
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or not rule.rule.startswith(("/api/", "/v2")):
            continue  # HTML pages of the ui blueprint are not part of the API
        for method in rule.methods or ():
            if method not in IGNORED_METHODS:
                found.add(f"{method} {openapi_path(rule.rule)}")
    return found


def documented_operations(document: dict[str, Any]) -> set[str]:
    return {
        f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item
    }


def schema_validator(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for `schema` whose #/components/... refs resolve in the document."""
    return Draft202012Validator({**schema, "components": document["components"]})


def assert_valid(document: dict[str, Any], schema: dict[str, Any], value: Any, what: str) -> None:
    errors = sorted(schema_validator(document, schema).iter_errors(value), key=str)
    assert not errors, f"{what} does not match the document:\n" + "\n".join(
        f"- at {list(error.absolute_path)}: {error.message[:300]}" for error in errors[:5]
    )


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    validate_openapi(document)


def test_document_is_served_at_api_v1_openapi_json(
    client: FlaskClient, document: dict[str, Any]
) -> None:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.mimetype == JSON
    assert response.get_json() == json.loads(json.dumps(document))


def test_every_app_route_is_in_the_document_with_its_methods(
    app: Flask, document: dict[str, Any]
) -> None:
    missing = app_operations(app) - documented_operations(document)
    assert not missing, f"routes missing from the OpenAPI document: {sorted(missing)}"


def test_every_documented_operation_is_an_app_route(app: Flask, document: dict[str, Any]) -> None:
    stale = documented_operations(document) - app_operations(app)
    assert not stale, f"documented operations the app does not have: {sorted(stale)}"


def test_every_component_schema_is_used(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    unused = [
        name
        for name in document["components"]["schemas"]
        if f'"#/components/schemas/{name}"' not in text
    ]
    assert not unused, f"component schemas nothing refers to: {unused}"


def error_code_of(path: str, body: dict[str, Any]) -> str:
    """The reason code of an error body: beside the message under /v2 (the Open Inference
    Protocol's shape), inside `error` everywhere else."""
    return body["code"] if path.startswith("/v2") else body["error"]["code"]


def test_every_operation_documents_json_errors_in_the_one_error_shape(
    document: dict[str, Any],
) -> None:
    for path, item in document["paths"].items():
        shape = "V2Error" if path.startswith("/v2") else "Error"
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                schema = response["content"][JSON]["schema"]
                assert {"$ref": f"#/components/schemas/{shape}"} in schema["allOf"], (
                    f"{method.upper()} {path} {status} is not an {shape}"
                )
            assert "500" in operation["responses"], f"{method.upper()} {path} lacks its 500"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/api/v1/no-such-route", 404, "not-found"),
        ("GET", "/v2/no-such-route", 404, "not-found"),
        ("DELETE", "/api/v1/chain", 405, "method-not-allowed"),
        ("GET", "/api/v1/txs", 405, "method-not-allowed"),
    ],
)
def test_routing_errors_answer_the_documented_error_shape(
    client: FlaskClient, document: dict[str, Any], method: str, path: str, status: int, code: str
) -> None:
    response = client.open(path, method=method)
    assert response.status_code == status and response.mimetype == JSON
    shape = "V2Error" if path.startswith("/v2") else "Error"
    assert_valid(document, {"$ref": f"#/components/schemas/{shape}"}, response.get_json(), path)
    assert error_code_of(path, response.get_json()) == code


# --- the table of calls ----------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One HTTP request: its path with any query string, and its body."""

    method: str
    path: str
    json: Any = None
    data: Any = None
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def send(self, client: FlaskClient) -> Response:
        kwargs: dict[str, Any] = {"method": self.method, "headers": self.headers}
        if self.json is not None:
            kwargs["json"] = self.json
        if self.data is not None:
            kwargs["data"] = self.data
        if self.content_type is not None:
            kwargs["content_type"] = self.content_type
        return client.open(self.path, **kwargs)


MakeCall = Callable[[World], Call]


@dataclass(frozen=True)
class Case:
    """A call of one documented operation, the status it must answer, and an error's code."""

    operation: str
    """"METHOD /path/{param}" as the document names it."""
    status: int
    label: str
    call: MakeCall
    code: str | None = None

    @property
    def id(self) -> str:
        return f"{self.operation} {self.status} {self.label}"


@dataclass(frozen=True)
class Expect:
    status: int
    label: str
    call: MakeCall
    code: str | None = None


def ok(label: str, call: MakeCall, status: int = 200) -> Expect:
    return Expect(status, label, call)


def refused(status: int, code: str, call: MakeCall, label: str = "") -> Expect:
    return Expect(status, label or code, call, code)


def of(operation: str, *expected: Expect) -> list[Case]:
    return [Case(operation, e.status, e.label, e.call, e.code) for e in expected]


def get(path: str) -> MakeCall:
    """GET `path`, its {placeholders} filled from World.ids."""
    return lambda w: Call("GET", path.format_map(w.ids))


def post(path: str, body: Callable[[World], Any] | None = None) -> MakeCall:
    """POST `path` ({placeholders} filled from World.ids) with body(world) as JSON."""
    return lambda w: Call("POST", path.format_map(w.ids), json=None if body is None else body(w))


def post_bytes(path: str, data: Any, content_type: str = OCTETS) -> MakeCall:
    return lambda w: Call("POST", path, data=data, content_type=content_type)


def upload_tx(w: World, data: bytes, name: str) -> Tx:
    args = registration_args(
        name=name,
        version="1",
        sha256=hashlib.sha256(data).hexdigest(),
        price=0,
        split={"owners": [[DEV.account, 9_000]], "node": 1_000},
        io_signature=validate_model_bytes(data).to_json(),
    )
    return w.sign("registry", "register", args)


def multipart_upload(w: World) -> Call:
    data = build_affine_model(3.0, 1.0)
    tx = upload_tx(w, data, "openapi-multipart")
    form = {"file": (io.BytesIO(data), "model.onnx"), "tx": json.dumps(tx.to_json())}
    return Call("POST", "/api/v1/models", data=form, content_type=MULTIPART)


def octet_upload(w: World) -> Call:
    data = build_affine_model(5.0, 1.0)
    tx = upload_tx(w, data, "openapi-octets")
    header = base64.urlsafe_b64encode(json.dumps(tx.to_json()).encode()).decode().rstrip("=")
    headers = {"X-Modelchain-Tx": header}
    return Call("POST", "/api/v1/models", data=data, content_type=OCTETS, headers=headers)


def inspect_multipart(w: World) -> Call:
    form = {"file": (io.BytesIO(build_affine_model(7.0, 2.0)), "model.onnx")}
    return Call("POST", "/api/v1/models/inspect", data=form, content_type=MULTIPART)


def transfer(w: World) -> dict[str, Any]:
    return w.sign("coin", "transfer", {"to": STRANGER.account, "amount": 1}).to_json()


def badly_signed_transfer(w: World) -> dict[str, Any]:
    tx = transfer(w)
    tx["sig"] = ("00" if tx["sig"][:2] != "00" else "11") + tx["sig"][2:]
    return tx


def new_block(w: World) -> Call:
    block = make_block(w.node.chain).to_bytes()
    return Call("POST", "/api/v1/blocks", data=block, content_type=OCTETS)


def known_block(w: World) -> Call:
    tip = w.node.chain.get_block(w.node.chain.tip.hash)
    assert tip is not None
    return Call("POST", "/api/v1/blocks", data=tip.to_bytes(), content_type=OCTETS)


def genesis_locator(w: World) -> dict[str, Any]:
    return {"locator": [w.node.chain.store.chain_hash_at(0)], "max_blocks": 2}


def orphan_block_call(w: World) -> Call:
    return Call("POST", "/api/v1/blocks", data=w.orphan, content_type=OCTETS)


def tampered_receipt(w: World) -> dict[str, Any]:
    return {**w.receipt, "price": w.receipt["price"] + 1}


def binary_outputs(w: World) -> dict[str, Any]:
    return {"inputs": ADDMUL_INPUTS, "parameters": {"binary_data_output": True}}


def replayed_payment(w: World) -> dict[str, Any]:
    return {"inputs": ADDMUL_INPUTS, "parameters": {"payment": {"tx": w.pay_tx}}}


def addmul(w: World) -> dict[str, Any]:
    return {"id": "call-7", "inputs": ADDMUL_INPUTS}


def wrong_datatype(w: World) -> dict[str, Any]:
    return {"inputs": [{**ADDMUL_INPUTS[0], "datatype": "INT64"}, ADDMUL_INPUTS[1]]}


def lacking_an_input(w: World) -> dict[str, Any]:
    return {"inputs": ADDMUL_INPUTS[:1]}


def paid_per_call(w: World) -> dict[str, Any]:
    return w.paid_per_call("/v2/models/priced/infer")


def paid_by_channel(w: World) -> dict[str, Any]:
    return w.voucher(w.channel, w.versions["priced@1"].price)


def voucher_under_the_price(w: World) -> dict[str, Any]:
    return w.voucher(w.channel, 1)


STALE_CURSOR = f"999999.1.{'0' * 16}"
MLP_FILE = "/api/v1/models/files/{mlp_sha}"
CASES = [
    # chain
    *of("GET /api/v1/chain", ok("tip", get("/api/v1/chain"))),
    *of(
        "GET /api/v1/blocks",
        ok("page", get("/api/v1/blocks?limit=3&before=3")),
        refused(400, "query-invalid", get("/api/v1/blocks?limit=0"), "limit 0"),
        refused(400, "query-invalid", get("/api/v1/blocks?before=x"), "before x"),
    ),
    *of(
        "POST /api/v1/blocks",
        ok("new", new_block),
        ok("known", known_block),
        ok("orphan", orphan_block_call, 202),
        refused(400, "request-invalid", post("/api/v1/blocks", lambda w: {"block": 1})),
        refused(400, "block-malformed", post_bytes("/api/v1/blocks", b"\x00" * 10)),
    ),
    *of(
        "GET /api/v1/blocks/{ref}",
        ok("by height", get("/api/v1/blocks/1")),
        ok("by hash", get("/api/v1/blocks/{tip}")),
        refused(404, "block-unknown", get("/api/v1/blocks/99999")),
    ),
    *of(
        "GET /api/v1/blocks/{ref}/raw",
        ok("genesis", get("/api/v1/blocks/0/raw")),
        refused(404, "block-unknown", get("/api/v1/blocks/{unknown}/raw")),
    ),
    *of(
        "POST /api/v1/txs",
        ok("transfer", post("/api/v1/txs", transfer), 202),
        refused(400, "tx-bad-signature", post("/api/v1/txs", badly_signed_transfer)),
        refused(400, "tx-malformed", post("/api/v1/txs", lambda w: {"nonce": 0})),
        refused(400, "request-invalid", post_bytes("/api/v1/txs", "tx", "text/plain")),
    ),
    *of(
        "GET /api/v1/txs/{txid}",
        ok("confirmed", get("/api/v1/txs/{pay_txid}")),
        ok("pending", get("/api/v1/txs/{pending_txid}")),
        refused(400, "query-invalid", get("/api/v1/txs/xyz")),
        refused(404, "tx-unknown", get("/api/v1/txs/{unknown}")),
    ),
    *of(
        "GET /api/v1/accounts/{account}",
        ok("dev", get("/api/v1/accounts/{dev}")),
        refused(400, "query-invalid", get("/api/v1/accounts/bob")),
    ),
    *of(
        "GET /api/v1/mempool",
        ok("pool", get("/api/v1/mempool?limit=5")),
        refused(400, "query-invalid", get("/api/v1/mempool?limit=101")),
    ),
    *of(
        "POST /api/v1/mine",
        ok("two", post("/api/v1/mine", lambda w: {"blocks": 2}), 202),
        ok("no body", post("/api/v1/mine"), 202),
        refused(400, "request-invalid", post("/api/v1/mine", lambda w: {"blocks": 0})),
    ),
    *of("GET /api/v1/peers", ok("none configured", get("/api/v1/peers"))),
    *of("GET /api/v1/sync/status", ok("status", get("/api/v1/sync/status"))),
    *of(
        "POST /api/v1/sync/blocks",
        ok("from genesis", post("/api/v1/sync/blocks", genesis_locator)),
        ok("at the tip", post("/api/v1/sync/blocks", lambda w: {"locator": [w.ids["tip"]]})),
        refused(400, "sync-bad-locator", post("/api/v1/sync/blocks", lambda w: {"locator": []})),
        refused(
            400,
            "request-invalid",
            post("/api/v1/sync/blocks", lambda w: genesis_locator(w) | {"max_blocks": 0}),
            "max_blocks 0",
        ),
        refused(400, "request-invalid", post_bytes("/api/v1/sync/blocks", "x", "text/plain")),
    ),
    *of(
        "GET /api/v1/sync/mempool",
        ok("txids", get("/api/v1/sync/mempool?limit=5")),
        refused(400, "query-invalid", get("/api/v1/sync/mempool?limit=0")),
    ),
    *of(
        "POST /api/v1/faucet",
        ok("stranger", post("/api/v1/faucet", lambda w: {"account": STRANGER.account}), 202),
        refused(400, "request-invalid", post("/api/v1/faucet", lambda w: {"account": "bob"})),
    ),
    # models
    *of(
        "GET /api/v1/models",
        ok("all", get("/api/v1/models?deprecated=1&limit=50&sort=name")),
        ok("search", get("/api/v1/models?q=add&owner={dev}&sort=most_used")),
        refused(400, "query-invalid", get("/api/v1/models?sort=best"), "bad sort"),
        refused(400, "query-invalid", get("/api/v1/models?offset=-1"), "bad offset"),
    ),
    *of(
        "POST /api/v1/models",
        ok("multipart", multipart_upload, 202),
        ok("octets", octet_upload, 202),
        refused(400, "upload-bad-tx", post_bytes("/api/v1/models", build_affine_model(9.0, 1.0))),
        refused(415, "upload-bad-content-type", post_bytes("/api/v1/models", "x", "text/plain")),
    ),
    *of(
        "POST /api/v1/models/inspect",
        ok("multipart", inspect_multipart),
        refused(400, "model-not-onnx", post_bytes("/api/v1/models/inspect", b"not a model")),
        refused(415, "upload-bad-content-type", post("/api/v1/models/inspect", lambda w: {})),
    ),
    *of(
        "GET /api/v1/models/{name}",
        ok("versions", get("/api/v1/models/versions")),
        refused(404, "catalog-unknown-model", get("/api/v1/models/nope")),
    ),
    *of(
        "GET /api/v1/models/{name}/versions/{version}",
        ok("deprecated", get("/api/v1/models/versions/versions/3")),
        refused(404, "catalog-unknown-version", get("/api/v1/models/mlp/versions/9")),
        refused(404, "catalog-unknown-model", get("/api/v1/models/nope/versions/1")),
    ),
    *of(
        "POST /api/v1/models/{name}/versions/{version}/quote",
        ok("priced", post("/api/v1/models/priced/versions/1/quote", addmul)),
        ok("free", post("/api/v1/models/addmul/versions/1/quote", addmul)),
        refused(
            400,
            "infer-bad-datatype",
            post("/api/v1/models/priced/versions/1/quote", wrong_datatype),
        ),
        refused(
            404, "model-version-unknown", post("/api/v1/models/addmul/versions/9/quote", addmul)
        ),
    ),
    *of(
        "GET /api/v1/models/files/{sha256}",
        ok("mlp", get(MLP_FILE)),
        refused(400, "query-invalid", get("/api/v1/models/files/xyz")),
        refused(404, "store-model-not-found", get("/api/v1/models/files/{absent_sha}")),
    ),
    # audit
    *of(
        "GET /api/v1/audit/models/{name}",
        ok("priced", get("/api/v1/audit/models/priced")),
        refused(400, "query-invalid", get("/api/v1/audit/models/priced?limit=0"), "limit 0"),
        refused(404, "audit-unknown-model", get("/api/v1/audit/models/nope")),
    ),
    *of(
        "GET /api/v1/audit/accounts/{account}",
        ok("dev", get("/api/v1/audit/accounts/{dev}")),
        ok("node", get("/api/v1/audit/accounts/{node}")),
        refused(400, "query-invalid", get("/api/v1/audit/accounts/bob")),
    ),
    *of(
        "GET /api/v1/audit/txs/{txid}",
        ok("paid", get("/api/v1/audit/txs/{pay_txid}")),
        ok("pending", get("/api/v1/audit/txs/{pending_txid}")),
        refused(400, "query-invalid", get("/api/v1/audit/txs/xyz")),
        refused(404, "tx-unknown", get("/api/v1/audit/txs/{unknown}")),
    ),
    *of(
        "GET /api/v1/audit/events",
        ok("model", get("/api/v1/audit/events?model=priced&limit=5")),
        ok("range", get("/api/v1/audit/events?contract=registry&from_height=1&to_height=2")),
        ok("account", get("/api/v1/audit/events?account={dev}&type=usage-paid")),
        refused(400, "query-invalid", get("/api/v1/audit/events?cursor=1.2.3"), "bad cursor"),
        refused(400, "query-invalid", get("/api/v1/audit/events?contract=nope"), "bad contract"),
        refused(409, "audit-cursor-stale", get(f"/api/v1/audit/events?cursor={STALE_CURSOR}")),
    ),
    # channels
    *of(
        "GET /api/v1/channels",
        ok("of dev", get("/api/v1/channels?account={dev}")),
        ok("with vouchers", get("/api/v1/channels")),
        refused(400, "query-invalid", get("/api/v1/channels?account=bob")),
        refused(400, "query-invalid", get("/api/v1/channels?limit=0")),
    ),
    *of(
        "GET /api/v1/channels/{channel_id}",
        ok("open", get("/api/v1/channels/{channel}")),
        refused(400, "query-invalid", get("/api/v1/channels/xyz")),
        refused(404, "channel-unknown", get("/api/v1/channels/{unknown}")),
    ),
    *of(
        "POST /api/v1/channels/{channel_id}/claim",
        ok("voucher", post("/api/v1/channels/{channel}/claim"), 202),
        refused(409, "channel-nothing-to-claim", post("/api/v1/channels/{idle_channel}/claim")),
        refused(400, "query-invalid", post("/api/v1/channels/xyz/claim")),
        refused(404, "channel-unknown", post("/api/v1/channels/{unknown}/claim")),
    ),
    # receipts
    *of(
        "GET /api/v1/receipts",
        ok("by tx", get("/api/v1/receipts?txid={pay_txid}")),
        ok("by channel", get("/api/v1/receipts?channel={channel}")),
        refused(400, "query-invalid", get("/api/v1/receipts"), "neither"),
        refused(400, "query-invalid", get("/api/v1/receipts?txid=xyz"), "malformed"),
    ),
    *of(
        "GET /api/v1/receipts/{receipt_id}",
        ok("filed", get("/api/v1/receipts/{receipt_id}")),
        refused(404, "receipt-unknown", get("/api/v1/receipts/{unknown}")),
    ),
    *of(
        "POST /api/v1/receipts/verify",
        ok("valid", post("/api/v1/receipts/verify?node={node}", lambda w: w.receipt)),
        ok("tampered", post("/api/v1/receipts/verify", tampered_receipt)),
        refused(400, "query-invalid", post("/api/v1/receipts/verify?node=bob", lambda w: {})),
        refused(400, "request-invalid", post_bytes("/api/v1/receipts/verify", "{", "text/plain")),
    ),
    *of("GET /api/v1/openapi.json", ok("document", get("/api/v1/openapi.json"))),
    # the Open Inference Protocol
    *of("GET /v2", ok("server", get("/v2"))),
    *of("GET /v2/health/live", ok("live", get("/v2/health/live"))),
    *of("GET /v2/health/ready", ok("ready", get("/v2/health/ready"))),
    *of(
        "GET /v2/models/{name}",
        ok("tensors", get("/v2/models/addmul")),
        ok("sequences and maps", get("/v2/models/zipmap")),
        refused(404, "model-unknown", get("/v2/models/nope")),
    ),
    *of(
        "GET /v2/models/{name}/versions/{version}",
        ok("deprecated", get("/v2/models/versions/versions/3")),
        refused(404, "model-version-unknown", get("/v2/models/addmul/versions/9")),
    ),
    *of(
        "GET /v2/models/{name}/ready",
        ok("addmul", get("/v2/models/addmul/ready")),
        refused(404, "model-unknown", get("/v2/models/nope/ready")),
        refused(410, "model-version-deprecated", get("/v2/models/old/ready")),
        refused(422, "model-signature-invalid", get("/v2/models/unsigned/ready")),
        refused(503, "model-file-missing", get("/v2/models/absent/ready")),
    ),
    *of(
        "GET /v2/models/{name}/versions/{version}/ready",
        ok("addmul", get("/v2/models/addmul/versions/1/ready")),
        refused(404, "model-version-unknown", get("/v2/models/addmul/versions/9/ready")),
        refused(410, "model-version-deprecated", get("/v2/models/versions/versions/3/ready")),
    ),
    *of(
        "POST /v2/models/{name}/infer",
        ok("paid per call", post("/v2/models/priced/infer", paid_per_call)),
        ok("binary outputs", post("/v2/models/addmul/infer", binary_outputs)),
        refused(400, "infer-missing-input", post("/v2/models/addmul/infer", lacking_an_input)),
        refused(400, "infer-bad-request", post_bytes("/v2/models/addmul/infer", "{", JSON)),
        refused(402, "payment-required", post("/v2/models/priced/infer", addmul)),
        refused(404, "model-unknown", post("/v2/models/nope/infer", addmul)),
        refused(409, "payment-replayed", post("/v2/models/priced/infer", replayed_payment)),
        refused(410, "model-version-deprecated", post("/v2/models/old/infer", addmul)),
        refused(503, "model-file-missing", post("/v2/models/absent/infer", addmul)),
    ),
    *of(
        "POST /v2/models/{name}/versions/{version}/infer",
        ok("free", post("/v2/models/addmul/versions/1/infer", addmul)),
        ok("paid by channel", post("/v2/models/priced/versions/1/infer", paid_by_channel)),
        refused(
            400, "infer-bad-datatype", post("/v2/models/addmul/versions/1/infer", wrong_datatype)
        ),
        refused(
            402,
            "voucher-too-low",
            post("/v2/models/priced/versions/1/infer", voucher_under_the_price),
        ),
        refused(404, "model-version-unknown", post("/v2/models/addmul/versions/9/infer", addmul)),
        refused(
            410, "model-version-deprecated", post("/v2/models/versions/versions/3/infer", addmul)
        ),
    ),
]


def node_state(node: MarketNode) -> tuple[Any, ...]:
    """What a refused call must not change: tip, mempool, model files, receipts, vouchers."""
    with node.chain.lock:
        tip = node.chain.tip.hash
        pool = sorted(node.chain.mempool.by_id)
    files = sorted(path.name for path in node.models.root.rglob("*"))
    db = node.payments.db
    with db.lock:
        receipts = db.db.execute("SELECT COUNT(*) FROM receipts").fetchone()[0]
    vouchers = sorted((row.channel, row.amount) for row in node.payments.book.all())
    return tip, pool, files, receipts, vouchers


def json_of(response: Response) -> Any:
    """The JSON body; for the binary tensor extension, its JSON header."""
    length = response.headers.get("Inference-Header-Content-Length")
    data = response.get_data()
    return json.loads(data[: int(length)] if length is not None else data)


def assert_routes_to(app: Flask, call: Call, operation: str) -> None:
    """The call reaches the operation the case names, with documented query parameters only."""
    method, _, path = operation.partition(" ")
    url = urlsplit(call.path)
    adapter = app.url_map.bind("localhost")
    rule, _ = adapter.match(url.path, method=method, return_rule=True)
    assert openapi_path(rule.rule) == path, f"{call.path} is not {operation}"


def assert_matches_operation(
    document: dict[str, Any], case: Case, call: Call, response: Response
) -> None:
    """The status, content type and body are what the document says for this operation."""
    method, _, path = case.operation.partition(" ")
    operation = document["paths"][path][method.lower()]
    query = {p["name"] for p in operation.get("parameters", ()) if p["in"] == "query"}
    sent = set(parse_qs(urlsplit(call.path).query))
    assert sent <= query, f"query parameters {sorted(sent - query)} are not documented"
    documented = operation["responses"].get(str(case.status))
    assert documented is not None, f"{case.operation} does not document {case.status}"
    content = documented["content"]
    assert response.mimetype in content, f"{response.mimetype} is not documented"
    if response.mimetype == JSON or "Inference-Header-Content-Length" in response.headers:
        assert_valid(document, content[JSON]["schema"], json_of(response), case.id)
    if call.json is not None and case.status < 400:
        schema = operation["requestBody"]["content"][JSON]["schema"]
        assert_valid(document, schema, call.json, f"the request of {case.id}")


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_answer_matches_the_document(world: World, document: dict[str, Any], case: Case) -> None:
    call = case.call(world)
    before = node_state(world.node)

    response = call.send(world.client)

    shown = response.get_data(as_text=True)[:500] if response.mimetype == JSON else ""
    assert response.status_code == case.status, shown
    assert_routes_to(world.client.application, call, case.operation)
    assert_matches_operation(document, case, call, response)
    if case.code is not None:
        assert error_code_of(call.path, response.get_json()) == case.code
        assert node_state(world.node) == before, "a refused call changed the node"


def test_every_operation_has_a_happy_call_and_bad_inputs_in_the_table(
    document: dict[str, Any],
) -> None:
    happy = {case.operation for case in CASES if case.status < 400}
    refused = {case.operation for case in CASES if case.status >= 400}
    operations = documented_operations(document)
    assert operations - happy == set(), "operations without a happy call"
    takes_input = {
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if operation.get("parameters") or operation.get("requestBody")
    }
    assert takes_input - refused == set(), "operations with inputs but no bad-input call"
