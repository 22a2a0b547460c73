"""Paid inference end to end: a real node process, the CLI, a SIGKILL, 32 payers over HTTP.

A regtest node runs as its own process (`modelchain node start --mine --port 0`);
the test finds its URL in <data>/node.json, polls /v2/health/ready, and stops
it by pid. Through the CLI it uploads a priced MLP, pays one call per call
and checks the receipt offline, opens a channel and pays three calls with
vouchers. It then kills the node with SIGKILL straight after the last
answer, starts it again and checks that the node still holds that voucher
and claims it on-chain. Last, 32 funded payers each pay one call at the same
time over HTTP: every call is settled exactly once.
"""

from __future__ import annotations

import json
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from factories import key_for, wait_until
from factories_market import mlp_model
from node_process import Cli, NodeProcess

from modelchain.chain.keys import KeyPair
from modelchain.market.cli_pay import compute_local_request_hash
from modelchain.market.client import NodeClient, NodeError, sign_call
from modelchain.market.config import dev_wallet
from modelchain.market.receipts import verify_receipt

log = logging.getLogger(__name__)
PRICE = 1_000
START_SECONDS = 60.0
PAYERS = 32
PAYER_FUNDS = 1_000_000


def request_body(seed: int) -> dict[str, Any]:
    return {
        "id": f"call-{seed}",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 16], "data": [seed / 16] * 16}],
    }


def pay_one(client: NodeClient, payer: KeyPair, seed: int, quote: dict[str, Any]) -> str:
    body = request_body(seed)
    args = {
        "model": "mlp",
        "version": "1",
        "amount": PRICE,
        "node": quote["node"],
        "request": compute_local_request_hash(body, quote["sha256"]),
    }
    tx = sign_call(payer, quote["chain_id"], 0, "usage_fee", "pay", args)
    answer = client.post(
        "/v2/models/mlp/versions/1/infer", body | {"parameters": {"payment": {"tx": tx.to_json()}}}
    )
    receipt = answer["parameters"]["receipt"]
    assert verify_receipt(receipt, quote["node"])
    assert receipt["payment"] == {"kind": "tx", "txid": tx.txid}
    return tx.txid


@pytest.mark.slow
def test_paid_inference_end_to_end(tmp_path: Path) -> None:
    node_dir = tmp_path / "node"
    model_file = tmp_path / "mlp.onnx"
    model_file.write_bytes(mlp_model().SerializeToString())
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(request_body(1)))
    run = Cli(tmp_path / "home")
    node = NodeProcess.start(node_dir)
    try:
        run.url = node.url
        client = NodeClient(node.url)
        log.info("node at %s; uploading mlp@1 at %d per call", node.url, PRICE)
        run(
            "model",
            "upload",
            str(model_file),
            "--name",
            "mlp",
            "--version",
            "1",
            "--price",
            str(PRICE),
            "--wait",
            "1",
        )

        log.info("a call without payment gets 402 and a quote")
        with pytest.raises(NodeError) as err:
            client.post("/v2/models/mlp/versions/1/infer", request_body(1))
        assert (err.value.status, err.value.code) == (402, "payment-required")
        quote = err.value.detail["quote"]
        assert quote["price"] == PRICE
        assert quote["request"] == compute_local_request_hash(request_body(1), quote["sha256"])

        log.info("paid per call through the CLI; the receipt verifies offline")
        answer = run("infer", "mlp@1", "--input", str(request_file), "--wait", "1")
        assert answer["outputs"][0]["name"] == "y"
        answer_file = tmp_path / "answer.json"
        answer_file.write_text(json.dumps(answer))
        checked = run("receipt", "verify", str(answer_file), "--node-account", quote["node"])
        assert checked["valid"] is True
        txid = answer["parameters"]["receipt"]["payment"]["txid"]
        events = client.tx(txid)["receipt"]["events"]
        assert [e["type"] for e in events] == ["usage-paid"]

        log.info("a channel, three calls paid by voucher, then SIGKILL")
        opened = run(
            "channel",
            "open",
            "mlp@1",
            "--deposit",
            str(10 * PRICE),
            "--blocks",
            "200",
            "--wait",
            "1",
        )
        channel = opened["channel"]
        for _ in range(3):
            paid = run("infer", "mlp@1", "--input", str(request_file), "--channel", channel)
        assert paid["parameters"]["receipt"]["payment"]["amount"] == 3 * PRICE
        node.kill()
        log.info("killed; starting the node again on the same data dir")
        node = NodeProcess.start(node_dir)
        run.url = node.url
        client = NodeClient(node.url)
        status = run("channel", "show", channel)
        assert status["accepted"] == 3 * PRICE
        assert status["signed_here"] == 3 * PRICE

        log.info("the node claims the voucher it answered for before the kill")
        claim = run("channel", "claim", channel)
        client.wait_for_confirmations(claim["txid"], 1, timeout=60)
        status = run("channel", "show", channel)
        assert status["onchain"]["claimed"] == 3 * PRICE
        assert status["unclaimed"] == 0

        log.info("%d payers pay one call each, all at once", PAYERS)
        dev = dev_wallet()
        payers = [key_for(f"e2e-payer-{i}") for i in range(PAYERS)]
        nonce = client.account(dev.account)["pending_nonce"]
        for i, payer in enumerate(payers):
            args = {"to": payer.account, "amount": PAYER_FUNDS}
            client.submit_tx(sign_call(dev, quote["chain_id"], nonce + i, "coin", "transfer", args))
        wait_until(
            lambda: all(client.account(p.account)["balance"] == PAYER_FUNDS for p in payers),
            60,
            "the payers to be funded",
        )
        with ThreadPoolExecutor(PAYERS) as pool:
            txids = list(pool.map(lambda i: pay_one(client, payers[i], i, quote), range(PAYERS)))
        assert len(set(txids)) == PAYERS
        for txid in txids:
            client.wait_for_confirmations(txid, 1, timeout=60)
        paid_events = [client.tx(txid)["receipt"]["events"] for txid in txids]
        assert all([e["type"] for e in events] == ["usage-paid"] for events in paid_events)
        for payer, txid in zip(payers, txids, strict=True):
            fee = client.tx(txid)["tx"]["fee"]
            assert client.account(payer.account)["balance"] == PAYER_FUNDS - PRICE - fee
        shares = [s["amount"] for events in paid_events for s in events[0]["data"]["shares"]]
        assert sum(shares) == PAYERS * PRICE
    except BaseException:
        print(node.stderr(), file=sys.stderr)
        raise
    finally:
        node.stop()
