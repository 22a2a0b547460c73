"""The audit page (/audit) in Chromium against a real node: a model's, an account's and a
tx's history from the audit queries, with events and confirmations; receipts pasted in are
verified in the browser (and by the node's verifier as a cross-check)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from ui_models import affine_model, register_by_dev_wallet

from modelchain.market.config import dev_wallet

DOCS = Path(__file__).resolve().parents[2] / "docs"


def docs_receipt() -> dict[str, Any]:
    """The example receipt of docs/payments.md, signed by the node of seed 00 01 .. 1f."""
    text = (DOCS / "payments.md").read_text()
    return json.loads(text.split("Example (node seed")[1].split("```json")[1].split("```")[0])


@pytest.fixture(scope="module")
def audited(ui_node: Any) -> str:
    txid = register_by_dev_wallet(
        ui_node.client, affine_model(seed=400), name="audit-me", description="audited"
    )
    ui_node.client.wait_for_confirmations(txid, 1, timeout=60)
    return txid


def test_a_models_history_lists_its_registration_with_confirmations(
    page: Any, audited: str, screenshot: Callable[[Any, str], Path]
) -> None:
    page.goto("/audit?model=audit-me")
    row = page.locator(f'#audit-registry-events tr.event[data-txid="{audited}"]')
    expect(row).to_contain_text("model-registered")
    assert int(row.locator(".confirmations").inner_text()) >= 1
    expect(page.locator("#audit-summary")).to_contain_text(dev_wallet().account[:12])
    screenshot(page, "audit")


def test_an_account_and_a_tx_history_come_from_the_form(page: Any, audited: str) -> None:
    page.goto("/audit")
    page.get_by_label("History of").select_option("account")
    page.get_by_label("Model name, account or transaction id").fill(dev_wallet().account)
    page.get_by_role("button", name="Show history").click()
    expect(page.locator("#audit-title")).to_contain_text(dev_wallet().account)
    expect(page.locator("#audit-summary")).to_contain_text("audit-me")
    page.get_by_label("History of").select_option("tx")
    page.get_by_label("Model name, account or transaction id").fill(audited)
    page.get_by_role("button", name="Show history").click()
    expect(page.locator("#audit-summary")).to_contain_text("registry.register")
    expect(page.locator("#audit-tx-events tr.event")).to_have_count(1)


def test_an_unknown_model_is_said_in_words(page: Any, ui_node: Any, console_watch: Any) -> None:
    console_watch.allow(r"status of 404 .*/api/v1/audit/models/no-such-model")
    page.goto("/audit?model=no-such-model")
    expect(page.locator("#audit-error")).to_contain_text("audit-unknown-model")


def test_a_pasted_receipt_is_verified_in_the_browser_and_a_forged_one_is_not(
    page: Any, ui_node: Any
) -> None:
    receipt = docs_receipt()
    page.goto("/audit")
    page.get_by_label("Receipt JSON", exact=False).fill(json.dumps(receipt))
    page.get_by_role("button", name="Verify").click()
    verdict = page.locator("#receipt-result")
    expect(verdict).to_have_attribute("data-valid", "true")
    expect(verdict).to_contain_text("the node's verifier agrees")
    forged = {**receipt, "price": receipt["price"] + 1}
    page.get_by_label("Receipt JSON", exact=False).fill(
        json.dumps({"parameters": {"receipt": forged}})
    )
    page.get_by_role("button", name="Verify").click()
    expect(verdict).to_have_attribute("data-valid", "false")
    expect(verdict).to_contain_text("does not verify")
