"""The `modelchain` command line: one click group, noun-verb subcommands.

Commands are thin wrappers over library calls and the node's HTTP API.
Human output by default, `--json` for scripts; data to stdout, progress to
stderr; exit 0 on success, 1 when the operation failed, 2 on bad usage.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from modelchain.chain.errors import KeystoreNotFound, ModelchainError
from modelchain.chain.execute import STATUS_FAILED
from modelchain.chain.keys import KeyPair, is_account
from modelchain.chain.keystore import Wallets, encrypt_key, load_keystore, save_keystore
from modelchain.chain.peers import MAX_PEERS, PeerBadUrl, normalize_peer_url
from modelchain.contracts.grammar import is_model_name, is_version
from modelchain.market.client import NodeClient, NodeError
from modelchain.market.config import NETWORKS, NodeConfig, dev_wallet
from modelchain.market.marketdb import DEFAULT_SYNC_MS

HOME_ENV = "MODELCHAIN_HOME"
PASSPHRASE_ENV = "MODELCHAIN_PASSPHRASE"
DEV_WALLET_NAME = "dev"
DEV_WALLET_PASSPHRASE = ""
"""The dev wallet's seed is public anyway; its keystore needs no secret."""
DEFAULT_PORT = 8080


def default_home() -> Path:
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".modelchain")


@dataclass
class CliContext:
    """What every command shares, carried on click's context object."""

    serve: Callable[..., None] | None = None
    home: Path = field(default_factory=default_home)
    node_url: str | None = None
    wallet: str = DEV_WALLET_NAME
    as_json: bool = False

    @property
    def wallets(self) -> Wallets:
        return Wallets(self.home / "wallets")

    def settings(self) -> dict[str, Any]:
        path = self.home / "cli.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {}

    def save_settings(self, **values: Any) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        merged = self.settings() | values
        (self.home / "cli.json").write_text(json.dumps(merged, indent=2))

    def client(self) -> NodeClient:
        url = self.node_url or self.settings().get("node") or f"http://127.0.0.1:{DEFAULT_PORT}"
        return NodeClient(url)

    def key(self, name: str | None = None) -> KeyPair:
        """The wallet's key, asking for its passphrase unless the env holds it."""
        name = name or self.wallet
        if name == DEV_WALLET_NAME and not self.wallets.path(name).exists():
            return dev_wallet()
        path = self.wallets.path(name)
        if not path.exists():  # before asking for a passphrase it could not use
            raise KeystoreNotFound(f"no keystore at {path} (modelchain wallet list)")
        passphrase = os.environ.get(PASSPHRASE_ENV)
        if passphrase is None:
            if name == DEV_WALLET_NAME:
                passphrase = DEV_WALLET_PASSPHRASE
            else:
                try:
                    passphrase = click.prompt(
                        f"Passphrase for wallet {name!r}", hide_input=True, err=True
                    )
                except click.Abort:  # no terminal to type it on (EOF), or ^C
                    raise WalletPassphraseMissing(
                        f"wallet {name!r} needs its passphrase: type it, or set {PASSPHRASE_ENV}"
                    ) from None
        return self.wallets.load(name, passphrase)

    def output(self, data: Any, human: str | Callable[[Any], str]) -> None:
        if self.as_json:
            click.echo(json.dumps(data, indent=2, sort_keys=True))
        else:
            click.echo(human(data) if callable(human) else human)


class CliError(click.ClickException):
    """A failed operation: shows its code and message, exits 1 (JSON body with --json)."""

    def __init__(
        self, code: str, message: str, as_json: bool, detail: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.error_code = code
        self.as_json = as_json
        self.detail = detail or {}

    def show(self, file: Any = None) -> None:
        if self.as_json:  # the shape of the node's error bodies: code, message, detail
            body = {"error": {**self.detail, "code": self.error_code, "message": self.message}}
            click.echo(json.dumps(body, default=str), file=file or sys.stdout)
        else:
            click.echo(f"Error [{self.error_code}]: {self.message}", err=True)


class WalletPassphraseMissing(ModelchainError):
    code = "wallet-passphrase-missing"


class CliUsageError(CliError):
    """Bad usage under --json: the JSON error body, exit 2."""

    exit_code = 2


class Group(click.Group):
    """Turns our typed errors into exit code 1 with their code."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        given = list(args)  # the parser consumes `args`
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:  # the global options themselves: --json not parsed yet
            if "--json" not in given:
                raise
            raise CliUsageError("cli-usage", exc.format_message(), True) from exc

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ModelchainError as exc:
            obj = ctx.find_object(CliContext)
            raise CliError(exc.code, exc.message, bool(obj and obj.as_json), exc.detail) from exc
        except click.UsageError as exc:  # with --json, a JSON body as every other error
            if not ctx.params.get("as_json"):  # parsed before any command runs
                raise
            raise CliUsageError("cli-usage", exc.format_message(), True) from exc


def progress(message: str) -> None:
    click.echo(message, err=True)


pass_ctx = click.make_pass_decorator(CliContext, ensure=True)


def split_ref(ref: str) -> tuple[str, str | None]:
    """NAME or NAME@VERSION, each as the registry spells them (so they go into a URL as they
    are); a usage error otherwise."""
    name, at, version = ref.partition("@")
    if not is_model_name(name) or (at and not is_version(version)):
        raise click.BadParameter(
            f"{ref!r}: give NAME or NAME@VERSION, a registered model's name (lowercase "
            "letters, digits, '-') and version (letters, digits, '.', '_', '-')",
            param_hint="NAME",
        )
    return name, version or None


@click.group(cls=Group)
@click.option("--node", "node_url", envvar="MODELCHAIN_NODE", help="URL of the node to talk to.")
@click.option("--wallet", default=DEV_WALLET_NAME, show_default=True, help="Wallet to sign with.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
@click.option("--home", type=click.Path(path_type=Path), help="CLI home (wallets, settings).")
@click.pass_context
def cli(ctx: click.Context, node_url: str | None, wallet: str, as_json: bool, home: Path | None):
    """modelchain: a model marketplace on its own proof-of-work chain.

    Example: modelchain up
    """
    obj = ctx.ensure_object(CliContext)
    obj.node_url = node_url
    obj.wallet = wallet
    obj.as_json = as_json
    if home is not None:
        obj.home = home


main = cli


# --- node ----------------------------------------------------------------------


def _run_node(obj: CliContext, config: NodeConfig, on_ready: Callable[..., None]) -> None:
    if obj.serve is None:
        raise click.UsageError("this build of modelchain cannot run a node (no web server)")
    for url in config.peers:
        try:
            normalize_peer_url(url)
        except PeerBadUrl as exc:
            raise click.BadParameter(exc.message, param_hint="--peer") from None
    if len(config.peers) > MAX_PEERS:
        raise click.BadParameter(f"at most {MAX_PEERS} peers", param_hint="--peer")
    # a node's progress (sync, mined blocks, peers) goes to stderr, as the CLI's does
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    obj.serve(config, ready=on_ready)


PORT = click.IntRange(0, 65535)

receipt_sync_option = click.option(
    "--receipt-sync-ms",
    type=click.IntRange(min=0, max=60_000),
    default=DEFAULT_SYNC_MS,
    show_default=True,
    help="fsync the receipt log this often (what a power cut may lose); 0 = before "
    "every paid answer.",
)
"""`up` and `node start`: see market/marketdb.py and docs/payments.md#by-channel."""


@cli.command()
@click.option("--data", type=click.Path(path_type=Path), help="Data directory.")
@click.option("--port", type=PORT, default=DEFAULT_PORT, show_default=True, help="0 picks one.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--mine/--no-mine", default=True, show_default=True)
@click.option("--workers", type=int, help="Mining processes (default: one per core).")
@click.option("--peer", "peers", multiple=True, help="URL of a peer dev node (repeatable).")
@receipt_sync_option
@pass_ctx
def up(
    obj: CliContext,
    data: Path | None,
    port: int,
    host: str,
    mine: bool,
    workers: int | None,
    peers: tuple[str, ...],
    receipt_sync_ms: int,
):
    """Start a local dev node: dev chain, funded dev wallet, web UI and APIs.

    A second run reuses the same data directory; `--peer` joins another dev node.

    Example: modelchain up --port 8080
    """
    data = data or obj.home / "node"
    _ensure_dev_wallet(obj)
    config = NodeConfig(
        data_dir=data,
        network="dev",
        host=host,
        port=port,
        mine=mine,
        miner_workers=workers,
        peers=peers,
        receipt_sync_ms=receipt_sync_ms,
    )

    def ready(node: Any, url: str) -> None:
        obj.save_settings(node=url)
        progress(f"data directory: {data}")
        progress(f"dev wallet {DEV_WALLET_NAME!r}: {dev_wallet().account}")
        progress(f"node account: {node.account}")
        from modelchain.market.demo import ensure_demo_model  # builds with onnx: load late

        try:
            progress(ensure_demo_model(node).describe())
        except ModelchainError as exc:  # the node serves on without its demo
            progress(f"demo model not registered: [{exc.code}] {exc.message}")
        click.echo(f"modelchain node listening on {url}", nl=True)
        sys.stdout.flush()

    _run_node(obj, config, ready)


def _ensure_dev_wallet(obj: CliContext) -> None:
    wallets = obj.wallets
    if wallets.path(DEV_WALLET_NAME).exists():
        return
    doc = encrypt_key(dev_wallet(), DEV_WALLET_PASSPHRASE)
    wallets.import_doc(DEV_WALLET_NAME, doc)


@cli.group()
def node() -> None:
    """Run a node.

    Example: modelchain node start --data ./node1 --port 0
    """


@node.command("start")
@click.option("--data", type=click.Path(path_type=Path), required=True)
@click.option("--port", type=PORT, default=DEFAULT_PORT, show_default=True, help="0 picks one.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--network", type=click.Choice(NETWORKS), default="dev", show_default=True)
@click.option("--peer", "peers", multiple=True, help="URL of a peer node (repeatable).")
@click.option("--mine/--no-mine", default=False, show_default=True)
@click.option("--workers", type=int, help="Mining processes (default: one per core).")
@receipt_sync_option
@pass_ctx
def node_start(
    obj: CliContext,
    data: Path,
    port: int,
    host: str,
    network: str,
    peers: tuple[str, ...],
    mine: bool,
    workers: int | None,
    receipt_sync_ms: int,
) -> None:
    """Start a node on a data directory; `--peer` syncs and gossips with other nodes.

    Example: modelchain node start --data ./node2 --port 0 --peer http://127.0.0.1:8080
    """
    config = NodeConfig(
        data_dir=data,
        network=network,
        host=host,
        port=port,
        mine=mine,
        miner_workers=workers,
        peers=peers,
        receipt_sync_ms=receipt_sync_ms,
    )

    def ready(node: Any, url: str) -> None:
        click.echo(f"modelchain node listening on {url}")
        sys.stdout.flush()

    _run_node(obj, config, ready)


# --- chain -----------------------------------------------------------------------


@cli.group()
def chain() -> None:
    """Look at the chain.

    Example: modelchain chain info
    """


@chain.command("info")
@pass_ctx
def chain_info(obj: CliContext) -> None:
    """Height, tip, difficulty and mempool of the node's chain.

    Example: modelchain chain info --json
    """
    info = obj.client().chain_info()
    obj.output(
        info,
        lambda i: (
            f"chain {i['chain_id']}  height {i['height']}  tip {i['tip']}\n"
            f"difficulty {i['difficulty']}  mempool {i['mempool_size']} txs"
        ),
    )


@chain.command("block")
@click.argument("ref")
@pass_ctx
def chain_block(obj: CliContext, ref: str) -> None:
    """A block by height or hash.

    Example: modelchain chain block 12
    """
    block = obj.client().get(f"/api/v1/blocks/{ref}")
    obj.output(
        block,
        lambda b: (
            f"block {b['height']} {b['hash']}\n"
            f"time {b['timestamp']}  miner {b['miner']}  txs {b['tx_count']}  "
            f"confirmations {b['confirmations']}\n"
            + "\n".join(f"  {t['txid']} {t['contract']}.{t['method']}" for t in b["txs"])
        ),
    )


@chain.command("tx")
@click.argument("txid")
@pass_ctx
def chain_tx(obj: CliContext, txid: str) -> None:
    """A tx with its block, confirmations, receipt and events.

    Example: modelchain chain tx 3f2a...
    """
    obj.output(obj.client().tx(txid), _describe_tx)


def _describe_tx(detail: dict[str, Any]) -> str:
    tx = detail["tx"]
    lines = [f"tx {detail['txid']} ({detail['status']})"]
    lines.append(f"{tx['contract']}.{tx['method']} from {tx['sender']} nonce {tx['nonce']}")
    if detail["status"] == "confirmed":
        lines.append(
            f"block {detail['height']} {detail['block_hash']}, "
            f"{detail['confirmations']} confirmations"
        )
        receipt = detail.get("receipt") or {}
        if receipt.get("status") == STATUS_FAILED:
            lines.append(
                f"receipt: failed {receipt.get('code')}: {receipt.get('message')} "
                f"(fee {receipt.get('fee')} taken, nothing else changed)"
            )
        else:
            lines.append(f"receipt: {receipt.get('status')}")
        for event in receipt.get("events", []):
            lines.append(f"  event {event['contract']}.{event['type']} {json.dumps(event['data'])}")
    return "\n".join(lines)


@cli.command()
@click.argument("blocks", type=int, default=1)
@pass_ctx
def mine(obj: CliContext, blocks: int) -> None:
    """Ask a dev node's miner for BLOCKS blocks.

    Example: modelchain mine 3
    """
    result = obj.client().post("/api/v1/mine", {"blocks": blocks})
    obj.output(result, lambda r: f"asked for {r['requested']} block(s) at height {r['height']}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
@pass_ctx
def peers(obj: CliContext, as_json: bool) -> None:
    """The node's peers: state, height, ban score and the reason for it.

    Example: modelchain peers --json
    """
    obj.as_json = obj.as_json or as_json
    listing = obj.client().get("/api/v1/peers")
    obj.output(listing["peers"], _describe_peers)


def _describe_peers(peers: list[dict[str, Any]]) -> str:
    if not peers:
        return "no peers (start the node with --peer URL)"
    lines = []
    for peer in peers:
        line = f"{peer['url']:<32} {peer['state']:<12} height {peer['height']:<8}"
        line += f" ban score {peer['ban_score']}"
        if peer["ban_reason"]:
            line += f" ({peer['ban_reason']})"
        lines.append(line)
    return "\n".join(lines)


# --- wallets -----------------------------------------------------------------------


@cli.group()
def wallet() -> None:
    """Keys in encrypted keystores (Argon2id + SecretBox, mode 0600).

    Example: modelchain wallet new alice
    """


def _new_passphrase() -> str:
    env = os.environ.get(PASSPHRASE_ENV)
    if env is not None:
        return env
    return click.prompt("New passphrase", hide_input=True, confirmation_prompt=True, err=True)


@wallet.command("new")
@click.argument("name")
@pass_ctx
def wallet_new(obj: CliContext, name: str) -> None:
    """Create a wallet with a new random key.

    Example: MODELCHAIN_PASSPHRASE=secret modelchain wallet new alice
    """
    key = obj.wallets.create(name, _new_passphrase())
    obj.output({"name": name, "account": key.account}, f"wallet {name}: {key.account}")


@wallet.command("list")
@pass_ctx
def wallet_list(obj: CliContext) -> None:
    """List wallets and their accounts.

    Example: modelchain wallet list
    """
    rows = [{"name": n, "account": a} for n, a in obj.wallets.list()]
    obj.output(rows, lambda r: "\n".join(f"{w['name']:<20} {w['account']}" for w in r) or "none")


def _wallet_account(obj: CliContext, name: str) -> str:
    if is_account(name):
        return name
    for wallet_name, account in obj.wallets.list():
        if wallet_name == name:
            return account
    if name == DEV_WALLET_NAME:
        return dev_wallet().account
    raise KeystoreNotFound(f"no wallet named {name!r}")


@wallet.command("show")
@click.argument("name", required=False)
@pass_ctx
def wallet_show(obj: CliContext, name: str | None) -> None:
    """A wallet's account.

    Example: modelchain wallet show alice
    """
    name = name or obj.wallet
    account = _wallet_account(obj, name)
    obj.output({"name": name, "account": account}, f"{name}: {account}")


@wallet.command("balance")
@click.argument("name", required=False)
@pass_ctx
def wallet_balance(obj: CliContext, name: str | None) -> None:
    """Balance and nonce of a wallet (or any account) on the node.

    Example: modelchain wallet balance alice
    """
    account = _wallet_account(obj, name or obj.wallet)
    info = obj.client().account(account)
    obj.output(
        info,
        lambda i: (
            f"{i['account']}\nbalance {i['balance']} (pending {i['pending_balance']})  "
            f"nonce {i['nonce']} (pending {i['pending_nonce']})"
        ),
    )


@wallet.command("export")
@click.argument("name")
@click.option("--out", type=click.Path(path_type=Path), help="File to write (default: stdout).")
@pass_ctx
def wallet_export(obj: CliContext, name: str, out: Path | None) -> None:
    """Print (or write) a wallet's encrypted keystore.

    Example: modelchain wallet export alice --out alice.json
    """
    doc = obj.wallets.export(name)
    if out is not None:
        save_keystore(out, doc)
        progress(f"wrote {out}")
    else:
        click.echo(json.dumps(doc, indent=2, sort_keys=True))


@wallet.command("import")
@click.argument("name")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@pass_ctx
def wallet_import(obj: CliContext, name: str, file: Path) -> None:
    """Import an encrypted keystore file (from `export` or the web wallet).

    Example: modelchain wallet import alice alice.json
    """
    account = obj.wallets.import_doc(name, load_keystore(file))
    obj.output({"name": name, "account": account}, f"wallet {name}: {account}")


# --- transfers -----------------------------------------------------------------------


def _wait(obj: CliContext, txid: str, confirmations: int) -> dict[str, Any]:
    seen: list[int] = []

    def show(detail: dict[str, Any]) -> None:
        count = detail.get("confirmations", 0)
        if not seen or seen[-1] != count:
            progress(f"tx {txid[:16]}: {count}/{confirmations} confirmations")
            seen.append(count)

    return obj.client().wait_for_confirmations(txid, confirmations, progress=show)


@cli.command()
@click.argument("to")
@click.argument("amount", type=click.IntRange(1, 2**53 - 1))
@click.option("--fee", type=click.IntRange(0, 2**53 - 1), help="Default: the least accepted.")
@click.option("--wait", "wait_for", type=click.IntRange(0), default=0, help="Confirmations.")
@pass_ctx
def transfer(obj: CliContext, to: str, amount: int, fee: int | None, wait_for: int) -> None:
    """Send AMOUNT base units to an account (or a wallet name).

    Example: modelchain transfer alice 1000 --wait 1
    """
    recipient = _wallet_account(obj, to)
    tx = obj.client().call(
        obj.key(), "coin", "transfer", {"to": recipient, "amount": amount}, fee=fee
    )
    result: dict[str, Any] = {"txid": tx.txid, "fee": tx.fee}
    if wait_for:
        result = _wait(obj, tx.txid, wait_for)
    obj.output(result, f"sent {amount} to {recipient}: tx {tx.txid}")


__all__ = ["CliContext", "cli", "main", "NodeError"]

from modelchain.market import cli_models, cli_pay  # noqa: E402,F401
