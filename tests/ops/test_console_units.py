"""The console's pure pieces: srvr parsing, lag, data rendering, error sentences."""

from __future__ import annotations

import asyncio

import pytest

from zabby.ops.console import ApiError, data_json, keeper_error, norm_path, perms_text
from zabby.ops.console.client import KeeperError
from zabby.ops.console.ensemble import ensemble_view, parse_srvr
from zabby.server.config import ServerConfig, ServerSpec
from zabby.wire import Err

SRVR = """Zookeeper version: 3.8.0-zabby-0.1.0, built on 2026-12-05 00:40 UTC
Latency min/avg/max: 0/0.4483/13
Received: 30
Sent: 29
Connections: 3
Outstanding: 0
Zxid: 0x30000000c
Mode: follower
Node count: 5
"""


def test_parse_srvr():
    r = parse_srvr(SRVR)
    assert r["mode"] == "follower" and r["zxid"] == 0x30000000C
    assert r["connections"] == 3 and r["nodeCount"] == 5 and r["latency"] == "0/0.4483/13"
    assert parse_srvr("This ZooKeeper instance is not currently serving requests\n") == {
        "mode": "not serving"}


def test_lag_is_counted_within_an_epoch_only(monkeypatch):
    answers = {1: "Zxid: 0x500000010\nMode: leader\n", 2: "Zxid: 0x50000000c\nMode: follower\n",
               3: "Zxid: 0x4000000ff\nMode: follower\n"}

    async def fake_srvr(host, port, timeout=2.0):
        return answers[port]

    monkeypatch.setattr("zabby.ops.console.ensemble.srvr", fake_srvr)
    cfg = ServerConfig(servers={i: ServerSpec(i, "127.0.0.1", 1, 1, client_host="0.0.0.0",
                                              client_port=i) for i in (1, 2, 3)}, server_id=2)
    view = asyncio.run(ensemble_view(cfg, ("127.0.0.1", 2)))
    by_id = {m["id"]: m for m in view["members"]}
    assert view["leader"] == 1
    assert (by_id[1]["lag"], by_id[2]["lag"], by_id[3]["lag"]) == (0, 4, None)
    assert by_id[3]["lagNote"] == "behind an epoch"
    assert by_id[2]["self"] and by_id[1]["host"] == "127.0.0.1"


def test_data_rendering():
    assert data_json(b'{"a":1}')["json"] == '{\n  "a": 1\n}'
    assert data_json(b"plain")["json"] is None and data_json(b"plain")["text"] == "plain"
    assert data_json(b"42")["json"] == "42"
    b = data_json(b"\xff\x00")
    assert b["text"] is None and b["base64"] == "/wA=" and b["size"] == 2
    assert perms_text(31) == "cdrwa" and perms_text(1) == "r"


@pytest.mark.parametrize("code,status,start", [
    (Err.NOAUTH, 403, "not allowed: digest user 'bob' may not write /x (needs WRITE)"),
    (Err.BADVERSION, 409, "version mismatch: /x"),
    (Err.NOTEMPTY, 409, "not empty: /x"),
    (Err.NONODE, 404, "no such node: /x"),
    (Err.NODEEXISTS, 409, "already exists: /x"),
    (Err.CONNECTIONLOSS, 503, "the server did not answer"),
])
def test_error_sentences(code, status, start):
    e = keeper_error(KeeperError(code, "/x"), "write", "digest user 'bob'", "WRITE")
    assert e.status == status and e.message.startswith(start)


def test_paths_are_checked_before_they_reach_the_server():
    assert norm_path("/a/b/") == "/a/b"
    assert norm_path("/") == "/"
    for bad in ("", "a", "/a//b", "/a/./b", "/a/.."):
        with pytest.raises(ApiError):
            norm_path(bad)
