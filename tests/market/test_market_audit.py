"""Audit queries on a real regtest node's chain: model and account histories, txs, events.

Blocks are mined by hand (`mine_tip`) or built on chosen parents (`make_block`) to make a
reorg; every query is asked again after the reorg, and again after reorging back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from factories import key_for, make_block, mine_tip

from modelchain.chain.errors import ModelchainError
from modelchain.chain.keys import KeyPair
from modelchain.chain.tx import Tx
from modelchain.contracts.voucher import sign_voucher
from modelchain.market import audit, catalog
from modelchain.market.audit import EventQuery
from modelchain.market.client import sign_call
from modelchain.market.config import NodeConfig, dev_wallet
from modelchain.market.node import MarketNode

DEV = dev_wallet()
BOB = key_for("bob")
CAROL = key_for("carol")
SPLIT = {"owners": [[DEV.account, 7000], [CAROL.account, 2000]], "node": 1000}


@pytest.fixture
def node(tmp_path: Path) -> Iterator[MarketNode]:
    node = MarketNode(NodeConfig(data_dir=tmp_path / "node", network="regtest", mine=False))
    yield node
    node.close()


def signed(
    node: MarketNode,
    key: KeyPair,
    contract: str,
    method: str,
    args: dict[str, Any],
    nonce: int | None = None,
) -> Tx:
    nonce = node.chain.pending_nonce(key.account) if nonce is None else nonce
    return sign_call(key, node.params.chain_id, nonce, contract, method, args)


def call(node: MarketNode, key: KeyPair, contract: str, method: str, args: dict[str, Any]) -> Tx:
    tx = signed(node, key, contract, method, args)
    node.submit_tx(tx)
    return tx


def register_args(name: str, version: str = "1", price: int = 100) -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "sha256": hashlib.sha256(f"{name}@{version}".encode()).hexdigest(),
        "price": price,
        "split": SPLIT,
    }


def pay_args(node: MarketNode, name: str, amount: int, label: str, version: str = "1") -> dict:
    return {
        "model": name,
        "version": version,
        "amount": amount,
        "node": node.account,
        "request": hashlib.sha256(label.encode()).hexdigest(),
    }


def types(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


@pytest.fixture
def history(node: MarketNode) -> MarketNode:
    """speech: registered (h1), paid for twice (h2), then repriced, v2 added, v1 deprecated
    and the name handed to bob (h3); bob was funded by a transfer."""
    call(node, DEV, "coin", "transfer", {"to": BOB.account, "amount": 50_000_000})
    call(node, DEV, "registry", "register", register_args("speech"))
    mine_tip(node.chain)
    call(node, BOB, "usage_fee", "pay", pay_args(node, "speech", 100, "a"))
    call(node, BOB, "usage_fee", "pay", pay_args(node, "speech", 100, "b"))
    mine_tip(node.chain)
    call(node, DEV, "registry", "set_price", {"name": "speech", "version": "1", "price": 150})
    call(node, DEV, "registry", "register", register_args("speech", "2"))
    call(node, DEV, "registry", "deprecate", {"name": "speech", "version": "1", "successor": "2"})
    call(node, DEV, "registry", "transfer", {"name": "speech", "to": BOB.account})
    mine_tip(node.chain)
    return node


# --- models --------------------------------------------------------------------------------


def test_model_history_tells_registrations_prices_deprecations_owners_and_payments(
    history: MarketNode,
) -> None:
    found = audit.model_history(history.chain, "speech")
    assert types(found["registry_events"]) == [
        "model-registered",
        "price-changed",
        "model-registered",
        "version-deprecated",
        "ownership-transferred",
    ]
    assert found["owner"] == BOB.account
    assert found["owners"] == [
        {"owner": DEV.account, "since_height": 1},
        {"owner": BOB.account, "since_height": 3},
    ]
    assert [(v["version"], v["deprecated"], v["price"]) for v in found["versions"]] == [
        ("1", True, 150),
        ("2", False, 100),
    ]
    assert found["usage"]["paid_calls"] == 2
    assert found["usage"]["revenue"] == 200
    assert types(found["recent_payments"]) == ["usage-paid", "usage-paid"]
    assert found["recent_payments"][0]["id"] > found["recent_payments"][1]["id"]  # newest first
    assert found["registry_events"][0]["confirmations"] == 3


def test_model_history_limit_bounds_the_recent_payments(history: MarketNode) -> None:
    assert len(audit.model_history(history.chain, "speech", limit=1)["recent_payments"]) == 1


@pytest.mark.parametrize(
    ("name", "code"), [("nobody", "audit-unknown-model"), ("Bad_Name", "query-invalid")]
)
def test_model_history_of_an_unknown_or_malformed_name_is_refused(
    node: MarketNode, name: str, code: str
) -> None:
    with pytest.raises(ModelchainError) as err:
        audit.model_history(node.chain, name)
    assert err.value.code == code


# --- accounts ------------------------------------------------------------------------------


def test_account_history_sums_payments_made_and_received(history: MarketNode) -> None:
    bob = audit.account_history(history.chain, BOB.account)
    assert bob["payments_made"]["paid_calls"] == 2
    assert bob["payments_made"]["total"] == 200
    assert bob["payments_received"]["count"] == 0
    assert bob["models_owned"] == ["speech"]
    assert bob["transfers"]["received"] == 1
    assert bob["transfers"]["received_amount"] == 50_000_000
    dev = audit.account_history(history.chain, DEV.account)
    assert dev["payments_received"] == {"count": 2, "total": 140, "as_owner": 140, "as_node": 0}
    assert dev["registrations"] == {"count": 2, "fees": 2_000_000}
    assert dev["models_owned"] == []
    assert {s["ref"] for s in dev["revenue_shares"]} == {"speech@1", "speech@2"}
    carol = audit.account_history(history.chain, CAROL.account)
    assert carol["payments_received"]["as_owner"] == 40
    served = audit.account_history(history.chain, history.account)
    assert served["payments_received"]["as_node"] == 20


def test_account_history_lists_channels_with_the_accounts_role(node: MarketNode) -> None:
    call(node, DEV, "coin", "transfer", {"to": BOB.account, "amount": 50_000_000})
    call(node, DEV, "registry", "register", register_args("speech"))
    mine_tip(node.chain)
    channel_args = {
        "model": "speech",
        "version": "1",
        "node": node.account,
        "deposit": 500,
        "expiry": 40,
    }
    opened = call(node, BOB, "channel", "open", channel_args)
    call(node, DEV, "coin", "transfer", {"to": node.account, "amount": 1_000_000})
    mine_tip(node.chain)
    sig = sign_voucher(BOB, node.params.chain_id, opened.txid, 300)
    call(node, node.key, "channel", "claim", {"channel": opened.txid, "amount": 300, "sig": sig})
    mine_tip(node.chain)
    bob = audit.account_history(node.chain, BOB.account)
    assert [(c["id"], c["role"], c["claimed"]) for c in bob["channels"]] == [
        (opened.txid, "payer", 300)
    ]
    assert bob["payments_made"]["channel_claims"] == 1
    assert bob["payments_made"]["channel_amount"] == 300
    served = audit.account_history(node.chain, node.account)
    assert [c["role"] for c in served["channels"]] == ["node"]
    assert served["payments_received"]["as_node"] == 30


def test_account_history_of_a_malformed_account_is_refused(node: MarketNode) -> None:
    with pytest.raises(ModelchainError) as err:
        audit.account_history(node.chain, "bob")
    assert err.value.code == "query-invalid"


# --- txs -----------------------------------------------------------------------------------


def test_tx_audit_gives_block_confirmations_and_events(node: MarketNode) -> None:
    tx = call(node, DEV, "registry", "register", register_args("speech"))
    pending = audit.tx_audit(node.chain, tx.txid)
    assert (pending["status"], pending["confirmations"], pending["events"]) == ("pending", 0, [])
    mine_tip(node.chain)
    mine_tip(node.chain)
    found = audit.tx_audit(node.chain, tx.txid)
    assert found["status"] == "confirmed"
    assert found["height"] == 1 and found["confirmations"] == 2
    assert types(found["events"]) == ["model-registered"]
    assert found["events"][0]["confirmations"] == 2


@pytest.mark.parametrize(("txid", "code"), [("ab" * 32, "tx-unknown"), ("xyz", "query-invalid")])
def test_tx_audit_of_an_unknown_or_malformed_txid_is_refused(
    node: MarketNode, txid: str, code: str
) -> None:
    with pytest.raises(ModelchainError) as err:
        audit.tx_audit(node.chain, txid)
    assert err.value.code == code


# --- events --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (EventQuery(contract="usage_fee"), ["usage-paid", "usage-paid"]),
        (EventQuery(type="price-changed"), ["price-changed"]),
        (EventQuery(version="speech@2"), ["model-registered"]),
        (
            EventQuery(model="speech", from_height=3, to_height=3),
            ["price-changed", "model-registered", "version-deprecated", "ownership-transferred"],
        ),
        (
            EventQuery(account=CAROL.account),
            ["model-registered", "usage-paid", "usage-paid", "model-registered"],
        ),
        (EventQuery(contract="reward", to_height=2), ["block-reward", "block-reward"]),
    ],
)
def test_events_are_filtered_by_contract_type_model_account_and_height(
    history: MarketNode, query: EventQuery, expected: list[str]
) -> None:
    assert types(audit.list_events(history.chain, query)["events"]) == expected


def test_pages_joined_by_cursors_read_every_event_once_in_chain_order(
    history: MarketNode,
) -> None:
    everything = audit.list_events(history.chain, EventQuery(), limit=100)["events"]
    read: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = audit.list_events(history.chain, EventQuery(), limit=3, cursor=cursor)
        read += page["events"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert read == everything
    heights = [(e["height"], e["tx_index"], e["event_index"]) for e in read]
    assert heights == sorted(heights)


def test_a_cursor_at_the_end_picks_up_events_mined_later(history: MarketNode) -> None:
    page = audit.list_events(history.chain, EventQuery(), limit=100)
    assert page["has_more"] is False
    mine_tip(history.chain)
    later = audit.list_events(history.chain, EventQuery(), cursor=page["next_cursor"])
    assert [(e["type"], e["height"]) for e in later["events"]] == [("block-reward", 4)]


@pytest.mark.parametrize(
    "query",
    [
        EventQuery(contract="bank"),
        EventQuery(type="Usage_Paid"),
        EventQuery(model="Bad_Name"),
        EventQuery(version="speech"),
        EventQuery(account="bob"),
        EventQuery(from_height=5, to_height=4),
        EventQuery(from_height=-1),
    ],
)
def test_an_event_query_with_a_malformed_filter_is_refused(
    node: MarketNode, query: EventQuery
) -> None:
    with pytest.raises(ModelchainError) as err:
        audit.list_events(node.chain, query)
    assert err.value.code == "query-invalid"


@pytest.mark.parametrize(("limit", "cursor"), [(0, ""), (101, ""), (10, "1.2"), (10, "x.1.ab")])
def test_an_event_page_out_of_bounds_is_refused(node: MarketNode, limit: int, cursor: str) -> None:
    with pytest.raises(ModelchainError) as err:
        audit.list_events(node.chain, EventQuery(), limit=limit, cursor=cursor)
    assert err.value.code == "query-invalid"


# --- reorgs --------------------------------------------------------------------------------


def test_answers_stay_right_across_reorgs(node: MarketNode) -> None:
    """Branch A registers `speech` and pays for it; a longer branch B holds neither. Every
    query answers for A, then for B once B wins, then for A again once A is longer."""
    chain = node.chain
    call(node, DEV, "coin", "transfer", {"to": BOB.account, "amount": 50_000_000})
    fork = mine_tip(chain)
    register = signed(node, DEV, "registry", "register", register_args("speech"), nonce=1)
    payment = signed(node, BOB, "usage_fee", "pay", pay_args(node, "speech", 100, "x"), nonce=0)
    a2 = make_block(chain, fork.hash, [register, payment])
    chain.submit_block(a2)

    def answers() -> dict[str, Any]:
        try:
            history: Any = audit.model_history(chain, "speech")["usage"]
        except ModelchainError as exc:
            history = exc.code
        return {
            "history": history,
            "bob_paid": audit.account_history(chain, BOB.account)["payments_made"]["total"],
            "events": types(audit.list_events(chain, EventQuery(model="speech"))["events"]),
            "catalog": [e["ref"] for e in catalog.search_versions(chain)["versions"]],
            "tx": audit.tx_audit(chain, register.txid)["status"],
        }

    on_a = {
        "history": {
            "paid_calls": 1,
            "paid_amount": 100,
            "channel_claims": 0,
            "channel_amount": 0,
            "revenue": 100,
        },
        "bob_paid": 100,
        "events": ["model-registered", "usage-paid"],
        "catalog": ["speech@1"],
        "tx": "confirmed",
    }
    assert answers() == on_a
    cursor = audit.list_events(chain, EventQuery(model="speech"))["next_cursor"]

    b2 = make_block(chain, fork.hash, timestamp=a2.header.timestamp + 1)
    chain.submit_block(b2)
    b3 = make_block(chain, b2.hash)
    chain.submit_block(b3)
    assert chain.tip.hash == b3.hash
    assert answers() == {
        "history": "audit-unknown-model",
        "bob_paid": 0,
        "events": [],
        "catalog": [],
        "tx": "pending",  # back in the mempool
    }
    with pytest.raises(ModelchainError) as err:
        audit.list_events(chain, EventQuery(), cursor=cursor)
    assert err.value.code == "audit-cursor-stale"
    assert err.value.detail["from_height"] == 2

    a3 = make_block(chain, a2.hash)
    chain.submit_block(a3)
    chain.submit_block(make_block(chain, a3.hash))
    assert chain.tip.height == 4 and chain.is_on_main_chain(a2.hash)
    assert answers() == on_a
    assert audit.tx_audit(chain, register.txid)["confirmations"] == 3
