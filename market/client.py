"""A small HTTP client of a node's JSON API, and tx building for wallets.

The CLI and the functional tests use it; it speaks only to /api/v1 and /v2
with the standard library, and turns the node's JSON errors into
`NodeError`s carrying the same code. A client of an untrusted node (a peer)
bounds what it reads: bytes and seconds per answer, and a flag that cancels a
read in progress.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, BinaryIO

from modelchain.chain.errors import ModelchainError
from modelchain.chain.execute import STATUS_FAILED
from modelchain.chain.keys import KeyPair
from modelchain.chain.tx import Tx, make_tx

DEFAULT_FEE_PER_BYTE = 1
READ_CHUNK_BYTES = 64 * 1024
"""What one read of a bounded answer asks of the socket."""


class NodeError(ModelchainError):
    """The node answered with an error (its code is kept) or could not be reached."""

    code = "node-error"

    def __init__(self, message: str, code: str | None = None, status: int = 0, **detail: Any):
        super().__init__(message, **detail)
        if code:
            self.code = code
        self.status = status


class NodeClient:
    """`timeout` bounds connecting and each socket read. With `max_answer_bytes`,
    `answer_seconds` or `cancelled` set, an answer is read in chunks and given up
    (NodeError `node-answer-too-large`, `node-timeout`, `node-cancelled`) once it
    is larger, slower or no longer wanted; without them it is read whole."""

    def __init__(
        self,
        url: str,
        timeout: float = 30.0,
        *,
        max_answer_bytes: int | None = None,
        answer_seconds: float | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.max_answer_bytes = max_answer_bytes
        self.answer_seconds = answer_seconds
        self.cancelled = cancelled

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        data: bytes | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> Any:
        payload = data
        if body is not None:
            payload = json.dumps(body).encode("utf-8")
        try:
            request = urllib.request.Request(self.url + path, data=payload, method=method)
        except ValueError as exc:
            raise self._bad_url(exc) from None
        if payload is not None:
            request.add_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = self._read(response, path, started)
                if response.headers.get_content_type() != "application/json":
                    return raw
                try:
                    return json.loads(raw)
                except (ValueError, RecursionError) as exc:
                    raise NodeError(
                        f"{self.url}{path} answered with malformed JSON: {exc}",
                        "node-bad-answer",
                        response.status,
                    ) from None
        except urllib.error.HTTPError as exc:
            try:
                raw = self._read(exc, path, started)
            except (OSError, http.client.HTTPException) as err:
                raise NodeError(
                    f"HTTP {exc.code} from {self.url}{path}, its body broke off: {err}",
                    "node-unreachable",
                ) from err
            try:
                body = json.loads(raw)
                error = body["error"]
                if isinstance(error, str):  # /v2 speaks the Open Inference Protocol's shape
                    error = {"message": error} | {k: v for k, v in body.items() if k != "error"}
                code, message = error["code"], error["message"]
            except (ValueError, KeyError, TypeError, RecursionError):
                raise NodeError(f"HTTP {exc.code} from {self.url}{path}", status=exc.code) from exc
            detail = {k: v for k, v in error.items() if k not in ("code", "message")}
            raise NodeError(message, code, exc.code, **detail) from exc
        except http.client.InvalidURL as exc:  # the URL, not the node
            raise self._bad_url(exc) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            # HTTPException: an answer cut off (IncompleteRead) or a garbled status line
            raise NodeError(
                f"cannot reach the node at {self.url}: {exc}", "node-unreachable"
            ) from exc

    def _bad_url(self, exc: Exception) -> NodeError:
        return NodeError(
            f"{self.url!r} is not a node URL (http://HOST:PORT): {exc}", "node-bad-url"
        )

    def _read(self, response: Any, path: str, started: float) -> bytes:
        """The answer's body, within this client's bounds; raises NodeError."""
        if self.max_answer_bytes is None and self.answer_seconds is None and not self.cancelled:
            return response.read()
        deadline = None if self.answer_seconds is None else started + self.answer_seconds
        chunks: list[bytes] = []
        size = 0
        while True:
            if self.cancelled is not None and self.cancelled():
                raise NodeError(f"reading {self.url}{path} was cancelled", "node-cancelled")
            if deadline is not None and time.monotonic() > deadline:
                raise NodeError(
                    f"{self.url}{path} took more than {self.answer_seconds:.0f} s to answer",
                    "node-timeout",
                )
            chunk = response.read1(READ_CHUNK_BYTES)  # one socket read: never more
            if not chunk:
                if getattr(response, "length", None):  # bytes the headers promised are missing
                    raise NodeError(
                        f"the answer of {self.url}{path} broke off {response.length} bytes short",
                        "node-unreachable",
                    )
                return b"".join(chunks)
            size += len(chunk)
            if self.max_answer_bytes is not None and size > self.max_answer_bytes:
                raise NodeError(
                    f"{self.url}{path} answered more than {self.max_answer_bytes} bytes",
                    "node-answer-too-large",
                    getattr(response, "status", 0) or 0,
                )
            chunks.append(chunk)

    def open_stream(self, path: str) -> BinaryIO:
        """A GET's body as an open stream, for answers too large to hold (model files):
        the reader bounds what it reads. Raises OSError (urllib's HTTPError for an
        error status), as the stream's reads do."""
        try:
            return urllib.request.urlopen(self.url + path, timeout=self.timeout)
        except http.client.HTTPException as exc:
            raise ConnectionError(f"{self.url}{path}: {exc}") from exc

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body)

    # --- chain ---------------------------------------------------------------

    def chain_info(self) -> dict[str, Any]:
        return self.get("/api/v1/chain")

    def account(self, account: str) -> dict[str, Any]:
        return self.get(f"/api/v1/accounts/{account}")

    def submit_tx(self, tx: Tx) -> dict[str, Any]:
        return self.post("/api/v1/txs", tx.to_json())

    def tx(self, txid: str) -> dict[str, Any]:
        return self.get(f"/api/v1/txs/{txid}")

    def call(
        self,
        key: KeyPair,
        contract: str,
        method: str,
        args: dict[str, Any],
        *,
        fee: int | None = None,
    ) -> Tx:
        """Sign a call with the next pending nonce and submit it; returns the tx."""
        info = self.chain_info()
        nonce = self.account(key.account)["pending_nonce"]
        tx = sign_call(key, info["chain_id"], nonce, contract, method, args, fee=fee)
        self.submit_tx(tx)
        return tx

    def wait_for_confirmations(
        self,
        txid: str,
        confirmations: int = 1,
        timeout: float = 120.0,
        progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the tx has `confirmations`; raises NodeError `wait-timeout` on
        timeout, and `tx-failed` as soon as a block holds it as failed (its call raised:
        the fee and nonce are taken, nothing else changed)."""
        deadline = time.monotonic() + timeout
        first: int | None = None
        while True:
            detail = self.tx(txid)
            outcome = detail.get("receipt") or {}
            if outcome.get("status") == STATUS_FAILED:
                raise NodeError(
                    f"tx {txid} failed in block {outcome['height']}: "
                    f"{outcome['message']} ({outcome['code']}); its fee {outcome['fee']} "
                    "was taken, nothing else changed",
                    "tx-failed",
                    txid=txid,
                    tx_code=outcome["code"],
                    height=outcome["height"],
                    fee=outcome["fee"],
                )
            if progress is not None:
                progress(detail)
            count = detail.get("confirmations", 0)
            first = count if first is None else first
            if count >= confirmations:
                return detail
            if time.monotonic() > deadline:
                stalled = (
                    "; no block came in that time (a dev node mines only while txs wait)"
                    if count == first
                    else ""
                )
                raise NodeError(
                    f"tx {txid} has {count} of {confirmations} confirmations after "
                    f"{timeout:.0f} s{stalled}",
                    "wait-timeout",
                    txid=txid,
                    confirmations=count,
                )
            time.sleep(0.25)


def sign_call(
    key: KeyPair,
    chain_id: str,
    nonce: int,
    contract: str,
    method: str,
    args: dict[str, Any],
    *,
    fee: int | None = None,
    fee_per_byte: int = DEFAULT_FEE_PER_BYTE,
) -> Tx:
    """A signed tx; with no `fee`, the least fee that meets `fee_per_byte` for its size."""
    call = {"chain_id": chain_id, "nonce": nonce, "contract": contract, "method": method}
    if fee is not None:
        return make_tx(key, fee=fee, args=args, **call)
    fee = 1
    while True:
        tx = make_tx(key, fee=fee, args=args, **call)
        needed = tx.size * fee_per_byte
        if fee >= needed:
            return tx
        fee = needed + 8 * fee_per_byte  # room for the fee's own digits
