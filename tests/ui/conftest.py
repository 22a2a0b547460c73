"""Fixtures of the browser tests: one real node process, Debian's Chromium, watched pages.

The node runs as its own process (`python -m modelchain.entry node start --network regtest
--port 0 --mine`, tests/node_process.py) for the whole session. Chromium is
/usr/bin/chromium driven by Playwright; every page fails its test on a page error or a
console error (`console_watch.allow(pattern)` admits an expected one). `screenshot(page,
name)` writes PNGs under artifacts/screenshots/ (or $MODELCHAIN_ARTIFACTS), a folder
printed once at the end of the run. Without Chromium or Playwright the UI tests are
skipped with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from node_process import NodeProcess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PAGE_TIMEOUT_MS = 60_000
"""Playwright's wait for one step (Argon2id in the page takes a moment on a busy machine)."""
REPO_ROOT = Path(__file__).resolve().parents[2]
_SCREENSHOTS: list[Path] = []

try:
    from playwright.sync_api import (
        Browser,
        BrowserContext,
        ConsoleMessage,
        Page,
        Request,
        sync_playwright,
    )
except ImportError:  # pragma: no cover - the test extras install it
    sync_playwright = None  # type: ignore[assignment]


def artifacts_root() -> Path:
    return Path(os.environ.get("MODELCHAIN_ARTIFACTS") or REPO_ROOT / "artifacts")


# --- the node process ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def ui_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """One regtest node process, mining on request, for the whole UI session."""
    _require_browser()
    node = NodeProcess.start(tmp_path_factory.mktemp("ui-node") / "data")
    try:
        yield node
    finally:
        node.stop()
        if node.proc.returncode not in (0, -15):
            print(f"node exited {node.proc.returncode}; its stderr:\n{node.stderr()}")


# --- the browser ----------------------------------------------------------------------------


def _require_browser() -> None:
    if sync_playwright is None:
        pytest.skip("the playwright package is not installed (pip install -e '.[test]')")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium; .ci/run installs it)")


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    _require_browser()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def context(browser: Browser, ui_node: NodeProcess) -> Iterator[BrowserContext]:
    """A fresh browser profile (empty storage: no wallet) whose relative URLs are the node's."""
    made = browser.new_context(base_url=ui_node.url, accept_downloads=True)
    made.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        yield made
    finally:
        made.close()


@dataclass
class ConsoleWatch:
    """Page errors and console errors seen; `allow(pattern)` admits an expected one."""

    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console error: {message.text} at {message.location}")

    def on_page_error(self, error: Exception) -> None:
        self.errors.append(f"page error: {error}")

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


@pytest.fixture
def console_watch() -> ConsoleWatch:
    return ConsoleWatch()


@pytest.fixture
def page(context: BrowserContext, console_watch: ConsoleWatch) -> Iterator[Page]:
    """A page of `context`; the test fails on any page error or console error it shows."""
    made = context.new_page()
    made.on("console", console_watch.on_console)
    made.on("pageerror", console_watch.on_page_error)
    yield made
    unexpected = console_watch.unexpected()
    if unexpected:
        pytest.fail("the page logged errors:\n" + "\n".join(unexpected))


@dataclass
class RecordedRequest:
    url: str
    method: str
    body: bytes


@dataclass
class RequestRecorder:
    """Every request the watched pages made: URL, method and body bytes."""

    requests: list[RecordedRequest] = field(default_factory=list)

    def on_request(self, request: Request) -> None:
        try:
            body = request.post_data_buffer or b""
        except Exception:  # a body Playwright cannot read back (a stream): keep its URL
            body = b""
        self.requests.append(RecordedRequest(request.url, request.method, body))

    def carrying(self, secret: str | bytes) -> list[str]:
        """Requests whose URL or body holds `secret` (compared ignoring ASCII case, so hex
        in either case counts), as "METHOD URL"."""
        needle = (secret.encode("utf-8") if isinstance(secret, str) else secret).lower()
        found = []
        for recorded in self.requests:
            haystack = recorded.url.encode("utf-8") + b"\n" + recorded.body
            if needle in haystack.lower():
                found.append(f"{recorded.method} {recorded.url}")
        return found


@pytest.fixture
def request_recorder(context: BrowserContext) -> RequestRecorder:
    """Records every request of every page of `context` (the whole test's browsing)."""
    recorder = RequestRecorder()
    context.on("request", recorder.on_request)
    return recorder


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    folder = artifacts_root() / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def screenshot(artifacts_dir: Path) -> Callable[[Page, str], Path]:
    """`screenshot(page, "wallet")` writes artifacts/screenshots/wallet.png (full page)."""

    def take(page: Page, name: str) -> Path:
        path = artifacts_dir / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png"
        page.screenshot(path=str(path), full_page=True)
        _SCREENSHOTS.append(path)
        return path

    return take


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _SCREENSHOTS:
        folder = _SCREENSHOTS[0].parent
        terminalreporter.write_line(f"UI screenshots ({len(_SCREENSHOTS)}) written to {folder}")


def copy_artifact(source: Path, name: str) -> Path:
    """Keep a file the tests made (an exported keystore ...) beside the screenshots."""
    target = artifacts_root() / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target
