"""Fixtures for web tests: the Flask app over a regtest node with the standard models
registered (tests/factories_market.py), one node per module, and its test client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from factories_market import open_market_node
from flask import Flask
from flask.testing import FlaskClient

from modelchain.contracts.registry import VersionInfo
from modelchain.market.node import MarketNode
from modelchain.web import create_app


@pytest.fixture(scope="module")
def market(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[MarketNode, dict[str, VersionInfo]]]:
    node, infos = open_market_node(tmp_path_factory.mktemp("web-node"))
    yield node, infos
    node.close()


@pytest.fixture(scope="module")
def market_node(market: tuple[MarketNode, dict[str, VersionInfo]]) -> MarketNode:
    return market[0]


@pytest.fixture(scope="module")
def versions(market: tuple[MarketNode, dict[str, VersionInfo]]) -> dict[str, VersionInfo]:
    return market[1]


@pytest.fixture(scope="module")
def app(market_node: MarketNode) -> Flask:
    return create_app(node=market_node)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
