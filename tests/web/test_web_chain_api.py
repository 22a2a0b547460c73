"""The chain routes of /api/v1 refuse what they cannot do with a typed error."""

from __future__ import annotations

from pathlib import Path

from modelchain.market.config import NodeConfig
from modelchain.market.node import MarketNode
from modelchain.web import create_app


def test_asking_a_node_that_does_not_mine_for_blocks_is_a_conflict_not_a_500(
    tmp_path: Path,
) -> None:
    node = MarketNode(NodeConfig(data_dir=tmp_path, network="regtest", mine=False))
    try:
        client = create_app(node=node).test_client()
        response = client.post("/api/v1/mine", json={"blocks": 1})
        assert response.status_code == 409
        assert response.get_json()["error"]["code"] == "mining-disabled"
        assert node.chain.height == 0
    finally:
        node.close()
