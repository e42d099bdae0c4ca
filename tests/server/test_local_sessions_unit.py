"""Which requests upgrade (or are refused for) a local session, and which server class a
configuration gets: the parts of server.local_sessions that need no ensemble."""

from __future__ import annotations

from zabby.server.config import parse_config
from zabby.server.ensemble import EnsembleServer
from zabby.server.local_sessions import (
    LocalSessionsEnsembleServer,
    _creates_ephemeral,
    server_class,
)
from zabby.server.readonly import ReadOnlyEnsembleServer
from zabby.testing.rawclient import OPEN_ACL_UNSAFE
from zabby.wire import Op
from zabby.wire.protocol import MultiRequest
from zabby.wire.records import CreateRequest, CreateTTLRequest, SetDataRequest

BASE = ("tickTime=500\ndataDir=/nonexistent\nclientPort=2181\n"
        "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889\n"
        "server.3=127.0.0.1:2890:3890\n")


def _create(flags: int) -> CreateRequest:
    return CreateRequest("/a", b"", OPEN_ACL_UNSAFE, flags)


def test_ephemeral_creates_need_a_global_session():
    # as ZooKeeper's checkUpgradeSession: create / create2 with an ephemeral mode
    assert _creates_ephemeral(Op.CREATE, _create(1))
    assert _creates_ephemeral(Op.CREATE2, _create(3))
    assert not _creates_ephemeral(Op.CREATE, _create(0))
    assert not _creates_ephemeral(Op.CREATE2, _create(2))
    # container and TTL creates are never ephemeral; other writes never upgrade
    assert not _creates_ephemeral(Op.CREATE_CONTAINER, _create(4))
    assert not _creates_ephemeral(Op.CREATE_TTL, CreateTTLRequest("/a", b"", OPEN_ACL_UNSAFE, 5, 100))
    assert not _creates_ephemeral(Op.SET_DATA, SetDataRequest("/a", b"", -1))
    assert not _creates_ephemeral(Op.CREATE, None)
    # a multi with at least one ephemeral create
    assert _creates_ephemeral(Op.MULTI, MultiRequest([(Op.CREATE, _create(0)),
                                                      (Op.CREATE2, _create(1))]))
    assert not _creates_ephemeral(Op.MULTI, MultiRequest([(Op.CREATE, _create(0))]))
    assert not _creates_ephemeral(Op.MULTI, MultiRequest([]))


def test_server_class_for_each_configuration():
    def cls(extra: str) -> type:
        return server_class(parse_config(BASE + extra))

    assert cls("") is EnsembleServer
    assert cls("localSessionsEnabled=true\n") is LocalSessionsEnsembleServer
    assert cls("readonlymode.enabled=true\n") is ReadOnlyEnsembleServer
    both = cls("readonlymode.enabled=true\nlocalSessionsEnabled=true\n")
    assert issubclass(both, LocalSessionsEnsembleServer)
    assert issubclass(both, ReadOnlyEnsembleServer)
    # upgrading alone changes nothing: it only matters for local sessions
    assert cls("localSessionsUpgradingEnabled=true\n") is EnsembleServer
