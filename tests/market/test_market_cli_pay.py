# ruff: noqa: F811 - the fixtures imported below are test parameters here
"""`modelchain infer`, `channel ...` and `receipt verify` against a real node process: what
the CLI refuses before it signs (so no fee is spent on a tx the chain would fail), and
how a wait on a tx that failed on-chain ends.

The node process and the CLI runner are test_market_cli_models.py's (one regtest node
for the module, mining; each test its own CLI home, using the funded dev wallet).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from factories import key_for
from node_process import NodeProcess
from test_market_cli_models import model_file, node_process, output_json, run  # noqa: F401

from modelchain.chain.keys import KeyPair
from modelchain.chain.keystore import Wallets, encrypt_key
from modelchain.contracts.channel import CHANNEL
from modelchain.market.cli import PASSPHRASE_ENV, cli
from modelchain.market.client import NodeClient, NodeError, sign_call
from modelchain.market.config import dev_wallet

DEV = dev_wallet()
REQUEST = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [3], "data": [1, 2, 3]}]}
PRICE = 40


def upload(run: Callable[..., Result], tmp_path: Path, name: str, price: int) -> None:
    path = model_file(tmp_path, seed=len(name) * 10 + price)
    args = ["model", "upload", str(path), "--name", name, "--version", "1"]
    output_json(run("--json", *args, "--price", str(price), "--wait", "1"))


@pytest.fixture(scope="module")
def models(node_process: NodeProcess, tmp_path_factory: pytest.TempPathFactory) -> None:
    """`pay-priced@1` at PRICE and `pay-free@1` at 0, registered once for the module."""
    work = tmp_path_factory.mktemp("pay-models")
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        base = ["--node", node_process.url, "--home", str(work / "home")]
        return runner.invoke(cli, [*base, *args], catch_exceptions=False)

    upload(invoke, work, "pay-priced", PRICE)
    upload(invoke, work, "pay-free", 0)


@pytest.fixture
def request_file(tmp_path: Path) -> Path:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(REQUEST))
    return path


@pytest.fixture
def unsigned(run: Callable[..., Result], node_process: NodeProcess) -> Callable[..., Result]:
    """Runs the CLI and checks it signed and sent nothing: the dev wallet's next nonce
    is unchanged."""
    client = NodeClient(node_process.url)

    def invoke(*args: str) -> Result:
        before = client.account(DEV.account)["pending_nonce"]
        result = run(*args)
        assert client.account(DEV.account)["pending_nonce"] == before, result.output
        return result

    return invoke


def open_channel(run: Callable[..., Result], blocks: int = 50) -> str:
    args = ["channel", "open", "pay-priced@1", "--deposit", str(10 * PRICE)]
    opened: dict[str, Any] = output_json(
        run("--json", *args, "--blocks", str(blocks), "--wait", "1")
    )
    return opened["channel"]


def refused_with(result: Result, code: str) -> None:
    """The CLI failed with exit 1 and this error code."""
    assert result.exit_code == 1, result.output
    assert f"Error [{code}]" in result.stderr


# --- refused before anything is signed ----------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "code"),
    [
        ("pay-priced@9", "catalog-unknown-version"),
        ("pay-nobody@1", "catalog-unknown-model"),
        ("pay-free@1", "channel-free-version"),
    ],
)
def test_a_channel_the_contract_would_refuse_is_refused_before_signing(
    unsigned: Callable[..., Result], models: None, ref: str, code: str
) -> None:
    result = unsigned("channel", "open", ref, "--deposit", "1000", "--blocks", "50")
    refused_with(result, code)


def test_a_channel_too_short_for_the_nodes_margin_is_a_usage_error(
    unsigned: Callable[..., Result], models: None, node_process: NodeProcess
) -> None:
    margin = NodeClient(node_process.url).chain_info()["channel_margin_blocks"]
    too_short = str(margin + 1)
    result = unsigned("channel", "open", "pay-priced@1", "--deposit", "9", "--blocks", too_short)
    assert result.exit_code == 2
    assert "--blocks" in result.output and f"at least {margin + 2}" in result.output


@pytest.mark.parametrize(
    "ref", ["pay-priced@", "@1", "", "pay-priced?x@1", "pay-priced@1?x", "my model@1", "Pay@1"]
)
def test_a_name_or_version_the_registry_cannot_hold_is_a_usage_error_and_pays_nothing(
    unsigned: Callable[..., Result], models: None, request_file: Path, ref: str
) -> None:
    result = unsigned("infer", ref, "--input", str(request_file))
    assert result.exit_code == 2
    assert "NAME or NAME@VERSION" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["infer", "pay-priced@1", "--channel", "CHANNEL_ID"],
        ["channel", "show", "CHANNEL_ID"],
        [
            "channel",
            "open",
            "pay-priced@1",
            "--deposit",
            "9",
            "--blocks",
            "50",
            "--node-account",
            "xyz",
        ],
        ["receipt", "verify", "{file}", "--node-account", "xyz"],
    ],
    ids=["infer-channel", "channel-show", "open-node-account", "verify-node-account"],
)
def test_a_malformed_channel_id_or_account_is_a_usage_error(
    unsigned: Callable[..., Result], request_file: Path, args: list[str]
) -> None:
    args = [str(request_file) if arg == "{file}" else arg for arg in args]
    if args[0] == "infer":
        args += ["--input", str(request_file)]
    result = unsigned(*args)
    assert result.exit_code == 2
    assert "not a channel id" in result.output or "not an account" in result.output


# --- channels opened here -------------------------------------------------------------------


def test_a_channel_opened_here_pays_from_zero_and_refuses_an_early_refund(
    run: Callable[..., Result],
    unsigned: Callable[..., Result],
    models: None,
    request_file: Path,
) -> None:
    channel = open_channel(run)
    paid = run("infer", "pay-priced@1", "--input", str(request_file), "--channel", channel)
    assert paid.exit_code == 0, paid.output
    assert "no record of channel" not in paid.stderr  # this CLI opened it: nothing signed yet
    assert f"paid {PRICE} by channel {channel} (cumulative {PRICE})" in paid.stdout
    for field in ("model sha256", "input hash", "output hash", "sig"):
        assert field in paid.stdout  # the receipt, not only its id

    early = unsigned("channel", "refund", channel)
    refused_with(early, "channel-not-expired")


def test_waiting_on_a_tx_that_failed_on_chain_names_its_failure(
    run: Callable[..., Result],
    models: None,
    node_process: NodeProcess,
) -> None:
    channel = open_channel(run)
    client = NodeClient(node_process.url)
    tx = client.call(DEV, CHANNEL, "refund", {"channel": channel})  # the CLI would not send it
    with pytest.raises(NodeError) as err:
        client.wait_for_confirmations(tx.txid, 1, timeout=60)
    assert err.value.code == "tx-failed"
    assert err.value.detail["tx_code"] == "channel-not-expired"
    assert err.value.detail["fee"] == tx.fee
    assert f"tx {tx.txid} failed" in err.value.message
    assert f"its fee {tx.fee} was taken" in err.value.message
    shown = run("chain", "tx", tx.txid)
    assert shown.exit_code == 0, shown.output
    assert "receipt: failed channel-not-expired: channel expires at" in shown.stdout
    assert f"(fee {tx.fee} taken, nothing else changed)" in shown.stdout


def test_a_wait_that_sees_no_new_block_says_the_dev_node_mines_only_on_work(
    run: Callable[..., Result], models: None, node_process: NodeProcess
) -> None:
    client = NodeClient(node_process.url)
    txid = mined(client, DEV, "coin", "transfer", {"to": DEV.account, "amount": 1})
    with pytest.raises(NodeError) as err:
        client.wait_for_confirmations(txid, 50, timeout=1)
    assert err.value.code == "wait-timeout"
    assert "no block came in that time (a dev node mines only while txs wait)" in str(err.value)


# --- printing a request ---------------------------------------------------------------------


def test_print_request_for_a_free_model_prints_the_request_not_an_answer(
    run: Callable[..., Result],
    models: None,
    request_file: Path,
) -> None:
    result = run("infer", "pay-free@1", "--input", str(request_file), "--print-request")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == REQUEST | {"parameters": {}}
    assert "is free: the request needs no payment" in result.stderr


def test_print_request_without_a_version_pays_the_version_the_node_would_run(
    run: Callable[..., Result],
    models: None,
    request_file: Path,
) -> None:
    result = run("infer", "pay-priced", "--input", str(request_file), "--print-request")
    assert result.exit_code == 0, result.output
    tx = json.loads(result.stdout)["parameters"]["payment"]["tx"]
    assert (tx["method"], tx["args"]["version"], tx["args"]["amount"]) == ("pay", "1", PRICE)


# --- top-ups and refunds: the contract's rules, checked before signing -------------------------


def mined(
    client: NodeClient, key: KeyPair, contract: str, method: str, args: dict[str, Any]
) -> str:
    """Sign and send a call as `key` (not through the CLI's checks); its txid once mined ok."""
    tx = client.call(key, contract, method, args)
    client.wait_for_confirmations(tx.txid, 1, timeout=60)
    return tx.txid


def test_a_topup_that_changes_nothing_is_refused_before_signing(
    run: Callable[..., Result], unsigned: Callable[..., Result], models: None
) -> None:
    channel = open_channel(run)
    result = unsigned("channel", "topup", channel)  # --deposit 0, expiry unchanged
    refused_with(result, "channel-topup-noop")


def test_only_the_payer_may_top_up_or_refund_and_the_cli_says_so_first(
    unsigned: Callable[..., Result], models: None, node_process: NodeProcess
) -> None:
    client = NodeClient(node_process.url)
    other = key_for("cli-pay-other-payer")
    mined(client, DEV, "coin", "transfer", {"to": other.account, "amount": 10_000})
    height = client.chain_info()["height"]
    opening = {"model": "pay-priced", "version": "1", "node": client.chain_info()["node_account"],
               "deposit": 1_000, "expiry": height + 50}  # fmt: skip
    channel = mined(client, other, CHANNEL, "open", opening)
    for args in (["topup", channel, "--deposit", "5"], ["refund", channel]):
        result = unsigned("channel", *args)
        refused_with(result, "channel-not-payer")


def test_a_topup_whose_expiry_is_not_after_the_next_block_is_refused_before_signing(
    unsigned: Callable[..., Result], models: None, node_process: NodeProcess
) -> None:
    client = NodeClient(node_process.url)
    height = client.chain_info()["height"]
    opening = {"model": "pay-priced", "version": "1", "node": client.chain_info()["node_account"],
               "deposit": 1_000, "expiry": height + 2}  # fmt: skip
    channel = mined(client, DEV, CHANNEL, "open", opening)
    while client.chain_info()["height"] + 1 <= opening["expiry"]:  # each wait mines a block
        mined(client, DEV, "coin", "transfer", {"to": DEV.account, "amount": 1})
    result = unsigned("channel", "topup", channel, "--deposit", "5")
    refused_with(result, "channel-expiry-passed")
    too_short = unsigned("channel", "topup", channel, "--blocks", "1")
    assert too_short.exit_code == 2
    assert "--blocks" in too_short.output and "at least" in too_short.output


def test_no_channel_opens_or_grows_on_a_deprecated_version(
    run: Callable[..., Result],
    unsigned: Callable[..., Result],
    node_process: NodeProcess,
    tmp_path: Path,
) -> None:
    upload(run, tmp_path, "pay-old", PRICE)
    opening = ["channel", "open", "pay-old@1", "--deposit", "400", "--blocks", "50"]
    channel = output_json(run("--json", *opening, "--wait", "1"))["channel"]
    deprecation = {"name": "pay-old", "version": "1"}
    mined(NodeClient(node_process.url), DEV, "registry", "deprecate", deprecation)
    for args in (opening, ["channel", "topup", channel, "--deposit", "5"]):
        result = unsigned(*args)
        refused_with(result, "channel-deprecated-version")
        assert "Error [channel-deprecated-version]: pay-old@1 is deprecated" in result.stderr


def test_a_topup_or_refund_behind_a_pending_tx_on_the_channel_is_refused(
    run: Callable[..., Result],
    models: None,
    node_process: NodeProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = NodeClient(node_process.url)
    info = client.chain_info()
    payer = key_for("cli-pay-pending")
    mined(client, DEV, "coin", "transfer", {"to": payer.account, "amount": 10_000})
    opening = {"model": "pay-priced", "version": "1", "node": info["node_account"],
               "deposit": 1_000, "expiry": info["height"] + 50}  # fmt: skip
    channel = mined(client, payer, CHANNEL, "open", opening)
    nonce = client.account(payer.account)["pending_nonce"]
    topup = {"channel": channel, "deposit": 1, "expiry": opening["expiry"]}
    stuck = sign_call(payer, info["chain_id"], nonce + 1, CHANNEL, "topup", topup)
    client.submit_tx(stuck)  # a nonce gap: it waits in the pool, unmined
    Wallets(tmp_path / "home" / "wallets").import_doc("pender", encrypt_key(payer, "pw"))
    monkeypatch.setenv(PASSPHRASE_ENV, "pw")
    for args in (["topup", channel, "--deposit", "5"], ["refund", channel]):
        result = run("--wallet", "pender", "channel", *args)
        refused_with(result, "channel-tx-pending")
        assert stuck.txid in result.stderr
        assert client.account(payer.account)["pending_nonce"] == nonce


def test_a_channel_for_another_node_opens_with_a_note_saying_so(
    run: Callable[..., Result], models: None
) -> None:
    other = "e" * 64
    args = ["channel", "open", "pay-priced@1", "--deposit", "9", "--blocks", "50"]
    result = run(*args, "--node-account", other)
    assert result.exit_code == 0, result.output
    assert f"note: the channel pays node {other[:16]}, not the one at" in result.stderr


def test_infer_waits_only_for_per_call_payments(
    unsigned: Callable[..., Result], request_file: Path
) -> None:
    channel = "c" * 64
    result = unsigned("infer", "pay-priced@1", "--input", str(request_file), "--channel", channel,
                      "--wait", "1")  # fmt: skip
    assert result.exit_code == 2
    assert "--wait" in result.output


def test_a_paid_answer_is_kept_when_the_wait_for_its_tx_fails(
    run: Callable[..., Result],
    models: None,
    request_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def times_out(self: NodeClient, txid: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise NodeError(f"tx {txid} has 1 of 2 confirmations after 120 s", "wait-timeout")

    # the wait is not under test (see above): only what the CLI does when it fails
    monkeypatch.setattr(NodeClient, "wait_for_confirmations", times_out)
    human = run("infer", "pay-priced@1", "--input", str(request_file), "--wait", "2")
    assert human.exit_code == 1
    assert "Error [wait-timeout]" in human.stderr and "answered and paid" in human.stderr
    assert "output hash" in human.stdout
    shown = run("--json", "infer", "pay-priced@1", "--input", str(request_file), "--wait", "2")
    assert shown.exit_code == 1
    error = json.loads(shown.stdout)["error"]
    assert error["code"] == "wait-timeout"
    assert error["answer"]["parameters"]["receipt"]["price"] == PRICE


# --- no node needed --------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["notaurl", "http://[::1", "http://127.0.0.1:x"])
def test_a_malformed_node_url_is_an_error_with_its_code_not_a_traceback(url: str) -> None:
    result = CliRunner().invoke(cli, ["--node", url, "chain", "info"])
    assert result.exit_code == 1, result.output
    assert "Error [node-bad-url]" in result.output
    assert "Traceback" not in result.output


def test_a_wallet_that_does_not_exist_is_named_before_any_passphrase_is_asked(
    tmp_path: Path,
) -> None:
    args = ["--home", str(tmp_path), "--wallet", "nobody", "transfer", "a" * 64, "1"]
    result = CliRunner().invoke(cli, ["--node", "http://127.0.0.1:1", *args], input="")
    assert result.exit_code == 1
    assert "Error [keystore-not-found]" in result.output
    assert "Passphrase" not in result.output


def test_a_passphrase_with_no_terminal_to_type_it_is_an_error_with_its_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    Wallets(tmp_path / "wallets").import_doc("bob", encrypt_key(key_for("bob"), "pw"))
    args = ["--home", str(tmp_path), "--json", "--wallet", "bob", "transfer", "a" * 64, "1"]
    result = CliRunner().invoke(cli, ["--node", "http://127.0.0.1:1", *args], input="")
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "wallet-passphrase-missing"
    assert PASSPHRASE_ENV in error["message"]
