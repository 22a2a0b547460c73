"""The model page (/models/<name>[/<version>]) in Chromium against a real node: what the
chain says about a version, user text shown as text, the download, and "try it": the form
built from the input signature (JSON arrays, and an image picker for image-shaped inputs),
with the request hash computed in the browser equal to the node's."""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import expect
from ui_models import affine_model, image_model, register_by_dev_wallet

from modelchain.market.tensors import compute_request_hash

XSS = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def free_models(ui_node: Any) -> dict[str, str]:
    """A free affine model whose description holds a script tag, and a free image model."""
    client = ui_node.client
    txids = {
        "tryit-affine": register_by_dev_wallet(
            client, affine_model(seed=200), name="tryit-affine", description=XSS, tags=("t",)
        ),
        "tryit-image": register_by_dev_wallet(
            client, image_model(seed=201), name="tryit-image", description="channel means"
        ),
    }
    for txid in txids.values():
        client.wait_for_confirmations(txid, 1, timeout=60)
    return txids


def png_bytes(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour RGB PNG, written by hand (no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_a_description_holding_a_script_tag_is_shown_as_text_and_never_runs(
    page: Any, free_models: dict[str, str], screenshot: Callable[[Any, str], Path]
) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto("/models/tryit-affine")
    expect(page.locator("#model-description")).to_have_text(XSS)
    assert page.locator("#model-description script").count() == 0
    page.goto("/?q=tryit-affine")
    expect(page.locator('li.card[data-ref="tryit-affine@1"] .description')).to_have_text(XSS)
    assert dialogs == []


def test_model_page_shows_terms_registration_signature_and_download(
    page: Any, ui_node: Any, free_models: dict[str, str], screenshot: Callable[[Any, str], Path]
) -> None:
    detail = ui_node.client.get("/api/v1/models/tryit-affine/versions/1")
    page.goto("/models/tryit-affine/1")
    expect(page.locator("h1")).to_contain_text("tryit-affine")
    expect(page.locator("#model-license")).to_have_text("MIT")
    expect(page.locator("#model-price")).to_contain_text("0")
    expect(page.locator("#model-sha256")).to_have_text(detail["sha256"])
    expect(page.locator("#registration-tx")).to_have_text(free_models["tryit-affine"])
    expect(page.locator("#model-signature")).to_contain_text("float32 [batch, 3]")
    expect(page.locator("#model-versions li")).to_have_count(1)
    expect(page.locator("#calls-chart-caption")).to_contain_text("No paid calls")
    with page.expect_download() as download:
        page.locator("#model-download").click()
    assert download.value.suggested_filename == "tryit-affine-1.onnx"
    assert Path(download.value.path()).read_bytes() == affine_model(seed=200)
    screenshot(page, "model")


def test_try_it_runs_a_free_model_from_json_arrays(page: Any, free_models: dict[str, str]) -> None:
    page.goto("/models/tryit-affine")
    expect(page.locator("#tryit-form")).to_have_attribute("data-ready", "true")
    page.get_by_label(re.compile("^x — float32")).fill("[[1, 2, 3], [0.5, -1, 0]]")
    page.get_by_role("button", name="Run").click()
    output = page.locator('#tryit-outputs .output[data-name="y"] pre')
    expect(output).to_have_text("[202,204,206,201,198,200]")
    expect(page.locator("#receipt-verdict")).to_have_text("Free call: no receipt.")


def test_try_it_image_picker_resizes_the_image_to_the_input_shape(
    page: Any, free_models: dict[str, str], tmp_path: Path
) -> None:
    image = tmp_path / "red.png"
    image.write_bytes(png_bytes(32, 20, (255, 0, 0)))
    page.goto("/models/tryit-image")
    expect(page.locator("#tryit-form")).to_have_attribute("data-ready", "true")
    page.get_by_label(re.compile("^Or pick an image for image")).set_input_files(str(image))
    expect(page.get_by_label(re.compile("^image — float32"))).to_have_attribute(
        "placeholder", re.compile("1×3×4×4")
    )
    page.get_by_role("button", name="Run").click()
    output = page.locator('#tryit-outputs .output[data-name="mean"] pre')
    expect(output).to_contain_text("[")
    means = json.loads(output.inner_text())
    assert means == pytest.approx([1.201, 0.201, 0.201], abs=1e-6)


def test_an_unknown_model_page_says_so_in_words(
    page: Any, ui_node: Any, console_watch: Any
) -> None:
    console_watch.allow(r"status of 404 .*/models/no-such-model")
    page.goto("/models/no-such-model")
    expect(page.get_by_role("alert")).to_contain_text("no-such-model")


def test_the_browser_request_hash_equals_the_nodes_for_every_browser_datatype(
    page: Any, ui_node: Any
) -> None:
    sha = "ab" * 32
    inputs = [
        {"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [[0.1, -2], [1e-7, 3.5]]},
        {"name": "ids", "datatype": "INT64", "shape": [2], "data": [-(2**53) + 1, 7]},
        {"name": "flags", "datatype": "BOOL", "shape": [2], "data": [True, False]},
        {"name": "words", "datatype": "BYTES", "shape": [2], "data": ["zebra", "café ☕"]},
        {"name": "d", "datatype": "FP64", "shape": [1], "data": [0.1]},
        {"name": "u", "datatype": "UINT8", "shape": [3], "data": [0, 7, 255]},
        {"name": "h", "datatype": "FP16", "shape": [2], "data": [0.1, 65504]},
    ]
    page.goto("/audit")
    browser_hash = page.evaluate(
        """async ([sha, inputs]) => {
            const tryit = await import("/static/js/tryit.js");
            return tryit.computeRequestHash(sha, inputs);
        }""",
        [sha, inputs],
    )
    dtypes = {"FP32": np.float32, "INT64": np.int64, "BOOL": np.bool_, "BYTES": np.object_,
              "FP64": np.float64, "UINT8": np.uint8, "FP16": np.float16}  # fmt: skip
    arrays = {i["name"]: np.array(i["data"], dtype=dtypes[i["datatype"]]) for i in inputs}
    assert browser_hash == compute_request_hash(sha, arrays)
