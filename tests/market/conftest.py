"""Fixtures for market tests: a regtest node per module with the standard models registered
(tests/factories_market.py), shared because building workers and blocks takes time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from factories_market import open_market_node

from modelchain.contracts.registry import VersionInfo
from modelchain.market.node import MarketNode


@pytest.fixture(scope="module")
def market(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[MarketNode, dict[str, VersionInfo]]]:
    """(node, versions by "name@version") on a fresh data dir; one per test module."""
    node, infos = open_market_node(tmp_path_factory.mktemp("market-node"))
    yield node, infos
    node.close()


@pytest.fixture(scope="module")
def market_node(market: tuple[MarketNode, dict[str, VersionInfo]]) -> MarketNode:
    return market[0]


@pytest.fixture(scope="module")
def versions(market: tuple[MarketNode, dict[str, VersionInfo]]) -> dict[str, VersionInfo]:
    return market[1]
