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
from modelchain.contracts.channel import CHANNEL
from modelchain.market.cli import cli
from modelchain.market.client import NodeClient, NodeError
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
    assert result.exit_code == 1
    assert f"Error [{code}]" in result.stderr


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
    assert early.exit_code == 1
    assert "Error [channel-not-expired]" in early.stderr


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
    assert result.exit_code == 1
    assert "Error [channel-topup-noop]" in result.stderr


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
        assert result.exit_code == 1
        assert "Error [channel-not-payer]" in result.stderr


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
    for args in (["--deposit", "5"], ["--blocks", "1"]):
        result = unsigned("channel", "topup", channel, *args)
        assert result.exit_code == 1
        assert "Error [channel-expiry-passed]" in result.stderr


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
        assert result.exit_code == 1
        assert "Error [channel-deprecated-version]: pay-old@1 is deprecated" in result.stderr
