"""The catalog page (/) in Chromium against a real node: cards with name, version, price,
calls and owner; search, tag and owner filters, and the three sorts; user text as text."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from ui_models import affine_model, register_by_dev_wallet

from modelchain.market.config import dev_wallet


@pytest.fixture(scope="module")
def catalog_models(ui_node: Any) -> dict[str, str]:
    """Three models of the dev wallet with distinct tags and prices, confirmed."""
    client = ui_node.client
    specs = [
        ("cat-cheap", 10, ("catalog-test", "cheap")),
        ("cat-dear", 5000, ("catalog-test", "dear")),
        ("cat-free", 0, ("catalog-test",)),
    ]
    txids = {
        name: register_by_dev_wallet(
            client,
            affine_model(seed=100 + i),
            name=name,
            price=price,
            tags=tags,
            description=f"{name} <b>bold?</b> & more",
        )
        for i, (name, price, tags) in enumerate(specs)
    }
    for txid in txids.values():
        client.wait_for_confirmations(txid, 1, timeout=60)
    return txids


def card_names(page: Any) -> list[str]:
    return page.locator("#catalog-cards li.card h2 a").all_inner_texts()


def test_catalog_shows_cards_with_name_version_price_calls_and_owner(
    page: Any, catalog_models: dict[str, str], screenshot: Callable[[Any, str], Path]
) -> None:
    page.goto("/?tag=catalog-test")
    card = page.locator('li.card[data-ref="cat-dear@1"]')
    assert card.locator("h2 a").inner_text() == "cat-dear"
    assert card.locator(".version").inner_text() == "1"
    assert card.locator(".price").inner_text() == "5000"
    assert card.locator(".calls").inner_text() == "0"
    assert card.locator(".owner a").get_attribute("title") == dev_wallet().account
    # user text is shown as text, never as markup
    assert card.locator(".description").inner_text() == "cat-dear <b>bold?</b> & more"
    assert card.locator(".description b").count() == 0
    screenshot(page, "catalog")


def test_catalog_filters_by_search_tag_and_owner_as_the_visitor_types(
    page: Any, catalog_models: dict[str, str]
) -> None:
    page.goto("/")
    cards = page.locator("#catalog-cards li.card h2 a")
    page.get_by_label("Search").fill("cat-che")
    expect(page).to_have_url(re.compile(r"/\?q=cat-che$"))
    expect(cards).to_have_text(["cat-cheap"])
    page.get_by_label("Search").fill("")
    page.get_by_label("Tag").fill("dear")
    expect(page).to_have_url(re.compile(r"/\?tag=dear$"))
    expect(cards).to_have_text(["cat-dear"])
    page.get_by_label("Tag").fill("catalog-test")
    page.get_by_label("Owner account").fill("00" * 32)
    expect(page).to_have_url(re.compile("owner=0000"))
    expect(cards).to_have_count(0)
    expect(page.locator("#catalog-count")).to_have_text("0 model versions")


@pytest.mark.parametrize(
    ("start", "sort", "expected"),
    [
        ("newest", "price", ["cat-free", "cat-cheap", "cat-dear"]),
        ("price", "newest", ["cat-free", "cat-dear", "cat-cheap"]),
        ("newest", "most_used", ["cat-free", "cat-dear", "cat-cheap"]),
    ],
)
def test_catalog_sorts_by_price_newest_and_most_used(
    page: Any, catalog_models: dict[str, str], start: str, sort: str, expected: list[str]
) -> None:
    """Registered in one block, cheap then dear then free: newest is the later tx first;
    with no calls yet most_used falls back on the newest order."""
    page.goto(f"/?tag=catalog-test&sort={start}")
    page.get_by_label("Sort by").select_option(sort)
    expect(page.locator("#catalog-cards li.card h2 a")).to_have_text(expected)


def test_catalog_renders_filters_from_the_url_without_scripts(
    browser: Any, ui_node: Any, catalog_models: dict[str, str]
) -> None:
    context = browser.new_context(base_url=ui_node.url, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto("/?tag=catalog-test&sort=price")
        assert card_names(page) == ["cat-free", "cat-cheap", "cat-dear"]
    finally:
        context.close()


def test_catalog_with_a_bad_filter_says_why_in_the_page(
    page: Any, ui_node: Any, console_watch: Any
) -> None:
    console_watch.allow(r"status of 400 .*sort=loudest")  # the page's own 400 status
    page.goto("/?sort=loudest")
    assert "loudest" in page.locator("#catalog-error").inner_text()
