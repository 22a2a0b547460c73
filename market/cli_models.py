"""`modelchain model ...` and `modelchain audit ...`: upload and browse models, audit the chain.

Thin commands over the node's /api/v1 model and audit routes. An upload asks the node for
the file's signature first (a dry run), signs the registration with the wallet, then
streams the file with its tx; progress goes to stderr, data to stdout.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlencode

import click

from modelchain.contracts.grammar import is_model_name
from modelchain.contracts.registry import REGISTRY
from modelchain.contracts.split import split_problem
from modelchain.market.cli import (
    CliContext,
    CliError,
    _wait,
    _wallet_account,
    cli,
    pass_ctx,
    progress,
    split_ref,
)
from modelchain.market.client import NodeClient, sign_call
from modelchain.market.upload import default_split, registration_args

UPLOAD_TIMEOUT_SECONDS = 600.0
"""Per socket operation: the node answers an upload after validating the whole file."""
TX_HEADER = "X-Modelchain-Tx"
PROGRESS_STEPS = 10
"""Upload progress lines per file (one each 10 %)."""
AMOUNT = click.IntRange(0, 2**53 - 1)


class UploadRefused(CliError):
    """The CLI refuses an upload the node would refuse, before sending the file again."""


# --- sending files -------------------------------------------------------------------------


class ProgressReader:
    """A file that reports how much of it was read, about every 1/PROGRESS_STEPS."""

    def __init__(self, file: BinaryIO, total: int, report: Callable[[int, int], None]) -> None:
        self.file = file
        self.total = total
        self.report = report
        self.sent = 0
        self._next_step = 1

    def read(self, size: int = -1) -> bytes:
        data = self.file.read(size)
        self.sent += len(data)
        crossed = False
        while self.total and self.sent * PROGRESS_STEPS >= self._next_step * self.total:
            self._next_step += 1
            crossed = True
        if crossed:
            self.report(self.sent, self.total)
        return data


def _describe_size(size: int) -> str:
    if size < 1024 * 1024:
        return f"{size} bytes"
    return f"{size / (1024 * 1024):.1f} MiB"  # display only, never money


def send_model_file(
    client: NodeClient, path: str, file: Path, label: str, headers: dict[str, str] | None = None
) -> Any:
    """POST the file as application/octet-stream, showing progress on stderr."""
    total = file.stat().st_size

    def report(sent: int, size: int) -> None:
        progress(f"{label} {file.name}: {_describe_size(sent)} of {_describe_size(size)}")

    with open(file, "rb") as handle:
        body = ProgressReader(handle, total, report)
        upload = NodeClient(client.url, timeout=UPLOAD_TIMEOUT_SECONDS)
        result = upload.request(
            "POST",
            path,
            data=body,  # type: ignore[arg-type]  # urllib streams anything with read()
            content_type="application/octet-stream",
            headers={"Content-Length": str(total), **(headers or {})},
        )
    return result


def encode_tx_header(tx_json: dict[str, Any]) -> str:
    raw = json.dumps(tx_json, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


# --- describing ----------------------------------------------------------------------------


def describe_type(value: dict[str, Any]) -> str:
    """A signature's value type for people: `float32[n, 3]`, `sequence(map(string, float32))`."""
    kind, body = next(iter(value.items()))
    if kind in ("tensor", "sparse_tensor"):
        shape = body["shape"]
        dims = "?" if shape is None else ", ".join("?" if d is None else str(d) for d in shape)
        prefix = "sparse " if kind == "sparse_tensor" else ""
        return f"{prefix}{body['elem_type']}[{dims}]"
    if kind in ("sequence", "optional"):
        return f"{kind}({describe_type(body)})"
    if kind == "map":
        return f"map({body['key']}, {describe_type(body['value'])})"
    if kind == "opaque":
        return f"opaque({body['domain']}.{body['name']})"
    return kind


def describe_signature(signature: dict[str, Any]) -> list[str]:
    opsets = ", ".join(f"{domain} {version}" for domain, version in signature["opsets"].items())
    producer = f"{signature['producer_name']} {signature['producer_version']}".strip()
    lines = [
        f"format    ONNX IR {signature['ir_version']}, opsets {opsets}",
        f"producer  {producer or '-'}",
        f"params    {signature['parameter_count']}",
        "inputs",
    ]
    lines += [f"  {v['name']}  {describe_type(v['type'])}" for v in signature["inputs"]]
    lines.append("outputs")
    lines += [f"  {v['name']}  {describe_type(v['type'])}" for v in signature["outputs"]]
    return lines


def _describe_inspect(result: dict[str, Any]) -> str:
    head = [f"sha256    {result['sha256']}", f"size      {result['size']} bytes"]
    return "\n".join(head + describe_signature(result["signature"]))


def _describe_split(split: dict[str, Any]) -> str:
    owners = ", ".join(f"{account[:12]} {bps}" for account, bps in split["owners"])
    return f"owners {owners}; node {split['node']} (bps)"


def _describe_version(v: dict[str, Any]) -> str:
    metadata = v["metadata"]
    status = "live"
    if v["deprecated"]:
        status = f"deprecated, use {v['successor']}" if v["successor"] else "deprecated"
    lines = [
        f"{v['ref']}  ({status})",
        f"sha256    {v['sha256']}",
        f"price     {v['price']} per call",
        f"split     {_describe_split(v['split'])}",
        f"owner     {v['owner']}",
        f"height    {v['registered_height']}  ({v['confirmations']} confirmations)",
        f"usage     {v['usage']['paid_calls']} paid calls, {v['usage']['channel_claims']} "
        f"channel claims, revenue {v['usage']['revenue']}",
        f"license   {metadata['license'] or '-'}",
        f"tags      {', '.join(metadata['tags']) or '-'}",
    ]
    if "file_available" in v:
        lines.append(f"file      {'on this node' if v['file_available'] else 'not on this node'}")
    if metadata["description"]:
        lines.append(f"about     {metadata['description']}")
    if metadata["io_signature"]:
        lines += describe_signature(metadata["io_signature"])
    return "\n".join(lines)


def _describe_catalog(page: dict[str, Any]) -> str:
    lines = []
    for v in page["versions"]:
        tags = ",".join(v["metadata"]["tags"])
        lines.append(
            f"{v['ref']:<40} price {v['price']:>8}  calls {v['usage']['paid_calls']:>6}  "
            f"conf {v['confirmations']:>4}  owner {v['owner'][:12]}  {tags}"
        )
    shown = len(page["versions"])
    lines.append(f"{shown} of {page['total']} version(s), sorted by {page['sort']}")
    return "\n".join(lines)


def _describe_model(m: dict[str, Any]) -> str:
    lines = [
        f"{m['name']}  owner {m['owner']}",
        f"registered at height {m['registered_height']}, latest {m['latest'] or '-'}, "
        f"{m['usage']['paid_calls']} paid calls, revenue {m['usage']['revenue']}",
    ]
    for v in m["versions"]:
        flag = " deprecated" if v["deprecated"] else ""
        lines.append(
            f"  {v['version']:<16} price {v['price']:>8}  calls {v['usage']['paid_calls']:>6}  "
            f"conf {v['confirmations']:>4}  {v['sha256'][:16]}{flag}"
        )
    return "\n".join(lines)


def describe_event(event: dict[str, Any]) -> str:
    """One event on one line: id, height, confirmations, kind and what it says."""
    data = event["data"]
    kind = event["type"]
    if kind == "model-registered":
        what = f"{data['name']}@{data['version']} by {data['owner'][:12]}, price {data['price']}"
    elif kind == "price-changed":
        what = f"{data['name']}@{data['version']} {data['old_price']} -> {data['new_price']}"
    elif kind == "version-deprecated":
        what = f"{data['name']}@{data['version']} successor {data['successor'] or '-'}"
    elif kind == "ownership-transferred":
        what = f"{data['name']} {data['from'][:12]} -> {data['to'][:12]}"
    elif kind == "usage-paid":
        what = f"{data['payer'][:12]} paid {data['amount']} for {data['model']}@{data['version']}"
    elif kind == "channel-opened":
        what = (
            f"{data['payer'][:12]} opened {data['channel'][:12]} for "
            f"{data['model']}@{data['version']}, deposit {data['deposit']} until {data['expiry']}"
        )
    elif kind == "channel-topped-up":
        what = (
            f"{data['payer'][:12]} added {data['added']} to {data['channel'][:12]}, "
            f"deposit {data['deposit']} until {data['expiry']}"
        )
    elif kind == "channel-refunded":
        what = f"{data['payer'][:12]} took back {data['refunded']} from {data['channel'][:12]}"
    elif kind == "channel-claimed":
        what = f"{data['node'][:12]} claimed {data['paid']} on {data['channel'][:12]}"
    elif kind == "transfer":
        what = f"{data['from'][:12]} -> {data['to'][:12]} {data['amount']}"
    else:
        what = json.dumps(data, sort_keys=True)
        what = what if len(what) <= 90 else what[:87] + "..."
    return (
        f"#{event['id']:<6} h{event['height']:<6} conf {event['confirmations']:<4} "
        f"{event['contract']}.{kind}  {what}  tx {event['txid'][:16]}"
    )


# --- model ---------------------------------------------------------------------------------


@cli.group()
def model() -> None:
    """Upload, inspect and browse ONNX models.

    Example: modelchain model list --sort most_used
    """


def parse_split(obj: CliContext, text: str | None, signer: str) -> dict[str, Any]:
    """`alice=7000,bob=2000,node=1000` (wallet names or accounts) as a registry split."""
    if not text:
        return default_split(signer)
    owners: list[list[Any]] = []
    node_bps = 0
    for item in text.split(","):
        who, sep, bps_text = item.strip().partition("=")
        if not sep or not bps_text.strip().isdigit():
            raise click.BadParameter(f"{item!r} is not NAME=BPS", param_hint="--split")
        bps = int(bps_text)
        if who.strip() == "node":
            node_bps = bps
        else:
            owners.append([_wallet_account(obj, who.strip()), bps])
    split = {"owners": owners, "node": node_bps}
    problem = split_problem(split)
    if problem is not None:
        raise click.BadParameter(problem, param_hint="--split")
    return split


@model.command("upload")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="Model name (a-z, 0-9, '-').")
@click.option("--version", "version", required=True, help="Version, e.g. 1.0.0.")
@click.option("--price", type=AMOUNT, required=True, help="Base units per call (0 = free).")
@click.option(
    "--split",
    "split_text",
    help="Revenue split in basis points: OWNER=BPS,...,node=BPS (owners are wallet names or "
    "accounts). Default: the signing wallet 9000, node 1000.",
)
@click.option("--description", default="", help="What the model does.")
@click.option("--license", "license_", default="", help="SPDX license id.")
@click.option("--tag", "tags", multiple=True, help="Tag (repeatable).")
@click.option("--fee", type=AMOUNT, help="Tx fee (default: the least accepted).")
@click.option("--wait", "wait_for", type=click.IntRange(0), default=0, help="Confirmations.")
@pass_ctx
def model_upload(
    obj: CliContext,
    file: Path,
    name: str,
    version: str,
    price: int,
    split_text: str | None,
    description: str,
    license_: str,
    tags: tuple[str, ...],
    fee: int | None,
    wait_for: int,
) -> None:
    """Upload FILE and register it as NAME@VERSION, signed by the wallet.

    The node checks the file first (a dry run) and returns its signature, which goes
    into the registration tx; then the file is streamed with the tx, and the node keeps
    both or neither.

    Example: modelchain model upload net.onnx --name net --version 1.0.0 --price 100 --wait 1
    """
    key = obj.key()
    split = parse_split(obj, split_text, key.account)
    client = obj.client()
    checked = send_model_file(client, "/api/v1/models/inspect", file, "checking")
    progress(f"{file.name}: sha256 {checked['sha256']}, valid ONNX")
    if checked["registered_as"]:
        raise UploadRefused(
            "registry-sha256-exists",
            f"this file is already registered as {checked['registered_as']}",
            obj.as_json,
        )
    args = registration_args(
        name=name,
        version=version,
        sha256=checked["sha256"],
        price=price,
        split=split,
        io_signature=checked["signature"],
        description=description,
        license=license_,
        tags=tags,
    )
    chain_id = client.chain_info()["chain_id"]
    nonce = client.account(key.account)["pending_nonce"]
    tx = sign_call(key, chain_id, nonce, REGISTRY, "register", args, fee=fee)
    headers = {TX_HEADER: encode_tx_header(tx.to_json())}
    result = send_model_file(client, "/api/v1/models", file, "uploading", headers)
    progress(f"registration tx {result['txid']} is {result['status']}")
    if wait_for:
        detail = _wait(obj, result["txid"], wait_for)
        result |= {"confirmations": detail["confirmations"], "height": detail["height"]}
    obj.output(
        result,
        lambda r: f"uploaded {r['name']}@{r['version']} sha256 {r['sha256']}: tx {r['txid']}",
    )


@model.command("inspect")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_ctx
def model_inspect(obj: CliContext, file: Path) -> None:
    """Check FILE on the node without storing it: its sha256, size and I/O signature.

    Example: modelchain model inspect resnet.onnx --json
    """
    result = send_model_file(obj.client(), "/api/v1/models/inspect", file, "checking")
    obj.output(result, _describe_inspect)


@model.command("list")
@click.option("--q", "q", default="", help="Text in the name, description or tags.")
@click.option("--tag", default="", help="Only versions with this tag.")
@click.option("--owner", default="", help="Only models of this owner (account or wallet).")
@click.option(
    "--sort",
    type=click.Choice(["newest", "most_used", "price", "name"]),
    default="newest",
    show_default=True,
)
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0)
@click.option("--deprecated", is_flag=True, help="Include deprecated versions.")
@pass_ctx
def model_list(
    obj: CliContext,
    q: str,
    tag: str,
    owner: str,
    sort: str,
    limit: int,
    offset: int,
    deprecated: bool,
) -> None:
    """The catalog: registered model versions, searched and sorted.

    Example: modelchain model list --tag vision --sort price
    """
    params: dict[str, Any] = {"sort": sort, "limit": limit, "offset": offset}
    params |= {k: v for k, v in (("q", q), ("tag", tag)) if v}
    if owner:
        params["owner"] = _wallet_account(obj, owner)
    if deprecated:
        params["deprecated"] = 1
    page = obj.client().get(f"/api/v1/models?{urlencode(params)}")
    obj.output(page, _describe_catalog)


@model.command("show")
@click.argument("ref")
@pass_ctx
def model_show(obj: CliContext, ref: str) -> None:
    """A model (NAME) with its versions, or one version (NAME@VERSION) in full.

    Example: modelchain model show demo-celsius-to-fahrenheit@1.0.0
    """
    name, version = split_ref(ref)
    if version:
        detail = obj.client().get(f"/api/v1/models/{name}/versions/{version}")
        obj.output(detail, _describe_version)
    else:
        obj.output(obj.client().get(f"/api/v1/models/{name}"), _describe_model)


# --- audit ---------------------------------------------------------------------------------


@cli.group()
def audit() -> None:
    """Audit the chain: who registered what, who paid whom, for which model.

    Example: modelchain audit model demo-celsius-to-fahrenheit
    """


@audit.command("model")
@click.argument("name")
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@pass_ctx
def audit_model(obj: CliContext, name: str, limit: int) -> None:
    """A model's history: registrations, owners, price changes, deprecations, payments.

    Example: modelchain audit model demo-celsius-to-fahrenheit --limit 5
    """
    if not is_model_name(name):
        raise click.BadParameter(f"{name!r} is not a model's NAME", param_hint="NAME")
    history = obj.client().get(f"/api/v1/audit/models/{name}?limit={limit}")

    def human(h: dict[str, Any]) -> str:
        usage = h["usage"]
        lines = [
            f"{h['name']}  owner {h['owner']}  (chain height {h['height']})",
            f"{usage['paid_calls']} paid calls ({usage['paid_amount']}), "
            f"{usage['channel_claims']} channel claims ({usage['channel_amount']}), "
            f"revenue {usage['revenue']}",
            "owners:",
        ]
        lines += [f"  {o['owner']} since height {o['since_height']}" for o in h["owners"]]
        lines.append("versions:")
        lines += [
            f"  {v['version']:<16} price {v['price']:>8}  calls {v['usage']['paid_calls']:>6}  "
            f"revenue {v['usage']['revenue']:>10}{'  deprecated' if v['deprecated'] else ''}"
            for v in h["versions"]
        ]
        lines.append("registry events:")
        lines += ["  " + describe_event(e) for e in h["registry_events"]]
        lines.append("recent payments:")
        lines += ["  " + describe_event(e) for e in h["recent_payments"]] or ["  none"]
        return "\n".join(lines)

    obj.output(history, human)


@audit.command("account")
@click.argument("who", required=False)
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@pass_ctx
def audit_account(obj: CliContext, who: str | None, limit: int) -> None:
    """An account's history (an account, a wallet name, or the current wallet).

    Example: modelchain audit account alice
    """
    account = _wallet_account(obj, who or obj.wallet)
    history = obj.client().get(f"/api/v1/audit/accounts/{account}?limit={limit}")

    def human(h: dict[str, Any]) -> str:
        made, received = h["payments_made"], h["payments_received"]
        lines = [
            f"{h['account']}  balance {h['balance']}  nonce {h['nonce']}",
            f"paid       {made['paid_calls']} calls ({made['paid_amount']}), "
            f"{made['channel_claims']} channel claims ({made['channel_amount']})",
            f"received   {received['count']} payments, {received['total']} "
            f"(as owner {received['as_owner']}, as node {received['as_node']})",
            f"registered {h['registrations']['count']} versions "
            f"(fees {h['registrations']['fees']})",
            f"transfers  sent {h['transfers']['sent']} ({h['transfers']['sent_amount']}), "
            f"received {h['transfers']['received']} ({h['transfers']['received_amount']})",
            f"models     {', '.join(h['models_owned']) or '-'}",
            f"shares in  {', '.join(s['ref'] for s in h['revenue_shares']) or '-'}",
            f"channels   {len(h['channels'])}",
        ]
        lines += [
            f"  {c['id'][:16]} {c['role']} {c['model']}@{c['version']} deposit {c['deposit']} "
            f"claimed {c['claimed']}{' closed' if c['closed'] else ''}"
            for c in h["channels"]
        ]
        lines.append("recent events:")
        lines += ["  " + describe_event(e) for e in h["recent_events"]] or ["  none"]
        return "\n".join(lines)

    obj.output(history, human)


@audit.command("tx")
@click.argument("txid")
@pass_ctx
def audit_tx(obj: CliContext, txid: str) -> None:
    """A tx with its block, confirmations, receipt and events.

    Example: modelchain audit tx 3f2a9c...
    """
    detail = obj.client().get(f"/api/v1/audit/txs/{txid}")

    def human(d: dict[str, Any]) -> str:
        tx = d["tx"]
        lines = [
            f"tx {d['txid']} ({d['status']})",
            f"{tx['contract']}.{tx['method']} from {tx['sender']} nonce {tx['nonce']} "
            f"fee {tx['fee']}",
        ]
        if d["status"] == "confirmed":
            receipt = d.get("receipt") or {}
            lines.append(
                f"block {d['height']} {d['block_hash']}, {d['confirmations']} confirmations"
            )
            lines.append(f"receipt {receipt.get('status')} {receipt.get('code') or ''}".rstrip())
        lines += ["  " + describe_event(e) for e in d["events"]]
        return "\n".join(lines)

    obj.output(detail, human)


@audit.command("events")
@click.option("--contract", default="", help="registry, usage_fee, channel, coin, reward.")
@click.option("--type", "type_", default="", help="Event type, e.g. usage-paid.")
@click.option("--model", "model_name", default="", help="Model name.")
@click.option("--version", "version", default="", help="Model version as NAME@VERSION.")
@click.option("--account", default="", help="Account or wallet name.")
@click.option("--from", "from_height", type=click.IntRange(0), help="Lowest block height.")
@click.option("--to", "to_height", type=click.IntRange(0), help="Highest block height.")
@click.option("--limit", type=click.IntRange(1, 100), default=50, show_default=True)
@click.option("--cursor", default="", help="Continue after an earlier page (its next_cursor).")
@pass_ctx
def audit_events(
    obj: CliContext,
    contract: str,
    type_: str,
    model_name: str,
    version: str,
    account: str,
    from_height: int | None,
    to_height: int | None,
    limit: int,
    cursor: str,
) -> None:
    """Events filtered by contract, type, model, account and heights, oldest first.

    Example: modelchain audit events --type usage-paid --model demo-celsius-to-fahrenheit
    """
    params: dict[str, Any] = {"limit": limit}
    for key, value in (
        ("contract", contract),
        ("type", type_),
        ("model", model_name),
        ("version", version),
        ("cursor", cursor),
    ):
        if value:
            params[key] = value
    if account:
        params["account"] = _wallet_account(obj, account)
    if from_height is not None:
        params["from_height"] = from_height
    if to_height is not None:
        params["to_height"] = to_height
    page = obj.client().get(f"/api/v1/audit/events?{urlencode(params)}")
    if page["has_more"]:
        progress(f"more: --cursor {page['next_cursor']}")
    obj.output(page, lambda p: "\n".join(describe_event(e) for e in p["events"]) or "none")
