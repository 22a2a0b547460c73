"""The wallet page's Channels section in Chromium against a real node process.

A keystore made in Python is imported in the page, so Python and the page hold the same
key: Python opens a channel on a priced model with a signed `channel.open`, the page lists
it, tops it up (signed in the browser, followed until mined), and after the node has mined
past the expiry refunds it; a refund clicked on a stale view (Python extended the expiry
meanwhile) shows the chain's reason and leaves the channel as it was (only the fee goes).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import expect
from test_ui_accessibility import UNNAMED_CONTROLS
from ui_models import affine_model, register_by_dev_wallet

from modelchain.chain.keys import KeyPair
from modelchain.chain.keystore import MIN_MEMLIMIT, MIN_OPSLIMIT, encrypt_key
from modelchain.market.client import sign_call

PASSPHRASE = "channel wallet passphrase"
MODEL = "channels-priced"
PRICE = 100
CONFIRM_MS = 90_000


@pytest.fixture(scope="module")
def priced_model(ui_node: Any) -> str:
    """A priced version, so channels may be opened on it."""
    client = ui_node.client
    txid = register_by_dev_wallet(client, affine_model(seed=700), name=MODEL, price=PRICE)
    client.wait_for_confirmations(txid, 1, timeout=60)
    return MODEL


def funded_key(ui_node: Any, byte: int) -> KeyPair:
    key = KeyPair.from_seed(bytes([byte]) * 32)
    funding = ui_node.client.post("/api/v1/faucet", {"account": key.account})
    ui_node.client.wait_for_confirmations(funding["txid"], 1, timeout=60)
    return key


def send_call(ui_node: Any, key: KeyPair, method: str, args: dict[str, Any]) -> dict[str, Any]:
    """Sign `channel.<method>` in Python, send it and wait for its block; the tx detail."""
    client = ui_node.client
    nonce = client.account(key.account)["pending_nonce"]
    tx = sign_call(key, ui_node.chain_id, nonce, "channel", method, args)
    client.submit_tx(tx)
    detail = client.wait_for_confirmations(tx.txid, 1, timeout=60)
    assert detail["receipt"]["status"] == "ok", detail["receipt"]
    return detail


def open_channel(ui_node: Any, key: KeyPair, deposit: int, blocks: int) -> tuple[str, int]:
    """A channel `key` pays, open for `blocks` blocks past the tip; (id, fee)."""
    expiry = ui_node.client.chain_info()["height"] + blocks
    args = {"model": MODEL, "version": "1", "node": ui_node.account, "deposit": deposit}
    detail = send_call(ui_node, key, "open", {**args, "expiry": expiry})
    return detail["txid"], detail["tx"]["fee"]


def onchain(ui_node: Any, channel: str) -> dict[str, Any]:
    return ui_node.client.get(f"/api/v1/channels/{channel}")["onchain"]


def import_wallet(page: Any, key: KeyPair) -> None:
    doc = encrypt_key(key, PASSPHRASE, opslimit=MIN_OPSLIMIT, memlimit=MIN_MEMLIMIT)
    page.goto("/wallet")
    page.wait_for_selector("#wallet[data-ready=true]")
    page.get_by_label("…or paste the keystore JSON").fill(json.dumps(doc))
    page.get_by_label("Its passphrase").fill(PASSPHRASE)
    page.get_by_role("button", name="Import").click()
    page.wait_for_selector("#wallet-open:not([hidden])")
    page.wait_for_selector("#channels[data-loaded=true]")


def row(page: Any, channel: str) -> Any:
    return page.locator(f'#channels tr[data-channel="{channel}"]')


def refresh_channels(page: Any, at_least: int) -> None:
    """Reload the list until it was read at height >= `at_least`."""
    page.get_by_role("button", name="Refresh channels").click()
    page.wait_for_function(
        "(h) => Number(document.querySelector('#channels').dataset.height) >= h",
        arg=at_least,
        timeout=CONFIRM_MS,
    )


def page_txid(page: Any) -> str:
    return page.get_attribute("#channels-notice", "data-txid")


def test_a_channel_is_listed_and_topped_up_in_the_page(
    page: Any, ui_node: Any, priced_model: str, screenshot: Any
) -> None:
    key = funded_key(ui_node, 71)
    channel, _ = open_channel(ui_node, key, deposit=5000, blocks=40)
    before = onchain(ui_node, channel)

    import_wallet(page, key)
    listed = row(page, channel)
    expect(listed).to_have_attribute("data-state", "open")
    expect(listed.locator("td").first).to_contain_text(f"{MODEL}@1")
    expect(listed.locator(".channel-deposit")).to_have_text("5000")
    expect(listed.locator(".channel-claimed")).to_have_text("0")
    expect(listed.locator(".channel-accepted")).to_contain_text("0 (0 unclaimed)")
    expect(listed.locator(".channel-expiry")).to_contain_text(f"{before['expiry']} (height ")
    assert listed.get_by_role("button", name="Refund").count() == 0
    assert page.evaluate(UNNAMED_CONTROLS) == []

    new_expiry = before["expiry"] + 25
    listed.get_by_label("Add deposit (base units)").fill("2500")
    listed.get_by_label("New expiry height").fill(str(new_expiry))
    listed.get_by_label("New expiry height").press("Tab")  # the button is next in Tab order
    expect(listed.get_by_role("button", name="Top up")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#channels-notice")).to_contain_text("done in block", timeout=CONFIRM_MS)

    after = onchain(ui_node, channel)
    assert (after["deposit"], after["expiry"]) == (7500, new_expiry)
    topup = ui_node.client.tx(page_txid(page))
    assert topup["tx"]["sender"] == key.account and topup["tx"]["method"] == "topup"
    expect(listed.locator(".channel-deposit")).to_have_text("7500")
    expect(listed.locator(".channel-expiry")).to_contain_text(f"{new_expiry} (height ")
    expect(page.locator("#channels-error")).to_be_hidden()
    screenshot(page, "wallet-channels")


def test_a_refund_before_expiry_shows_the_chains_reason_and_one_after_closes_the_channel(
    page: Any, ui_node: Any, priced_model: str
) -> None:
    client = ui_node.client
    key = funded_key(ui_node, 72)
    start = client.account(key.account)["balance"]
    channel, open_fee = open_channel(ui_node, key, deposit=4000, blocks=3)
    import_wallet(page, key)
    listed = row(page, channel)
    expect(listed).to_have_attribute("data-state", "open")

    expiry = onchain(ui_node, channel)["expiry"]
    ui_node.mine(max(1, expiry - client.chain_info()["height"]))
    refresh_channels(page, expiry)
    expect(listed).to_have_attribute("data-state", "expired")
    refund = listed.get_by_role("button", name="Refund")
    expect(refund).to_be_visible()

    # meanwhile another holder of the key extends the channel: the page's view is stale
    later = client.chain_info()["height"] + 6
    topup = send_call(ui_node, key, "topup", {"channel": channel, "deposit": 0, "expiry": later})
    topup_fee = topup["tx"]["fee"]
    extended = onchain(ui_node, channel)
    balance = client.account(key.account)["balance"]
    refund.click()
    alert = page.locator("#channels-error")
    expect(alert).to_contain_text("channel-not-expired", timeout=CONFIRM_MS)
    expect(alert).to_contain_text(f"channel expires at {later}")
    expect(alert).to_contain_text("Refund of")
    failed = client.tx(page_txid(page))
    assert failed["receipt"]["status"] == "failed"
    assert onchain(ui_node, channel) == extended  # nothing changed but the fee
    assert client.account(key.account)["balance"] == balance - failed["tx"]["fee"]
    expect(listed).to_have_attribute("data-state", "open")  # the page read the chain again

    ui_node.mine(max(1, later - client.chain_info()["height"]))
    refresh_channels(page, later)
    expect(listed).to_have_attribute("data-state", "expired")
    listed.get_by_role("button", name="Refund").click()
    expect(page.locator("#channels-notice")).to_contain_text("done in block", timeout=CONFIRM_MS)
    refunded = client.tx(page_txid(page))
    assert refunded["receipt"]["status"] == "ok"
    assert onchain(ui_node, channel)["closed"] is True
    expect(listed).to_have_attribute("data-state", "closed")
    expect(listed.locator(".channel-state")).to_have_text("closed")
    assert listed.get_by_role("button", name="Refund").count() == 0
    fees = open_fee + topup_fee + failed["tx"]["fee"] + refunded["tx"]["fee"]
    assert client.account(key.account)["balance"] == start - fees
    expect(page.locator("#balance")).to_have_text(str(start - fees))
