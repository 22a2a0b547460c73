"""The browser wallet in a real Chromium against a real node process.

A new user creates a wallet in the page, gets dev coins from the faucet, sees balance,
nonce and history, sends coins, and exports the keystore, which the CLI imports and
Python opens to the same account; a CLI keystore imported in the page signs txs and
vouchers that the node and Python accept; the browser's canonical bytes and signatures
equal Python's. A request recorder shows that no request carried the seed, the JWK "d"
value or the passphrase.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from modelchain.chain.keys import KeyPair
from modelchain.chain.keystore import MIN_MEMLIMIT, MIN_OPSLIMIT, decrypt_key, encrypt_key
from modelchain.chain.tx import make_tx, tx_from_json, verify_tx_signature
from modelchain.contracts.voucher import verify_voucher
from modelchain.market.cli import CliContext, cli
from modelchain.market.client import sign_call
from modelchain.market.receipts import compute_receipt_message

PASSPHRASE = "correct horse battery staple ✓"
CONFIRM_SECONDS = 90


def open_wallet_page(page: Any) -> None:
    page.goto("/wallet")
    page.wait_for_selector("#wallet[data-ready=true]")


def create_wallet(page: Any, passphrase: str = PASSPHRASE) -> str:
    open_wallet_page(page)
    page.get_by_label("New passphrase", exact=True).fill(passphrase)
    page.get_by_label("New passphrase again").fill(passphrase)
    page.get_by_role("button", name="Create wallet").click()
    page.wait_for_selector("#wallet-open:not([hidden])")
    return page.inner_text("#account-link").strip()


def wait_for_text(page: Any, selector: str, needle: str) -> str:
    page.wait_for_function(
        "([selector, needle]) => (document.querySelector(selector)?.textContent || '')"
        ".includes(needle)",
        arg=[selector, needle],
        timeout=CONFIRM_SECONDS * 1000,
    )
    return page.inner_text(selector)


def send_coins(page: Any, to: str, amount: int) -> str:
    page.get_by_label("To account").fill(to)
    page.get_by_label("Amount (base units)").fill(str(amount))
    page.get_by_role("button", name="Sign and send").click()
    wait_for_text(page, "#send-result", " in block ")
    return page.get_attribute("#send-result", "data-txid")


def test_new_user_creates_a_wallet_gets_faucet_coins_and_exports_a_keystore_the_cli_opens(
    page: Any, ui_node: Any, screenshot: Any, request_recorder: Any, tmp_path: Path
) -> None:
    account = create_wallet(page)
    assert len(account) == 64
    screenshot(page, "wallet-created")

    page.get_by_role("button", name="faucet").click()
    wait_for_text(page, "#wallet-notice", "received")
    faucet_amount = int(page.get_attribute("#wallet", "data-faucet-amount"))
    wait_for_text(page, "#balance", str(faucet_amount))
    assert ui_node.client.account(account)["balance"] == faucet_amount
    wait_for_text(page, "#history tbody", "coin.")

    stranger = KeyPair.from_seed(bytes(range(32, 64))).account
    txid = send_coins(page, stranger, 1234)
    detail = ui_node.client.tx(txid)
    assert detail["receipt"]["status"] == "ok", detail["receipt"]
    signed = tx_from_json(detail["tx"])  # the browser's tx, as the node keeps it
    assert signed.sender == account and verify_tx_signature(signed)
    same_size = sign_call(KeyPair.generate(), signed.chain_id, 0, "coin", "transfer", signed.args)
    assert signed.fee == same_size.fee  # the least fee, found as market.client.sign_call does
    wait_for_text(page, "#nonce", "1")
    screenshot(page, "wallet-funded")

    page.get_by_label("Passphrase to export").fill(PASSPHRASE)
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Export keystore file").click()
    exported = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(exported)
    doc = json.loads(exported.read_text())
    key = decrypt_key(doc, PASSPHRASE)
    assert key.account == account

    home = tmp_path / "cli-home"
    result = CliRunner().invoke(
        cli,
        ["--home", str(home), "--json", "wallet", "import", "browser", str(exported)],
        obj=CliContext(),
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["account"] == account

    seed_hex = key.seed.hex()
    jwk_d = base64.urlsafe_b64encode(key.seed).rstrip(b"=").decode()
    for secret in (seed_hex, jwk_d, PASSPHRASE, PASSPHRASE.encode("utf-8").hex()):
        assert request_recorder.carrying(secret) == [], f"a request carried {secret[:6]}…"
    assert any("/api/v1/txs" in r.url for r in request_recorder.requests)  # it was watching


def test_a_cli_keystore_imported_in_the_page_signs_txs_and_vouchers_python_accepts(
    page: Any, ui_node: Any, request_recorder: Any
) -> None:
    key = KeyPair.from_seed(bytes(range(100, 132)))
    doc = encrypt_key(key, PASSPHRASE, opslimit=MIN_OPSLIMIT, memlimit=MIN_MEMLIMIT)
    funding = ui_node.client.post("/api/v1/faucet", {"account": key.account})
    ui_node.client.wait_for_confirmations(funding["txid"], 1, timeout=CONFIRM_SECONDS)

    open_wallet_page(page)
    page.get_by_label("…or paste the keystore JSON").fill(json.dumps(doc))
    page.get_by_label("Its passphrase").fill(PASSPHRASE)
    page.get_by_role("button", name="Import").click()
    page.wait_for_selector("#wallet-open:not([hidden])")
    assert page.inner_text("#account-link").strip() == key.account

    txid = send_coins(page, ui_node.account, 777)
    detail = ui_node.client.tx(txid)
    assert detail["receipt"]["status"] == "ok"
    assert verify_tx_signature(tx_from_json(detail["tx"]))

    channel = "ab" * 32
    sig = page.evaluate(
        "async ([chain, channel]) => (await import('/static/js/wallet.js'))"
        ".signVoucher(chain, channel, 5000)",
        [ui_node.chain_id, channel],
    )
    assert verify_voucher(key.account, ui_node.chain_id, channel, 5000, sig)
    for secret in (key.seed.hex(), PASSPHRASE):
        assert request_recorder.carrying(secret) == []


def test_a_wrong_passphrase_is_refused_in_words(page: Any, ui_node: Any) -> None:
    key = KeyPair.from_seed(bytes(range(200, 232)))
    doc = encrypt_key(key, PASSPHRASE, opslimit=MIN_OPSLIMIT, memlimit=MIN_MEMLIMIT)
    open_wallet_page(page)
    page.get_by_label("…or paste the keystore JSON").fill(json.dumps(doc))
    page.get_by_label("Its passphrase").fill("not it")
    page.get_by_role("button", name="Import").click()
    alert = page.get_by_role("alert").filter(has_text="passphrase")
    alert.wait_for()
    assert "wrong passphrase" in alert.inner_text()
    assert page.is_hidden("#wallet-open")


def test_python_and_the_browser_give_the_same_canonical_bytes_and_signatures(
    page: Any, ui_node: Any
) -> None:
    key = KeyPair.from_seed(bytes(range(32)))
    args = {"to": "07" * 32, "amount": 2**53 - 1, "memo": 'é \u2028 "q" \\ \x1f 𝄞', "n": [0, -1]}
    tx = make_tx(
        key, chain_id=ui_node.chain_id, nonce=3, fee=400, contract="coin", method="x", args=args
    )
    open_wallet_page(page)
    browser = page.evaluate(
        """async ([body, seedHex]) => {
            const c = await import('/static/js/canonical.js');
            const w = await import('/static/js/wallet.js');
            const prefix = c.unhex('302e020100300506032b657004220420');
            const pkcs8 = c.concatBytes(prefix, c.unhex(seedHex));
            const key = await crypto.subtle.importKey(
                'pkcs8', pkcs8, {name: 'Ed25519'}, false, ['sign']);
            const message = w.txSigningMessage(body);
            const sig = c.hex(await crypto.subtle.sign({name: 'Ed25519'}, key, message));
            return {body: c.hex(c.canonicalBytes(body)), message: c.hex(message), sig,
                    signed: c.hex(c.canonicalBytes({...body, sig}))};
        }""",
        [tx.body(), key.seed.hex()],
    )
    assert browser["message"] == tx.signing_message().hex()
    assert browser["sig"] == tx.sig
    assert browser["signed"] == tx.raw.hex()

    vectors = json.loads((Path(__file__).parents[2] / "docs/vectors/tx_vectors.json").read_text())
    cases = vectors["encoding"]["canonical"]
    got = page.evaluate(
        """async (values) => {
            const c = await import('/static/js/canonical.js');
            return values.map((v) => c.hex(c.canonicalBytes(v)));
        }""",
        [case["value"] for case in cases],
    )
    assert got == [case["canonical_hex"] for case in cases]
    refused = page.evaluate(
        """async () => {
            const c = await import('/static/js/canonical.js');
            return [1.5, -0, 2 ** 53, '\\ud800', {'é': 1}].map((v) => {
                try { c.canonicalJSON(v); return 'accepted'; } catch { return 'refused'; }
            });
        }"""
    )
    assert refused == ["refused"] * 5


def test_the_unlocked_wallet_stays_unlocked_across_pages_of_the_tab_until_locked(
    page: Any, ui_node: Any
) -> None:
    create_wallet(page)
    page.goto("/explorer")
    page.goto("/wallet")
    page.wait_for_selector("#wallet[data-ready=true]")
    assert page.is_visible("#wallet-open")
    page.get_by_role("button", name="Lock").click()
    page.wait_for_selector("#wallet-locked:not([hidden])")
    page.get_by_label("Passphrase", exact=True).fill(PASSPHRASE)
    page.get_by_role("button", name="Unlock").click()
    page.wait_for_selector("#wallet-open:not([hidden])")
    assert "unlocked" in page.inner_text("#wallet-badge")


def test_a_receipt_signed_in_python_verifies_in_the_browser_and_a_changed_one_does_not(
    page: Any, ui_node: Any
) -> None:
    node_key = KeyPair.from_seed(bytes(range(32)))
    receipt = {
        "version": 1,
        "node": node_key.account,
        "chain_id": ui_node.chain_id,
        "height": 42,
        "model": "summer",
        "model_version": "1",
        "model_sha256": "93" * 32,
        "input_hash": "c9" * 32,
        "output_hash": "e0" * 32,
        "price": 1000,
        "payment": {"kind": "channel", "channel": "69" * 32, "amount": 3000},
        "request_id": "call-é",
    }
    receipt["sig"] = node_key.sign(compute_receipt_message(receipt)).hex()
    open_wallet_page(page)
    verdicts = page.evaluate(
        """async ([receipt, node]) => {
            const r = await import('/static/js/receipts.js');
            return [
                await r.verifyReceipt(receipt, node),
                await r.verifyReceipt({...receipt, price: 1001}, node),
                await r.verifyReceipt(receipt, '00'.repeat(32)),
                (await r.verifyReceiptBoth(receipt, node)).node,
            ];
        }""",
        [receipt, node_key.account],
    )
    assert verdicts[0] == {"valid": True, "reason": None}
    assert verdicts[1]["valid"] is False and "signature" in verdicts[1]["reason"]
    assert verdicts[2]["valid"] is False
    assert verdicts[3]["valid"] is True  # the node's cross-check agrees
