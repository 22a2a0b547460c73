"""The pages' security: the exact Content-Security-Policy, nosniff, no framing, no inline
script/style/handler in any page's HTML, a favicon, user text escaped, and no console error
on any page in a real Chromium."""

from __future__ import annotations

import urllib.error
import urllib.request
from html.parser import HTMLParser
from typing import Any

import pytest

CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
    "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)


def pages(ui_node: Any) -> list[str]:
    """Every page of the UI, with real ids from the running chain."""
    chain = ui_node.client.chain_info()
    block = ui_node.client.get(f"/api/v1/blocks/{chain['tip']}")
    found = [
        "/",
        "/upload",
        "/wallet",
        "/explorer",
        "/explorer/mempool",
        "/explorer/block/0",
        f"/explorer/block/{chain['tip']}",
        f"/explorer/tx/{block['txs'][0]['txid']}",
        f"/explorer/account/{ui_node.account}",
        "/audit",
        f"/audit?account={ui_node.account}",
    ]
    models = ui_node.client.get("/api/v1/models").get("models", [])
    if models:
        found.append(f"/models/{models[0]['name']}")
    return found


def fetch(url: str) -> tuple[int, dict[str, str], str]:
    """Status, headers and body text (undecodable bytes replaced) of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, dict(answer.headers), answer.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode("utf-8", "replace")


class InlineFinder(HTMLParser):
    """Collects what the CSP would refuse: inline scripts, style attributes and elements,
    on* handler attributes, javascript: URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "script" and "src" not in named and named.get("type") != "application/json":
            self.problems.append(f"inline <script {attrs}>")
        if tag == "style":
            self.problems.append("<style> element")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...> handler")
            if name == "style":
                self.problems.append(f"<{tag} style=...>")
            if value and value.strip().lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}=javascript:...>")


@pytest.fixture(scope="module")
def ui_pages(ui_node: Any) -> list[str]:
    ui_node.mine(1)
    return pages(ui_node)


def test_every_page_answers_with_the_exact_csp_nosniff_and_no_framing(
    ui_node: Any, ui_pages: list[str]
) -> None:
    for path in ui_pages:
        status, headers, _ = fetch(ui_node.url + path)
        assert status == 200, path
        assert headers["Content-Security-Policy"] == CSP, path
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["Referrer-Policy"] == "no-referrer", path
        assert headers["X-Frame-Options"] == "DENY", path


def test_scripts_styles_and_api_answers_are_nosniff_with_their_own_types(ui_node: Any) -> None:
    for path, kind in [
        ("/static/js/wallet.js", "javascript"),
        ("/static/vendor/libsodium/libsodium-wrappers.mjs", "javascript"),
        ("/static/css/site.css", "text/css"),
        ("/api/v1/chain", "application/json"),
    ]:
        status, headers, _ = fetch(ui_node.url + path)
        assert status == 200, path
        assert kind in headers["Content-Type"], (path, headers["Content-Type"])
        assert headers["X-Content-Type-Options"] == "nosniff", path


def test_no_page_has_inline_scripts_styles_or_handlers(ui_node: Any, ui_pages: list[str]) -> None:
    for path in ui_pages:
        _, _, html = fetch(ui_node.url + path)
        finder = InlineFinder()
        finder.feed(html)
        assert finder.problems == [], (path, finder.problems)


def test_a_favicon_is_served(ui_node: Any) -> None:
    status, headers, _ = fetch(ui_node.url + "/favicon.ico")
    assert status == 200
    assert headers["Content-Type"].startswith("image/")


def test_no_page_logs_a_console_error_in_chromium(page: Any, ui_pages: list[str]) -> None:
    for path in ui_pages:
        answer = page.goto(path)
        assert answer.status == 200, path
        page.wait_for_load_state("networkidle")
    # the page fixture fails the test on any console or page error seen on the way


def test_the_vendored_library_ships_with_its_license(ui_node: Any) -> None:
    status, _, text = fetch(ui_node.url + "/static/vendor/libsodium/LICENSE")
    assert status == 200
    assert "Permission to use, copy, modify" in text  # the ISC license
