"""The explorer in a real Chromium: latest blocks and txs update live while blocks are
mined (POST /api/v1/mine), the chart of block times and difficulty is drawn, and the block,
tx, account and mempool pages show what the chain holds."""

from __future__ import annotations

from typing import Any

from modelchain.chain.keys import KeyPair
from modelchain.market.client import sign_call

CONFIRM_SECONDS = 90


def test_latest_blocks_and_txs_update_live_while_blocks_are_mined(
    page: Any, ui_node: Any, screenshot: Any
) -> None:
    ui_node.mine(2)  # at least two blocks to chart
    page.goto("/explorer")
    page.wait_for_selector("#explorer[data-ready=true]")
    shown = int(page.get_attribute("#explorer", "data-height"))
    page.wait_for_selector("#chart svg path[data-series=left]")

    funded = KeyPair.from_seed(bytes(range(64, 96))).account
    txid = ui_node.client.post("/api/v1/faucet", {"account": funded})["txid"]
    height = ui_node.mine(2)

    page.wait_for_selector(f'#latest-blocks tr[data-height="{height}"]')
    page.wait_for_selector(f'#latest-txs tr[data-txid="{txid}"]')
    assert int(page.inner_text("#tip-height")) >= height > shown
    points = int(page.get_attribute("#chart svg", "data-points"))
    assert points >= 2
    screenshot(page, "explorer")

    page.get_by_role("link", name=txid[:16]).first.click()
    page.wait_for_selector("#txid")
    assert page.inner_text("#txid") == txid
    assert page.inner_text("#tx-status") == "confirmed"
    assert "coin" in page.inner_text("#tx-events")
    screenshot(page, "explorer-tx")


def test_block_account_and_mempool_pages_show_the_chain(
    page: Any, ui_node: Any, screenshot: Any
) -> None:
    sender = KeyPair.from_seed(bytes(range(150, 182)))
    funding = ui_node.client.post("/api/v1/faucet", {"account": sender.account})
    detail = ui_node.client.wait_for_confirmations(funding["txid"], 1, timeout=CONFIRM_SECONDS)
    # nonce 1 before nonce 0 was ever sent: it waits in the mempool as "future"
    future = sign_call(
        sender, ui_node.chain_id, 1, "coin", "transfer", {"to": ui_node.account, "amount": 5}
    )
    ui_node.client.submit_tx(future)

    page.goto(f"/explorer/block/{detail['height']}")
    page.wait_for_selector("#block-hash")
    assert page.inner_text("#block-hash") == detail["block_hash"]
    assert funding["txid"][:16] in page.inner_text("#block-txs")
    screenshot(page, "explorer-block")

    page.goto(f"/explorer/account/{sender.account}")
    assert page.inner_text("#account-balance") == str(funding["amount"])
    assert "transfer" in page.inner_text("#account-events")
    screenshot(page, "explorer-account")

    page.goto("/explorer/mempool")
    assert future.txid[:16] in page.inner_text("#mempool-txs")
    assert "future" in page.inner_text("#mempool-txs")
    screenshot(page, "explorer-mempool")

    page.get_by_label("Search a height, block hash, txid or account").fill(funding["txid"])
    page.get_by_role("button", name="Search").click()
    page.wait_for_selector("#txid")
    assert page.inner_text("#txid") == funding["txid"]


def test_an_unknown_block_page_says_why_in_words(
    page: Any, ui_node: Any, console_watch: Any
) -> None:
    console_watch.allow(r"status of 404")  # the page itself answers 404, as it should
    answer = page.goto("/explorer/block/999999")
    assert answer.status == 404
    alert = page.get_by_role("alert").inner_text()
    assert "no block" in alert and "block-unknown" in alert
    assert "Traceback" not in page.content()
