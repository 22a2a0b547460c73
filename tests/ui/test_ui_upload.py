"""The upload page (/upload) in Chromium against a real node: the browser hashes the file,
the node's dry run shows the signature or says in words why it refuses the file, and a
refused file is never signed, sent or registered; an accepted one is signed in the
browser, uploaded with a progress bar and followed until confirmed."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from ui_models import affine_model, create_browser_wallet, external_data_model

PASSPHRASE = "upload test passphrase"
CONFIRM_MS = 60_000
"""How long the page may take to see its tx mined (the node mines as soon as a tx waits)."""


def nothing_registered(ui_node: Any, name: str) -> None:
    """No catalog entry under `name`, and no registration waiting in the mempool."""
    client = ui_node.client
    assert client.get(f"/api/v1/models?q={name}")["total"] == 0
    pool = client.get("/api/v1/mempool")
    assert not [tx for tx in pool["txs"] if tx.get("contract") == "registry"], pool


@pytest.mark.parametrize(
    ("file_name", "content", "reason"),
    [
        ("notes.onnx", b"this is not a model at all\n" * 10, r"not an ONNX model|model-not-onnx"),
        ("external.onnx", external_data_model(seed=300), r"model-external-data"),
    ],
)
def test_a_rejected_upload_says_why_and_registers_nothing(
    page: Any,
    ui_node: Any,
    tmp_path: Path,
    console_watch: Any,
    file_name: str,
    content: bytes,
    reason: str,
) -> None:
    console_watch.allow(r"status of 4\d\d .*/api/v1/models/inspect")  # the dry run's refusal
    path = tmp_path / file_name
    path.write_bytes(content)
    page.goto("/upload")
    expect(page.locator("#upload-form")).to_have_attribute("data-ready", "true")
    page.get_by_label("ONNX model file (.onnx)").set_input_files(str(path))
    expect(page.locator("#upload-sha256")).to_have_text(hashlib.sha256(content).hexdigest())
    alert = page.locator("#upload-error")
    expect(alert).to_have_text(re.compile(reason))
    expect(alert).to_have_attribute("role", "alert")
    assert "Traceback" not in alert.inner_text()
    expect(page.locator("#upload-dryrun")).to_have_text("rejected")
    expect(page.locator("#upload-submit")).to_be_disabled()
    page.get_by_label("Name (lowercase letters, digits and dashes)").fill("rejected-model")
    page.locator("#upload-form").evaluate("form => form.requestSubmit()")
    expect(alert).to_contain_text("pick a model file the dry run accepts first")
    nothing_registered(ui_node, "rejected-model")


def test_an_upload_is_signed_in_the_browser_and_followed_until_confirmed(
    page: Any, ui_node: Any, tmp_path: Path, screenshot: Callable[[Any, str], Path]
) -> None:
    page.goto("/upload")
    account = create_browser_wallet(page, PASSPHRASE)
    ui_node.client.post("/api/v1/faucet", {"account": account})
    ui_node.mine(1)
    model = tmp_path / "Upload Test.onnx"
    model.write_bytes(affine_model(seed=301))
    page.reload()
    expect(page.locator("#upload-form")).to_have_attribute("data-ready", "true")
    page.get_by_label("ONNX model file (.onnx)").set_input_files(str(model))
    expect(page.locator("#upload-dryrun")).to_contain_text("accepted")
    expect(page.locator("#upload-signature-table")).to_contain_text("float32 [batch, 3]")
    expect(page.get_by_label("Name (lowercase letters, digits and dashes)")).to_have_value(
        "upload-test"
    )
    page.get_by_label("Description").fill("uploaded from the browser")
    page.get_by_label("Tags (comma-separated)").fill("upload-test, demo")
    page.get_by_label("Price per call (base units; 0 = free)").fill("250")
    page.get_by_role("button", name="Sign and upload").click()
    expect(page.locator("#upload-error")).to_be_hidden()
    expect(page.locator("#upload-status")).to_have_attribute(
        "data-confirmed", "true", timeout=CONFIRM_MS
    )
    expect(page.locator("#upload-progress")).to_have_js_property("value", 100)
    screenshot(page, "upload")
    entry = ui_node.client.get("/api/v1/models/upload-test/versions/1.0.0")
    assert entry["registrant"] == account
    assert entry["price"] == 250
    assert entry["split"] == {"owners": [[account, 9000]], "node": 1000}
    assert entry["metadata"]["tags"] == ["upload-test", "demo"]
    assert entry["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    page.locator("#upload-model-link").click()
    expect(page.locator("#model-description")).to_have_text("uploaded from the browser")
