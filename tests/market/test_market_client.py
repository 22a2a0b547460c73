"""NodeClient's bounds on what an untrusted node sends: bytes and seconds per answer,
a cancel flag, and an answer that is not the JSON it claims (market/client.py).

A stand-in server (tests/stand_in_peer.py) answers; without bounds the client reads
an answer whole, as the CLI always did.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from stand_in_peer import StandInPeer, dripping, endless, raw

from modelchain.market.client import NodeClient, NodeError


@pytest.fixture
def peer() -> Iterator[StandInPeer]:
    stand_in = StandInPeer({"/small": {"ok": True}, "/endless": endless()})
    stand_in.routes["/drip"] = dripping(stand_in)
    yield stand_in
    stand_in.close()


def test_an_unbounded_client_reads_a_whole_answer(peer: StandInPeer) -> None:
    assert NodeClient(peer.url).get("/small") == {"ok": True}


def test_an_answer_within_the_bounds_is_read(peer: StandInPeer) -> None:
    client = NodeClient(peer.url, max_answer_bytes=100, answer_seconds=60)
    assert client.get("/small") == {"ok": True}


def test_an_answer_over_the_byte_bound_is_given_up(peer: StandInPeer) -> None:
    with pytest.raises(NodeError) as err:
        NodeClient(peer.url, max_answer_bytes=1_000_000).get("/endless")
    assert (err.value.code, err.value.status) == ("node-answer-too-large", 200)


def test_an_answer_that_drips_past_its_time_is_given_up(peer: StandInPeer) -> None:
    with pytest.raises(NodeError) as err:
        NodeClient(peer.url, answer_seconds=0.2).get("/drip")
    assert (err.value.code, err.value.status) == ("node-timeout", 0)


def test_a_read_in_progress_stops_when_cancelled(peer: StandInPeer) -> None:
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    with pytest.raises(NodeError) as err:
        NodeClient(peer.url, cancelled=cancel.is_set).get("/drip")
    assert err.value.code == "node-cancelled"


def test_json_that_does_not_parse_is_a_node_error(peer: StandInPeer) -> None:
    peer.routes["/broken"] = raw(b"{")
    with pytest.raises(NodeError) as err:
        NodeClient(peer.url).get("/broken")
    assert (err.value.code, err.value.status) == ("node-bad-answer", 200)


@pytest.mark.parametrize("bounded", [False, True], ids=["unbounded", "bounded"])
def test_an_answer_cut_off_is_unreachable_not_a_crash(peer: StandInPeer, bounded: bool) -> None:
    peer.routes["/cut"] = raw(b'{"a": ', length=100)
    client = NodeClient(peer.url, max_answer_bytes=1000 if bounded else None)
    with pytest.raises(NodeError) as err:
        client.get("/cut")
    assert err.value.code == "node-unreachable"
