"""Fixtures for web tests: the Flask app over a regtest node with the standard models
registered (tests/factories_market.py), one node per module, and its test client."""

from __future__ import annotations

import pytest
from factories_market import market, market_node, versions
from flask import Flask
from flask.testing import FlaskClient

from modelchain.market.node import MarketNode
from modelchain.web import create_app

__all__ = ["market", "market_node", "versions", "app", "client"]


@pytest.fixture(scope="module")
def app(market_node: MarketNode) -> Flask:
    return create_app(node=market_node)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
