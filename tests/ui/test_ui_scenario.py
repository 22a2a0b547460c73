"""The whole user story in Chromium against a real node process: a new user creates a
wallet on the wallet page, gets dev funds from the faucet, uploads a model through the
upload page and waits for its confirmation, finds it in the catalog, runs it from its page
paying per call and then by a channel the page opens, sees each receipt verify, and finds
the payment on the audit page and in the explorer. Every request of the browser is recorded:
none carries the passphrase. No page logs an error."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import expect
from ui_models import affine_model

log = logging.getLogger(__name__)

PASSPHRASE = "scenario: correct horse battery staple"
PRICE = 100
WAIT_MS = 90_000
"""Steps that wait for a block (the node mines as soon as a tx waits)."""


def test_a_new_user_publishes_finds_pays_for_and_audits_a_model_from_the_browser(
    page: Any,
    ui_node: Any,
    request_recorder: Any,
    console_watch: Any,
    tmp_path: Path,
    screenshot: Callable[[Any, str], Path],
) -> None:
    client = ui_node.client
    # the page asks for a quote (200) before paying: no console error is allowed here

    log.info("a new wallet, made and kept in the browser")
    page.goto("/wallet")
    page.get_by_label("New passphrase", exact=True).fill(PASSPHRASE)
    page.get_by_label("New passphrase again").fill(PASSPHRASE)
    page.get_by_role("button", name="Create wallet").click()
    account_link = page.locator("#account-link")
    expect(account_link).to_have_text(re.compile("^[0-9a-f]{64}$"), timeout=WAIT_MS)
    account = account_link.inner_text()

    log.info("dev funds from the faucet")
    page.locator("#faucet-button").click()
    expect(page.locator("#balance")).not_to_have_text(re.compile(r"^(…|0)$"), timeout=WAIT_MS)

    log.info("upload a model through the upload page")
    model = tmp_path / "scenario-model.onnx"
    model.write_bytes(affine_model(seed=500, scale=3.0))
    page.goto("/upload")
    page.get_by_label("ONNX model file (.onnx)").set_input_files(str(model))
    expect(page.locator("#upload-dryrun")).to_contain_text("accepted")
    page.get_by_label("Description").fill("triples x and adds 500")
    page.get_by_label("Price per call (base units; 0 = free)").fill(str(PRICE))
    page.get_by_role("button", name="Sign and upload").click()
    status = page.locator("#upload-status")
    expect(status).to_have_attribute("data-confirmed", "true", timeout=WAIT_MS)
    registration = status.get_attribute("data-txid")

    log.info("find it in the catalog and open its page")
    page.goto("/")
    page.get_by_label("Search").fill("scenario-model")
    card = page.locator('li.card[data-ref="scenario-model@1.0.0"]')
    expect(card.locator(".price")).to_have_text(str(PRICE))
    card.locator("h2 a").click()
    expect(page.locator("#registration-tx")).to_have_text(registration)

    log.info("run it, paying per call from the browser wallet")
    expect(page.locator("#tryit-form")).to_have_attribute("data-ready", "true")
    page.get_by_label(re.compile("^x — float32")).fill("[[1, 2, 3]]")
    page.get_by_label(re.compile("^per call")).check()
    page.get_by_role("button", name=f"Run and pay {PRICE}").click()
    verdict = page.locator("#receipt-verdict")
    expect(verdict).to_have_attribute("data-valid", "true", timeout=WAIT_MS)
    expect(page.locator('#tryit-outputs .output[data-name="y"] pre')).to_have_text("[503,506,509]")
    receipt = json.loads(page.locator("#tryit-receipt").inner_text())
    assert receipt["payment"]["kind"] == "tx" and receipt["price"] == PRICE
    payment_txid = receipt["payment"]["txid"]
    screenshot(page, "model_paid")

    log.info("run it again, paying by a channel the page opens")
    page.get_by_label(re.compile("^by channel")).check()
    page.get_by_label("Calls to deposit for (channel)").fill("5")
    page.get_by_role("button", name=f"Run and pay {PRICE}").click()
    expect(page.locator("#tryit-status")).to_contain_text("paid by voucher", timeout=WAIT_MS)
    expect(verdict).to_have_attribute("data-valid", "true")
    first = json.loads(page.locator("#tryit-receipt").inner_text())
    assert first["payment"]["kind"] == "channel" and first["payment"]["amount"] == PRICE
    page.get_by_role("button", name=f"Run and pay {PRICE}").click()
    expect(page.locator("#tryit-status")).to_contain_text(
        f"paid by voucher, {2 * PRICE} in total", timeout=WAIT_MS
    )
    second = json.loads(page.locator("#tryit-receipt").inner_text())
    assert second["payment"] == {**first["payment"], "amount": 2 * PRICE}
    channel = client.get(f"/api/v1/channels/{first['payment']['channel']}")
    assert channel["accepted"] == 2 * PRICE
    assert channel["onchain"]["payer"] == account

    log.info("find the payment on the audit page")
    client.wait_for_confirmations(payment_txid, 1, timeout=60)
    page.goto("/audit?model=scenario-model")
    row = page.locator(f'#audit-payments tr.event[data-txid="{payment_txid}"]')
    expect(row).to_contain_text("usage-paid")
    expect(row).to_contain_text(f"paid {PRICE}")
    page.goto(f"/audit?tx={payment_txid}")
    expect(page.locator("#audit-tx-events")).to_contain_text("usage-paid")

    log.info("and in the explorer")
    page.goto(f"/explorer/tx/{payment_txid}")
    expect(page.locator("main")).to_contain_text(payment_txid)
    expect(page.locator("main")).to_contain_text("usage_fee")

    log.info("no request carried the passphrase")
    assert request_recorder.requests, "the recorder saw no requests"
    assert request_recorder.carrying(PASSPHRASE) == []
