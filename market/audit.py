"""Audit queries from the chain alone: who registered what, who paid whom, for which model.

Every answer is read from the node's events and contract storage, which hold main-chain
blocks only (a disconnect deletes a block's events), so answers follow reorgs. Event ids
grow in chain order; a page cursor names an event and its block, so a cursor whose event
left the main chain is refused instead of silently skipping events.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modelchain.chain.errors import ModelchainError
from modelchain.chain.keys import is_account
from modelchain.chain.node import ChainNode
from modelchain.chain.store import event_record
from modelchain.chain.tx import REWARD_CONTRACT
from modelchain.contracts import registry
from modelchain.contracts.channel import get_channel
from modelchain.contracts.grammar import is_model_name, is_version
from modelchain.market import explorer
from modelchain.market.catalog import (
    USAGE_EVENTS,
    Usage,
    all_versions,
    model_owners,
    registrations_by_version,
    usage_by_version,
    version_entry,
)
from modelchain.market.explorer import BadQuery, check_limit

TYPE_RE = re.compile(r"[a-z][a-z0-9-]{0,63}")
CURSOR_RE = re.compile(r"([0-9]{1,15})\.([0-9]{1,15})\.([0-9a-f]{16})")
"""`{event id}.{height}.{first 16 hex of the block hash}`."""
MAX_HEIGHT = 2**53 - 1

_EVENT_COLUMNS = (
    "e.id, e.block_hash, e.height, e.txid, e.tx_idx, e.ev_idx, e.contract, e.type, e.data"
)


class AuditUnknownModel(ModelchainError):
    code = "audit-unknown-model"
    http_status = 404


class AuditCursorStale(ModelchainError):
    """The cursor's event is no longer on the main chain (a reorg replaced its block)."""

    code = "audit-cursor-stale"
    http_status = 409


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Which events to read; empty fields do not filter."""

    contract: str = ""
    type: str = ""
    model: str = ""
    version: str = ""
    """name@version"""
    account: str = ""
    from_height: int | None = None
    to_height: int | None = None


# --- reading events ------------------------------------------------------------------------


def event_cursor(event: dict[str, Any]) -> str:
    return f"{event['id']}.{event['height']}.{event['block_hash'][:16]}"


def _event_json(tip_height: int, row: Sequence[Any]) -> dict[str, Any]:
    event = event_record(row)
    event["confirmations"] = tip_height - event["height"] + 1  # main-chain blocks' events only
    event["cursor"] = event_cursor(event)
    return event


def _select_events(
    chain: ChainNode,
    query: EventQuery,
    *,
    types: Sequence[str] = (),
    after_id: int | None = None,
    newest_first: bool = False,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    where: list[str] = []
    params: list[Any] = []
    for key, value in (
        ("model", query.model),
        ("version", query.version),
        ("account", query.account),
    ):
        if value:
            where.append("e.id IN (SELECT event_id FROM event_index WHERE key = ? AND value = ?)")
            params += [key, value]
    if query.contract:
        where.append("e.contract = ?")
        params.append(query.contract)
    all_types = [query.type] if query.type else list(types)
    if all_types:
        where.append(f"e.type IN ({', '.join('?' * len(all_types))})")
        params += all_types
    if query.from_height is not None:
        where.append("e.height >= ?")
        params.append(query.from_height)
    if query.to_height is not None:
        where.append("e.height <= ?")
        params.append(query.to_height)
    if after_id is not None:
        where.append("e.id > ?")
        params.append(after_id)
    sql = f"SELECT {_EVENT_COLUMNS} FROM events e"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY e.id DESC" if newest_first else " ORDER BY e.id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    rows = chain.store.db.execute(sql, params).fetchall()
    return [_event_json(chain.height, row) for row in rows]


def validate_event_query(chain: ChainNode, query: EventQuery) -> None:
    """Raises BadQuery (query-invalid) naming the first filter that cannot match by its form."""
    known_contracts = {*chain.contracts, REWARD_CONTRACT}  # block rewards emit events too
    if query.contract and query.contract not in known_contracts:
        known = ", ".join(sorted(known_contracts))
        raise BadQuery(f"contract {query.contract!r} is not one of {known}")
    if query.type and not TYPE_RE.fullmatch(query.type):
        raise BadQuery(f"type {query.type!r} is not an event type (kebab-case)")
    if query.model and not is_model_name(query.model):
        raise BadQuery(f"model {query.model!r} is not a model name")
    if query.version:
        name, _, version = query.version.partition("@")
        if not (is_model_name(name) and is_version(version)):
            raise BadQuery(f"version {query.version!r} is not name@version")
    if query.account and not is_account(query.account):
        raise BadQuery(f"account {query.account!r} is not an account (64 lowercase hex)")
    for label, height in (("from_height", query.from_height), ("to_height", query.to_height)):
        if height is not None and not 0 <= height <= MAX_HEIGHT:
            raise BadQuery(f"{label} {height} is not a block height")
    low, high = query.from_height, query.to_height
    if low is not None and high is not None and low > high:
        raise BadQuery(f"from_height {low} is above to_height {high}")


def _after_cursor(chain: ChainNode, cursor: str) -> int:
    """The event id a cursor continues after; raises BadQuery or AuditCursorStale."""
    match = CURSOR_RE.fullmatch(cursor)
    if match is None:
        raise BadQuery(f"cursor {cursor!r} is not a cursor this node gave out")
    event_id, height, block_prefix = int(match[1]), int(match[2]), match[3]
    sql = "SELECT block_hash FROM events WHERE id = ?"
    row = chain.store.db.execute(sql, [event_id]).fetchone()
    if row is None or not row[0].startswith(block_prefix):
        raise AuditCursorStale(
            f"the block at height {height} that held the cursor's event left the main chain; "
            f"query again from_height={height}",
            from_height=height,
        )
    return event_id


def list_events(
    chain: ChainNode, query: EventQuery, *, limit: int = 50, cursor: str = ""
) -> dict[str, Any]:
    """A page of events matching `query`, oldest first, after `cursor` (from an earlier page).

    `next_cursor` continues the listing (also later, to follow new events); `has_more` says
    whether more matching events exist now. Raises BadQuery or AuditCursorStale.
    """
    validate_event_query(chain, query)
    check_limit(limit)
    with chain.lock:
        after = _after_cursor(chain, cursor) if cursor else None
        found = _select_events(chain, query, after_id=after, limit=limit + 1)
        height = chain.height
    page = found[:limit]
    return {
        "events": page,
        "has_more": len(found) > limit,
        "next_cursor": page[-1]["cursor"] if page else cursor or None,
        "limit": limit,
        "height": height,
    }


# --- models --------------------------------------------------------------------------------


def model_history(chain: ChainNode, name: str, limit: int = 20) -> dict[str, Any]:
    """A model's whole registry history, its owners, versions, calls paid and revenue,
    with its `limit` latest payments; raises BadQuery or AuditUnknownModel.
    """
    if not is_model_name(name):
        raise BadQuery(f"{name!r} is not a model name")
    check_limit(limit)
    with chain.lock:
        model = registry.get_model(chain.store, name)
        if model is None:
            raise AuditUnknownModel(f"no model named {name!r} on the main chain")
        history = _select_events(chain, EventQuery(contract=registry.REGISTRY, model=name))
        registrations = registrations_by_version(chain, name)
        usage = usage_by_version(chain, model=name)
        versions = []
        total = Usage()
        for version in registry.list_versions(chain.store, name):
            info = registry.get_version(chain.store, name, version)
            assert info is not None
            found = usage.get(info.ref, Usage())
            total = total.plus(found)
            versions.append(
                version_entry(chain, info, model.owner, registrations.get(info.ref), found)
            )
        payments = _select_events(
            chain, EventQuery(model=name), types=USAGE_EVENTS, newest_first=True, limit=limit
        )
        height = chain.height
    return {
        "name": name,
        "owner": model.owner,
        "registered_height": model.registered_height,
        "owners": _owner_history(history),
        "versions": versions,
        "usage": total.to_json(),
        "registry_events": history,
        "recent_payments": payments,
        "height": height,
    }


def _owner_history(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each owner of a name in turn, from its registry events (oldest first)."""
    owners: list[dict[str, Any]] = []
    for event in history:
        data = event["data"]
        if event["type"] == "model-registered" and data["new_model"]:
            owners.append({"owner": data["owner"], "since_height": event["height"]})
        elif event["type"] == "ownership-transferred":
            owners.append({"owner": data["to"], "since_height": event["height"]})
    return owners


# --- accounts ------------------------------------------------------------------------------


def account_history(chain: ChainNode, account: str, limit: int = 20) -> dict[str, Any]:
    """An account's payments made and received, registrations, models, revenue shares,
    channels and transfers, with its `limit` latest events; raises BadQuery.
    """
    check_limit(limit)
    with chain.lock:
        summary = explorer.account_info(chain, account)  # raises BadQuery for a non-account
        summary["models_owned"] = sorted(
            name for name, owner in model_owners(chain).items() if owner == account
        )
        summary["revenue_shares"] = [
            {"ref": info.ref, "bps": bps, "price": info.price, "deprecated": info.deprecated}
            for info in all_versions(chain)
            for owner, bps in info.split.owners
            if owner == account
        ]
        summary["payments_made"] = _payments_made(chain, account)
        summary["payments_received"] = _payments_received(chain, account)
        summary["registrations"] = _registrations(chain, account)
        summary["transfers"] = _transfers(chain, account)
        summary["channels"] = _channels(chain, account)
        summary["recent_events"] = _select_events(
            chain, EventQuery(account=account), newest_first=True, limit=limit
        )
    return summary


_BY_ACCOUNT = (
    "FROM event_index ei JOIN events e ON e.id = ei.event_id"
    " WHERE ei.key = 'account' AND ei.value = ?"
)


def _payments_made(chain: ChainNode, account: str) -> dict[str, int]:
    rows = chain.store.db.execute(
        "SELECT e.type, COUNT(*), COALESCE(SUM(json_extract(e.data, '$.amount')), 0),"
        f" COALESCE(SUM(json_extract(e.data, '$.paid')), 0) {_BY_ACCOUNT}"
        " AND e.type IN (?, ?) AND json_extract(e.data, '$.payer') = ? GROUP BY e.type",
        [account, *USAGE_EVENTS, account],
    ).fetchall()
    made = {"paid_calls": 0, "paid_amount": 0, "channel_claims": 0, "channel_amount": 0}
    for type_, count, amount, paid in rows:
        if type_ == "usage-paid":
            made |= {"paid_calls": count, "paid_amount": amount}
        else:
            made |= {"channel_claims": count, "channel_amount": paid}
    made["total"] = made["paid_amount"] + made["channel_amount"]
    return made


def _payments_received(chain: ChainNode, account: str) -> dict[str, int]:
    rows = chain.store.db.execute(
        "SELECT json_extract(s.value, '$.role'), COUNT(*), SUM(json_extract(s.value, '$.amount'))"
        " FROM event_index ei JOIN events e ON e.id = ei.event_id,"
        " json_each(e.data, '$.shares') s"
        " WHERE ei.key = 'account' AND ei.value = ? AND e.type IN (?, ?)"
        " AND json_extract(s.value, '$.account') = ? AND json_extract(s.value, '$.amount') > 0"
        " GROUP BY 1",
        [account, *USAGE_EVENTS, account],
    ).fetchall()
    received = {"count": 0, "total": 0, "as_owner": 0, "as_node": 0}
    for role, count, amount in rows:
        received["count"] += count
        received["total"] += amount
        received[f"as_{role}"] = amount
    return received


def _registrations(chain: ChainNode, account: str) -> dict[str, int]:
    count, fees = chain.store.db.execute(
        "SELECT COUNT(*), COALESCE(SUM(json_extract(e.data, '$.registration_fee')), 0)"
        f" {_BY_ACCOUNT} AND e.type = 'model-registered'"
        " AND json_extract(e.data, '$.owner') = ?",
        [account, account],
    ).fetchone()
    return {"count": count, "fees": fees}


def _transfers(chain: ChainNode, account: str) -> dict[str, int]:
    result = {"sent": 0, "sent_amount": 0, "received": 0, "received_amount": 0}
    for side, field in (("sent", "from"), ("received", "to")):
        count, amount = chain.store.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(json_extract(e.data, '$.amount')), 0)"
            f" {_BY_ACCOUNT} AND e.contract = 'coin' AND e.type = 'transfer'"
            f" AND json_extract(e.data, '$.{field}') = ?",
            [account, account],
        ).fetchone()
        result[side] = count
        result[f"{side}_amount"] = amount
    return result


def _channels(chain: ChainNode, account: str) -> list[dict[str, Any]]:
    rows = chain.store.db.execute(
        f"SELECT json_extract(e.data, '$.channel') {_BY_ACCOUNT}"
        " AND e.type = 'channel-opened' ORDER BY e.id",
        [account],
    ).fetchall()
    channels = []
    for (channel_id,) in rows:
        info = get_channel(chain.store, channel_id)
        if info is None:
            continue
        role = "payer" if info.payer == account else "node"
        channels.append(info.to_json() | {"role": role, "remaining": info.remaining})
    return channels


# --- txs -----------------------------------------------------------------------------------


def tx_audit(chain: ChainNode, txid: str) -> dict[str, Any]:
    """A tx with its block, confirmations, receipt and events (each with confirmations).

    Raises BadQuery for a malformed id and TxUnknown for a tx neither mined nor pending.
    """
    with chain.lock:
        detail = explorer.tx_detail(chain, txid)
        if detail["status"] != "confirmed":
            detail["events"] = []
            return detail
        query = f"SELECT {_EVENT_COLUMNS} FROM events e WHERE e.txid = ? ORDER BY e.id"
        rows = chain.store.db.execute(query, [txid]).fetchall()
        detail["events"] = [_event_json(chain.height, row) for row in rows]
    return detail
