"""The catalog read from a real regtest node's chain: search, filters, sorts, pages, usage.

Versions are registered by signed registry txs mined by hand (the catalog reads only chain
state, so no files are needed); payments are usage_fee.pay txs and a channel claim.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from factories import key_for, mine_tip

from modelchain.chain.errors import ModelchainError
from modelchain.chain.keys import KeyPair
from modelchain.chain.tx import Tx
from modelchain.contracts.voucher import sign_voucher
from modelchain.market import catalog
from modelchain.market.client import sign_call
from modelchain.market.config import NodeConfig, dev_wallet
from modelchain.market.node import MarketNode

DEV = dev_wallet()
BOB = key_for("bob")


@pytest.fixture
def node(tmp_path: Path) -> Iterator[MarketNode]:
    node = MarketNode(NodeConfig(data_dir=tmp_path / "node", network="regtest", mine=False))
    yield node
    node.close()


def call(node: MarketNode, key: KeyPair, contract: str, method: str, args: dict[str, Any]) -> Tx:
    nonce = node.chain.pending_nonce(key.account)
    tx = sign_call(key, node.params.chain_id, nonce, contract, method, args)
    node.submit_tx(tx)
    return tx


def register(
    node: MarketNode,
    name: str,
    version: str = "1",
    *,
    price: int = 10,
    key: KeyPair = DEV,
    description: str = "",
    tags: tuple[str, ...] = (),
) -> Tx:
    return call(
        node,
        key,
        "registry",
        "register",
        {
            "name": name,
            "version": version,
            "sha256": hashlib.sha256(f"{name}@{version}".encode()).hexdigest(),
            "price": price,
            "split": {"owners": [[key.account, 9000]], "node": 1000},
            "metadata": {"description": description, "tags": list(tags)},
        },
    )


def pay(node: MarketNode, payer: KeyPair, name: str, version: str, amount: int) -> Tx:
    request = hashlib.sha256(f"{name} {node.chain.pending_nonce(payer.account)}".encode())
    args = {
        "model": name,
        "version": version,
        "amount": amount,
        "node": node.account,
        "request": request.hexdigest(),
    }
    return call(node, payer, "usage_fee", "pay", args)


def fund(node: MarketNode, key: KeyPair, amount: int = 50_000_000) -> None:
    call(node, DEV, "coin", "transfer", {"to": key.account, "amount": amount})


def refs(page: dict[str, Any]) -> list[str]:
    return [entry["ref"] for entry in page["versions"]]


@pytest.fixture
def shop(node: MarketNode) -> MarketNode:
    """Four versions over three blocks, with two paid calls of `speech@1`."""
    fund(node, BOB)
    register(node, "vision", price=50, description="Finds CATS in photos", tags=("image",))
    mine_tip(node.chain)
    register(node, "speech", price=5, description="Speech to text", tags=("audio",))
    register(node, "vision", "2", price=70, description="Finds dogs too", tags=("image",))
    mine_tip(node.chain)
    register(node, "translate", price=20, tags=("text", "audio"))
    pay(node, BOB, "speech", "1", 5)
    pay(node, BOB, "speech", "1", 5)
    pay(node, BOB, "vision", "1", 50)
    mine_tip(node.chain)
    return node


def test_catalog_lists_every_version_with_its_record_and_confirmations(shop: MarketNode) -> None:
    page = catalog.search_versions(shop.chain)
    assert page["total"] == 4
    by_ref = {entry["ref"]: entry for entry in page["versions"]}
    vision = by_ref["vision@1"]
    assert vision["owner"] == DEV.account
    assert vision["price"] == 50
    assert vision["split"] == {"owners": [[DEV.account, 9000]], "node": 1000}
    assert vision["registered_height"] == 1
    assert vision["confirmations"] == shop.chain.height == 3
    assert vision["registration"]["height"] == 1
    assert by_ref["translate@1"]["confirmations"] == 1


def test_usage_counts_paid_calls_and_their_revenue(shop: MarketNode) -> None:
    by_ref = {entry["ref"]: entry for entry in catalog.search_versions(shop.chain)["versions"]}
    assert by_ref["speech@1"]["usage"] == {
        "paid_calls": 2,
        "paid_amount": 10,
        "channel_claims": 0,
        "channel_amount": 0,
        "revenue": 10,
    }
    assert by_ref["vision@1"]["usage"]["paid_calls"] == 1
    assert by_ref["vision@2"]["usage"]["paid_calls"] == 0


def test_text_search_matches_name_description_and_tags_ignoring_case(shop: MarketNode) -> None:
    assert refs(catalog.search_versions(shop.chain, q="cats", sort="name")) == ["vision@1"]
    assert refs(catalog.search_versions(shop.chain, q="VISION", sort="name")) == [
        "vision@1",
        "vision@2",
    ]
    assert refs(catalog.search_versions(shop.chain, q="audio", sort="name")) == [
        "speech@1",
        "translate@1",
    ]
    assert refs(catalog.search_versions(shop.chain, q="nothing like it")) == []


def test_tag_filter_matches_whole_tags_only(shop: MarketNode) -> None:
    assert refs(catalog.search_versions(shop.chain, tag="audio", sort="name")) == [
        "speech@1",
        "translate@1",
    ]
    assert refs(catalog.search_versions(shop.chain, tag="aud")) == []


def test_owner_filter_follows_a_transfer_of_the_name(shop: MarketNode) -> None:
    call(shop, DEV, "registry", "transfer", {"name": "speech", "to": BOB.account})
    mine_tip(shop.chain)
    assert refs(catalog.search_versions(shop.chain, owner=BOB.account)) == ["speech@1"]
    assert "speech@1" not in refs(catalog.search_versions(shop.chain, owner=DEV.account))


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("newest", ["translate@1", "vision@2", "speech@1", "vision@1"]),
        ("most_used", ["speech@1", "vision@1", "translate@1", "vision@2"]),
        ("price", ["speech@1", "translate@1", "vision@1", "vision@2"]),
        ("name", ["speech@1", "translate@1", "vision@1", "vision@2"]),
    ],
)
def test_sorts_order_versions(shop: MarketNode, sort: str, expected: list[str]) -> None:
    assert refs(catalog.search_versions(shop.chain, sort=sort)) == expected


def test_pages_split_the_sorted_list_and_report_the_total(shop: MarketNode) -> None:
    everything = refs(catalog.search_versions(shop.chain, sort="price"))
    pages = [
        catalog.search_versions(shop.chain, sort="price", limit=3, offset=offset)
        for offset in (0, 3, 6)
    ]
    assert [refs(p) for p in pages] == [everything[:3], everything[3:], []]
    assert {p["total"] for p in pages} == {4}


def test_deprecated_versions_are_hidden_unless_asked_for(shop: MarketNode) -> None:
    call(shop, DEV, "registry", "deprecate", {"name": "vision", "version": "1", "successor": "2"})
    mine_tip(shop.chain)
    assert "vision@1" not in refs(catalog.search_versions(shop.chain))
    shown = catalog.search_versions(shop.chain, include_deprecated=True)["versions"]
    old = next(entry for entry in shown if entry["ref"] == "vision@1")
    assert old["deprecated"] is True and old["successor"] == "2"


def test_model_detail_lists_versions_oldest_first_with_totals(shop: MarketNode) -> None:
    detail = catalog.model_detail(shop.chain, "vision")
    assert [v["version"] for v in detail["versions"]] == ["1", "2"]
    assert detail["latest"] == "2"
    assert detail["owner"] == DEV.account
    assert detail["usage"]["paid_calls"] == 1
    assert detail["usage"]["revenue"] == 50
    version = catalog.version_detail(shop.chain, "vision", "2")
    assert version["price"] == 70
    assert version["metadata"]["description"] == "Finds dogs too"


def test_channel_claims_count_as_revenue_of_their_version(node: MarketNode) -> None:
    fund(node, BOB)
    register(node, "speech", price=5)
    mine_tip(node.chain)
    opened = call(
        node,
        BOB,
        "channel",
        "open",
        {"model": "speech", "version": "1", "node": node.account, "deposit": 100, "expiry": 50},
    )
    fund(node, node.key, 1_000_000)  # the node pays the claim's tx fee
    mine_tip(node.chain)
    for cumulative in (30, 45):
        sig = sign_voucher(BOB, node.params.chain_id, opened.txid, cumulative)
        call(
            node,
            node.key,
            "channel",
            "claim",
            {"channel": opened.txid, "amount": cumulative, "sig": sig},
        )
        mine_tip(node.chain)
    usage = catalog.version_detail(node.chain, "speech", "1")["usage"]
    assert usage["channel_claims"] == 2
    assert usage["channel_amount"] == 45  # the sum of what each claim paid, not of totals
    assert usage["revenue"] == 45


def test_unknown_names_and_versions_are_refused_with_404_codes(shop: MarketNode) -> None:
    with pytest.raises(ModelchainError) as err:
        catalog.model_detail(shop.chain, "nobody")
    assert (err.value.code, err.value.http_status) == ("catalog-unknown-model", 404)
    with pytest.raises(ModelchainError) as err:
        catalog.version_detail(shop.chain, "vision", "9")
    assert (err.value.code, err.value.http_status) == ("catalog-unknown-version", 404)
    with pytest.raises(ModelchainError) as err:
        catalog.version_detail(shop.chain, "nobody", "1")
    assert err.value.code == "catalog-unknown-model"


@pytest.mark.parametrize(
    "query",
    [
        {"q": "x" * 201},
        {"tag": "Not A Tag"},
        {"owner": "bob"},
        {"sort": "cheapest"},
        {"limit": 0},
        {"limit": 101},
        {"offset": -1},
    ],
)
def test_a_query_out_of_bounds_is_refused_as_query_invalid(
    node: MarketNode, query: dict[str, Any]
) -> None:
    with pytest.raises(ModelchainError) as err:
        catalog.search_versions(node.chain, **query)
    assert (err.value.code, err.value.http_status) == ("query-invalid", 400)
