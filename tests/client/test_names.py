"""zabby.client keeps kazoo's names: every kazoo exception for a ZooKeeper error code
exists in zabby.client with the same code, and ZnodeStat has kazoo's fields and
properties (kazoo is a test dependency only)."""

from __future__ import annotations

import kazoo.exceptions as kx
from kazoo.protocol.states import ZnodeStat as KazooStat

import zabby.client as zc
from zabby.client import error_for


def test_exception_names_and_codes():
    missing, wrong = [], []
    for name in dir(kx):
        obj = getattr(kx, name)
        if not (isinstance(obj, type) and issubclass(obj, kx.KazooException)):
            continue
        ours = getattr(zc, name, None)
        if ours is None:
            missing.append(name)
            continue
        assert issubclass(ours, zc.KazooException), name
        code = getattr(obj, "code", None)
        if isinstance(code, int) and issubclass(obj, kx.ZookeeperError):
            if name != "ConnectionClosedError" and ours.code != code:
                wrong.append((name, code, ours.code))
            if name not in ("RolledBackError", "ConnectionClosedError"):
                assert type(error_for(code)).__name__ == obj.__name__ or \
                    error_for(code).code == code
    assert missing == []
    assert wrong == []


def test_znode_stat_fields_and_properties():
    assert zc.ZnodeStat._fields == KazooStat._fields
    s = zc.ZnodeStat(1, 2, 3000, 4000, 5, 6, 7, 8, 9, 10, 11)
    k = KazooStat(1, 2, 3000, 4000, 5, 6, 7, 8, 9, 10, 11)
    for prop in ("acl_version", "children_version", "created", "last_modified",
                 "owner_session_id", "creation_transaction_id",
                 "last_modified_transaction_id", "data_length", "children_count"):
        assert getattr(s, prop) == getattr(k, prop), prop


def test_kazoo_state_values():
    from kazoo.protocol.states import EventType, KazooState, KeeperState
    for name in ("CONNECTED", "SUSPENDED", "LOST"):
        assert getattr(zc.KazooState, name) == getattr(KazooState, name)
    for name in ("CREATED", "DELETED", "CHANGED", "CHILD", "NONE"):
        assert getattr(zc.EventType, name) == getattr(EventType, name)
    for name in ("CONNECTED", "AUTH_FAILED", "CONNECTED_RO", "EXPIRED_SESSION"):
        assert getattr(zc.KeeperState, name) == getattr(KeeperState, name)
