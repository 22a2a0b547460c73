"""`modelchain infer`, `channel ...` and `receipt ...`: paid inference from the command line.

`infer` asks first without paying: a free model answers at once, a priced one
answers 402 with a quote (price, node, version, request hash). The CLI checks
the quoted request hash against its own, pays per call (a signed usage_fee.pay
tx) or by channel (a voucher one price above the last one it signed, kept in
<home>/channels.json), sends the request again and checks the receipt.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from modelchain.chain.errors import ModelchainError
from modelchain.chain.keys import is_account
from modelchain.contracts.channel import CHANNEL
from modelchain.contracts.grammar import is_hash_hex
from modelchain.contracts.usage_fee import USAGE_FEE
from modelchain.contracts.voucher import sign_voucher
from modelchain.market.cli import (
    CliContext,
    CliError,
    _wait,
    cli,
    pass_ctx,
    progress,
    split_ref,
)
from modelchain.market.client import NodeClient, NodeError, sign_call
from modelchain.market.receipts import receipt_problem

CHANNELS_FILE = "channels.json"
"""In the CLI home: the last cumulative amount signed per channel."""
AMOUNT = click.IntRange(1, 2**53 - 1)


def _check_channel_id(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A channel id (the txid of its open: 64 lowercase hex) or nothing."""
    if value is not None and not is_hash_hex(value):
        raise click.BadParameter(f"{value!r} is not a channel id (64 lowercase hex)")
    return value


def _check_account(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An --*-account option's value: an account id (64 lowercase hex) or nothing."""
    if value is not None and not is_account(value):
        raise click.BadParameter(f"{value!r} is not an account (64 lowercase hex)")
    return value


def _infer_path(name: str, version: str | None) -> str:
    if version is None:
        return f"/v2/models/{name}/infer"
    return f"/v2/models/{name}/versions/{version}/infer"


def _load_json_file(path: Path, what: str, as_json: bool) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CliError("cli-bad-file", f"cannot read {what} {path}: {exc}", as_json) from exc


# --- the channel record in the CLI home -----------------------------------------------------


def _channels_path(obj: CliContext) -> Path:
    return obj.home / CHANNELS_FILE


def load_signed_amounts(obj: CliContext) -> dict[str, int]:
    """channel id -> the last cumulative amount this CLI signed for it."""
    try:
        data = json.loads(_channels_path(obj).read_text())
    except (OSError, ValueError):
        return {}
    return {k: v["amount"] for k, v in data.items() if isinstance(v, dict) and "amount" in v}


def save_signed_amount(obj: CliContext, channel: str, amount: int) -> None:
    """Record `amount` for `channel` (atomically: temp file, then rename)."""
    path = _channels_path(obj)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    data[channel] = {"amount": amount}
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(temp, path)


# --- infer -------------------------------------------------------------------------------


def compute_local_request_hash(body: dict[str, Any], sha256: str) -> str:
    """The request hash of `body`'s inputs for model file `sha256`, as the node computes it.

    Each input is decoded with the datatype it declares (the node refuses any
    other), so the bytes hashed are the node's.
    """
    from modelchain.market.tensors import (
        BY_NAME,
        InferBadDatatype,
        compute_request_hash,
        decode_input,
    )
    from modelchain.models_store.signature import TensorType

    arrays = {}
    for item in body.get("inputs", []):
        datatype = BY_NAME.get(item.get("datatype"))
        if datatype is None:
            raise InferBadDatatype(f"input {item.get('name')!r}: unknown datatype")
        registered = TensorType(datatype.elem_type, None)
        arrays[item["name"]] = decode_input(item, registered, max_elements=2**53 - 1)
    return compute_request_hash(sha256, arrays)


def _check_receipt(answer: dict[str, Any], quote: dict[str, Any], payment: dict[str, Any]) -> str:
    """Why the answer's receipt is not the one this call should get, or ""."""
    receipt = (answer.get("parameters") or {}).get("receipt")
    problem = receipt_problem(receipt, quote["node"])
    if problem is not None:
        return problem
    expected = {
        "model": quote["model"],
        "model_version": quote["version"],
        "model_sha256": quote["sha256"],
        "input_hash": quote["request"],
        "price": quote["price"],
        "payment": payment,
    }
    for name, value in expected.items():
        if receipt[name] != value:
            return f"receipt {name} is {receipt[name]!r}, expected {value!r}"
    return ""


@cli.command()
@click.argument("ref", metavar="NAME[@VERSION]")
@click.option(
    "--input",
    "input_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    required=True,
    help="An OIP inference request body (JSON).",
)
@click.option(
    "--channel",
    callback=_check_channel_id,
    help="Pay with a voucher on this channel (its id) instead of a tx.",
)
@click.option("--fee", type=click.IntRange(0, 2**53 - 1), help="Tx fee (per call payments).")
@click.option("--wait", "wait_for", type=click.IntRange(0), default=0, help="Confirmations.")
@click.option(
    "--print-request",
    is_flag=True,
    help="Print the paid request body (for curl) instead of sending it.",
)
@pass_ctx
def infer(
    obj: CliContext,
    ref: str,
    input_file: Path,
    channel: str | None,
    fee: int | None,
    wait_for: int,
    print_request: bool,
) -> None:
    """Run a model on the node, paying per call (default) or by channel; print the receipt.

    With --print-request the signed, paid body is printed instead, to send with
    any HTTP client (a channel's amount is then counted as signed).

    Example: modelchain infer summer@1 --input request.json --channel 3f2a...
    """
    name, version = split_ref(ref)
    if wait_for and channel is not None:
        raise click.BadParameter(
            "a voucher is no tx: --wait is for calls paid per call", param_hint="--wait"
        )
    body = _load_json_file(input_file, "request", obj.as_json)
    if not isinstance(body, dict):
        raise CliError("cli-bad-file", f"{input_file} is not an OIP request object", obj.as_json)
    parameters = {k: v for k, v in (body.get("parameters") or {}).items() if k != "payment"}
    client = obj.client()
    if print_request:
        quote = _quote(client, name, version, body | {"parameters": parameters})
        if quote["price"] == 0:
            progress(f"{quote['model']}@{quote['version']} is free: the request needs no payment")
            click.echo(json.dumps(body | {"parameters": parameters}))
            return
    else:
        try:
            answer = client.post(_infer_path(name, version), body | {"parameters": parameters})
        except NodeError as exc:
            if exc.code != "payment-required":
                raise
            quote = exc.detail["quote"]
        else:
            obj.output(answer, _describe_answer)  # a free model: nothing to pay
            return
    mine = compute_local_request_hash(body, quote["sha256"])
    if mine != quote["request"]:
        raise CliError(
            "request-hash-mismatch",
            f"the node quotes request hash {quote['request']}, this request hashes to {mine}",
            obj.as_json,
        )
    progress(f"{quote['model']}@{quote['version']} costs {quote['price']} per call")
    key = obj.key()
    if channel is not None:
        amount = _next_voucher_amount(obj, client, channel, quote["price"])
        sig = sign_voucher(key, quote["chain_id"], channel, amount)
        payment: dict[str, Any] = {"channel": channel, "amount": amount, "sig": sig}
        expected = {"kind": "channel", "channel": channel, "amount": amount}
    else:
        args = {
            "model": quote["model"],
            "version": quote["version"],
            "amount": quote["price"],
            "node": quote["node"],
            "request": mine,
        }
        nonce = client.account(key.account)["pending_nonce"]
        tx = sign_call(key, quote["chain_id"], nonce, USAGE_FEE, "pay", args, fee=fee)
        payment = {"tx": tx.to_json()}
        expected = {"kind": "tx", "txid": tx.txid}
    if print_request:
        if channel is not None:
            save_signed_amount(obj, channel, payment["amount"])
        click.echo(json.dumps(body | {"parameters": parameters | {"payment": payment}}))
        return
    answer = client.post(
        _infer_path(name, quote["version"]),
        body | {"parameters": parameters | {"payment": payment}},
    )
    if channel is not None:
        save_signed_amount(obj, channel, payment["amount"])
    problem = _check_receipt(answer, quote, expected)
    if problem:
        raise CliError(
            "receipt-invalid", f"the node's receipt does not check: {problem}", obj.as_json
        )
    if wait_for:
        try:
            _wait(obj, expected["txid"], wait_for)
        except ModelchainError as exc:  # the call is answered and paid: never drop its answer
            if not obj.as_json:
                click.echo(_describe_answer(answer))
            raise CliError(
                exc.code,
                f"{exc.message} (the call was answered and paid: "
                + ("its answer is `answer` here)" if obj.as_json else "its answer is above)"),
                obj.as_json,
                {**exc.detail, "answer": answer},
            ) from exc
    obj.output(answer, _describe_answer)


def _quote(
    client: NodeClient, name: str, version: str | None, body: dict[str, Any]
) -> dict[str, Any]:
    """The node's quote for this request, without running it (version None: the one
    /v2/models/NAME/infer would run)."""
    if version is None:
        version = client.get(f"/v2/models/{name}/ready")["version"]
    return client.post(f"/api/v1/models/{name}/versions/{version}/quote", body)["quote"]


def _next_voucher_amount(obj: CliContext, client: NodeClient, channel: str, price: int) -> int:
    """One price above the last amount this CLI signed on `channel`.

    Without a record (another machine, a new home) it starts from what the
    node says it accepted, and says so: only a record of one's own is trusted.
    """
    signed = load_signed_amounts(obj).get(channel)
    if signed is None:
        status = client.get(f"/api/v1/channels/{channel}")
        signed = status["accepted"]
        progress(f"no record of channel {channel[:16]} here: starting from the node's {signed}")
    return signed + price


def _describe_answer(answer: dict[str, Any]) -> str:
    lines = [f"{answer['model_name']}@{answer['model_version']}"]
    for output in answer.get("outputs", []):
        data = json.dumps(output.get("data"))
        if len(data) > 200:
            data = data[:200] + "..."
        lines.append(f"  {output['name']} {output.get('datatype')} {output.get('shape')}: {data}")
    receipt = (answer.get("parameters") or {}).get("receipt")
    if receipt is not None:
        payment = receipt["payment"]
        paid = (
            f"tx {payment['txid']}"
            if payment["kind"] == "tx"
            else f"channel {payment['channel']} (cumulative {payment['amount']})"
        )
        lines.append(f"paid {receipt['price']} by {paid}")
        lines.append(f"receipt {answer['parameters']['receipt_id']} signed by {receipt['node']}")
        lines.append(f"  at height {receipt['height']} of chain {receipt['chain_id']}")
        lines.append(f"  model sha256 {receipt['model_sha256']}")
        lines.append(f"  input hash   {receipt['input_hash']}")
        lines.append(f"  output hash  {receipt['output_hash']}")
        lines.append(f"  sig          {receipt['sig']}")
    return "\n".join(lines)


# --- channels ------------------------------------------------------------------------------


@cli.group()
def channel() -> None:
    """Payment channels: escrow with a node, paid per call by vouchers.

    Example: modelchain channel open summer@1 --deposit 100000 --blocks 500
    """


def _describe_status(status: dict[str, Any]) -> str:
    onchain = status.get("onchain") or {}
    lines = [f"channel {status['channel']}"]
    if onchain:
        lines.append(
            f"{onchain['model']}@{onchain['version']}  payer {onchain['payer']}\n"
            f"node {onchain['node']}  deposit {onchain['deposit']}  expiry {onchain['expiry']}"
            f"{'  closed' if onchain['closed'] else ''}"
        )
    else:
        lines.append("not on the node's chain")
    lines.append(
        f"accepted {status['accepted']}  claimed {status['claimed']}  "
        f"unclaimed {status['unclaimed']}  (height {status['height']})"
    )
    if status.get("claim_pending"):
        pending = status["claim_pending"]
        lines.append(f"claim pending: {pending['amount']} in tx {pending['txid']}")
    return "\n".join(lines)


@channel.command("open")
@click.argument("ref", metavar="NAME@VERSION")
@click.option("--deposit", type=AMOUNT, required=True, help="Base units put in escrow.")
@click.option("--blocks", type=click.IntRange(1), required=True, help="Expiry = height + B.")
@click.option(
    "--node-account",
    callback=_check_account,
    help="The serving node (default: the node talked to).",
)
@click.option("--fee", type=click.IntRange(0, 2**53 - 1))
@click.option("--wait", "wait_for", type=click.IntRange(0), default=0, help="Confirmations.")
@pass_ctx
def channel_open(
    obj: CliContext,
    ref: str,
    deposit: int,
    blocks: int,
    node_account: str | None,
    fee: int | None,
    wait_for: int,
) -> None:
    """Open a channel to pay NAME@VERSION on a node; its id is the tx's id.

    Example: modelchain channel open summer@1 --deposit 100000 --blocks 500 --wait 1
    """
    name, version = split_ref(ref)
    if version is None:
        raise click.UsageError("give the version: a channel is for one NAME@VERSION")
    client = obj.client()
    info = client.chain_info()
    # what the contract would refuse (fee taken) or the node never take: refused here first
    terms = _live_version(obj, client, name, version)
    if terms["price"] == 0:
        raise CliError(
            "channel-free-version", f"{ref} is free: there is nothing to pay", obj.as_json
        )
    _check_lifetime(blocks, info["channel_margin_blocks"])
    if node_account is not None and node_account != info["node_account"]:
        progress(
            f"note: the channel pays node {node_account[:16]}, not the one at {client.url} "
            f"({info['node_account'][:16]}): only that node takes its vouchers"
        )
    args = {
        "model": name,
        "version": version,
        "node": node_account or info["node_account"],
        "deposit": deposit,
        "expiry": info["height"] + blocks,
    }
    tx = client.call(obj.key(), CHANNEL, "open", args, fee=fee)
    try:
        save_signed_amount(obj, tx.txid, 0)  # nothing signed on it yet
    except OSError as exc:  # the channel is open all the same: its id must still be shown
        progress(f"could not record channel {tx.txid} in {_channels_path(obj)}: {exc}")
    progress(f"channel {tx.txid} sent: open until height {args['expiry']} once mined")
    result: dict[str, Any] = {"channel": tx.txid, "txid": tx.txid, **args}
    if wait_for:
        _wait(obj, tx.txid, wait_for)
    obj.output(result, lambda r: r["channel"])


def _open_channel(
    obj: CliContext, client: NodeClient, channel_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The channel's status on the node and its on-chain record; a CliError unless it is
    on the chain and still open (a tx on it would fail, its fee taken)."""
    status = client.get(f"/api/v1/channels/{channel_id}")
    onchain = status.get("onchain")
    if onchain is None:
        raise CliError("channel-unknown", f"no channel {channel_id} on the node", obj.as_json)
    if onchain["closed"]:
        raise CliError("channel-closed", f"channel {channel_id} is closed", obj.as_json)
    return status, onchain


def _check_lifetime(blocks: int, margin: int) -> None:
    """A usage error unless an expiry `blocks` from now leaves a block to pay in: the node
    takes vouchers only while height + margin < expiry."""
    shortest = margin + 2
    if blocks < shortest:
        raise click.BadParameter(
            f"{blocks} blocks leave no block to pay in: the node takes vouchers only while "
            f"height + {margin} < expiry, so give at least {shortest}",
            param_hint="--blocks",
        )


def _require_payer(obj: CliContext, onchain: dict[str, Any], account: str, what: str) -> None:
    if onchain["payer"] != account:
        raise CliError(
            "channel-not-payer",
            f"only the payer {onchain['payer'][:16]} may {what}, not {account[:16]}",
            obj.as_json,
        )


def _require_none_pending(
    obj: CliContext, client: NodeClient, account: str, channel_id: str
) -> None:
    """A CliError while a tx of `account` on the channel waits in the node's mempool: the
    checks above read the chain without it, and it may make the next one fail (a second
    refund, a refund behind a top-up)."""
    pool = client.get("/api/v1/mempool?limit=100")["txs"]
    for entry in pool:
        if entry["sender"] != account or entry["contract"] != CHANNEL:
            continue
        tx = client.tx(entry["txid"])["tx"]
        if tx["args"].get("channel") == channel_id:
            raise CliError(
                "channel-tx-pending",
                f"your {entry['method']} of this channel (tx {entry['txid']}) is not mined "
                "yet: wait for it (modelchain chain tx TXID) and try again",
                obj.as_json,
                {"txid": entry["txid"]},
            )


def _live_version(obj: CliContext, client: NodeClient, name: str, version: str) -> dict[str, Any]:
    """The version's catalog entry; a CliError if it is deprecated (no channel opens or
    grows on it)."""
    terms: dict[str, Any] = client.get(f"/api/v1/models/{name}/versions/{version}")
    if terms["deprecated"]:
        raise CliError("channel-deprecated-version", f"{name}@{version} is deprecated", obj.as_json)
    return terms


@channel.command("topup")
@click.argument("channel_id", metavar="ID", callback=_check_channel_id)
@click.option("--deposit", type=click.IntRange(0, 2**53 - 1), default=0, show_default=True)
@click.option("--blocks", type=click.IntRange(1), help="New expiry = height + B (never earlier).")
@click.option("--fee", type=click.IntRange(0, 2**53 - 1))
@click.option("--wait", "wait_for", type=click.IntRange(0), default=0, help="Confirmations.")
@pass_ctx
def channel_topup(
    obj: CliContext,
    channel_id: str,
    deposit: int,
    blocks: int | None,
    fee: int | None,
    wait_for: int,
) -> None:
    """Add to a channel's deposit and/or push its expiry later.

    Example: modelchain channel topup 3f2a... --deposit 50000 --blocks 500
    """
    client = obj.client()
    key = obj.key()
    status, onchain = _open_channel(obj, client, channel_id)
    _require_payer(obj, onchain, key.account, "top up")
    _require_none_pending(obj, client, key.account, channel_id)
    expiry = onchain["expiry"]
    if blocks is not None:
        _check_lifetime(blocks, status["margin_blocks"])
        expiry = max(expiry, status["height"] + blocks)
    if deposit == 0 and expiry == onchain["expiry"]:
        raise CliError(
            "channel-topup-noop",
            f"a top-up must add a deposit (--deposit) or move the expiry ({expiry}) later "
            "(--blocks)",
            obj.as_json,
        )
    next_block = status["height"] + 1
    if expiry <= next_block:
        raise CliError(
            "channel-expiry-passed",
            f"expiry {expiry} is not after the next block ({next_block}): give --blocks",
            obj.as_json,
        )
    _live_version(obj, client, onchain["model"], onchain["version"])
    args = {"channel": channel_id, "deposit": deposit, "expiry": expiry}
    tx = client.call(key, CHANNEL, "topup", args, fee=fee)
    result: dict[str, Any] = {"txid": tx.txid, **args}
    if wait_for:
        _wait(obj, tx.txid, wait_for)
    obj.output(
        result, lambda r: f"topped up {channel_id}: +{deposit}, expiry {expiry}: tx {tx.txid}"
    )


@channel.command("show")
@click.argument("channel_id", metavar="ID", callback=_check_channel_id)
@pass_ctx
def channel_show(obj: CliContext, channel_id: str) -> None:
    """A channel on-chain, with what the node accepted and claimed, and what you signed.

    Example: modelchain channel show 3f2a...
    """
    status = obj.client().get(f"/api/v1/channels/{channel_id}")
    status["signed_here"] = load_signed_amounts(obj).get(channel_id, 0)
    obj.output(status, lambda s: _describe_status(s) + f"\nsigned here {s['signed_here']}")


@channel.command("claim")
@click.argument("channel_id", metavar="ID", callback=_check_channel_id)
@pass_ctx
def channel_claim(obj: CliContext, channel_id: str) -> None:
    """Ask the node to claim its highest voucher now (it claims by itself in time).

    Example: modelchain channel claim 3f2a...
    """
    result = obj.client().post(f"/api/v1/channels/{channel_id}/claim", {})
    obj.output(result, lambda r: f"claim of {r['amount']} sent: tx {r['txid']}")


@channel.command("refund")
@click.argument("channel_id", metavar="ID", callback=_check_channel_id)
@click.option("--fee", type=click.IntRange(0, 2**53 - 1))
@click.option("--wait", "wait_for", type=click.IntRange(0), default=0, help="Confirmations.")
@pass_ctx
def channel_refund(obj: CliContext, channel_id: str, fee: int | None, wait_for: int) -> None:
    """Take back what was not claimed, after the channel's expiry.

    Example: modelchain channel refund 3f2a... --wait 1
    """
    client = obj.client()
    key = obj.key()
    status, onchain = _open_channel(obj, client, channel_id)
    _require_payer(obj, onchain, key.account, "take the refund")
    _require_none_pending(obj, client, key.account, channel_id)
    if status["height"] + 1 <= onchain["expiry"]:
        raise CliError(
            "channel-not-expired",
            f"channel expires at {onchain['expiry']}; refund from height "
            f"{onchain['expiry'] + 1} (the next block is {status['height'] + 1})",
            obj.as_json,
        )
    tx = client.call(key, CHANNEL, "refund", {"channel": channel_id}, fee=fee)
    result: dict[str, Any] = {"txid": tx.txid, "channel": channel_id}
    if wait_for:
        _wait(obj, tx.txid, wait_for)
    obj.output(result, lambda r: f"refund of {channel_id} sent: tx {r['txid']}")


# --- receipts -----------------------------------------------------------------------------


@cli.group()
def receipt() -> None:
    """Receipts of paid calls, signed by the node.

    Example: modelchain receipt verify answer.json
    """


def _receipt_of(document: Any) -> Any:
    """The receipt in a file: a bare receipt, an inference answer, or a /receipts/<id> body."""
    if isinstance(document, dict):
        if isinstance(document.get("parameters"), dict) and "receipt" in document["parameters"]:
            return document["parameters"]["receipt"]
        if "receipt" in document and "sig" not in document:
            return document["receipt"]
    return document


@receipt.command("verify")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option(
    "--node-account", callback=_check_account, help="Also require that this node signed it."
)
@pass_ctx
def receipt_verify(obj: CliContext, file: Path, node_account: str | None) -> None:
    """Check a receipt's signature offline (no node needed); exit 1 if it does not verify.

    Example: modelchain receipt verify answer.json --node-account 7c1e...
    """
    found = _receipt_of(_load_json_file(file, "receipt", obj.as_json))
    problem = receipt_problem(found, node_account)
    if problem is not None:
        raise CliError("receipt-invalid", f"the receipt does not verify: {problem}", obj.as_json)
    result = {"valid": True, "node": found["node"], "payment": found["payment"]}
    obj.output(result, lambda r: f"valid: signed by node {r['node']}")


@receipt.command("show")
@click.argument("receipt_id", metavar="ID")
@pass_ctx
def receipt_show(obj: CliContext, receipt_id: str) -> None:
    """A receipt the node handed out, by its id.

    Example: modelchain receipt show 9b1c...
    """
    result = obj.client().get(f"/api/v1/receipts/{receipt_id}")
    obj.output(result, lambda r: json.dumps(r["receipt"], indent=2, sort_keys=True))
