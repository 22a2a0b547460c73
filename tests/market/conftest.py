"""Fixtures for market tests: a regtest node per module with the standard models registered
(tests/factories_market.py), shared because building workers and blocks takes time."""

from factories_market import market, market_node, versions

__all__ = ["market", "market_node", "versions"]
