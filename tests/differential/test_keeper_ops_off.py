"""Without zabby.keeperExtensions, ClickHouse Keeper's opcodes get exactly what Apache
ZooKeeper 3.8 gives them: the same raw frames, the same replies (an unknown opcode:
UNIMPLEMENTED with zxid -1, then the connection closes; in a multi: the multi fails),
and the apiv / ftfl words are not commands."""

from __future__ import annotations

import socket

import pytest

from zabby.testing.rawclient import OPEN_ACL_UNSAFE, ConnectionClosed, RawClient
from zabby.wire import MultiRequest, Op
from zabby.wire.keeper import (
    CHECK_NOT_EXISTS,
    CREATE_IF_NOT_EXISTS,
    FILTERED_LIST,
    LIST_RECURSIVE,
    REMOVE_RECURSIVE,
    FilteredListRequest,
    ListRecursiveRequest,
    RemoveRecursiveRequest,
)
from zabby.wire.records import CheckVersionRequest, CreateRequest, PathWatchRequest

pytestmark = pytest.mark.differential

REQUESTS = {
    "FilteredList": (FILTERED_LIST, FilteredListRequest("/", False, 1)),
    "CheckNotExists": (CHECK_NOT_EXISTS, CheckVersionRequest("/koff-none", -1)),
    "CreateIfNotExists": (CREATE_IF_NOT_EXISTS,
                          CreateRequest("/koff-cine", b"", OPEN_ACL_UNSAFE, 0)),
    "RemoveRecursive": (REMOVE_RECURSIVE, RemoveRecursiveRequest("/koff-rr", 10)),
    "ListRecursive": (LIST_RECURSIVE, ListRecursiveRequest("/", 10)),
}


def _outcome(srv, op, body):
    c = RawClient(srv.host, srv.port, io_timeout=10)
    c.open()
    try:
        c.connect()
        r = c.request(op, body)
        closed = c.wait_closed(5.0)
        # nothing was created or removed by the refused request
        return (r.err, r.zxid == -1, r.raw, closed)
    finally:
        c.drop()


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_keeper_opcode_is_unknown_as_in_zookeeper(diff_pair, name):
    ref, cand = diff_pair
    op, body = REQUESTS[name]
    want = _outcome(ref, op, body)
    assert _outcome(cand, op, body) == want
    assert want[:2] == (-6, True) and want[3]  # UNIMPLEMENTED, zxid -1, closed


MULTI_OPS = {
    "CheckNotExists": (CHECK_NOT_EXISTS, CheckVersionRequest("/koff-m", -1)),
    "CreateIfNotExists": (CREATE_IF_NOT_EXISTS, CreateRequest("/koff-c", b"", OPEN_ACL_UNSAFE, 0)),
    "RemoveRecursive": (REMOVE_RECURSIVE, RemoveRecursiveRequest("/koff-r", 10)),
}


def _multi_outcome(srv, op, body):
    c = RawClient(srv.host, srv.port, io_timeout=10)
    c.open()
    try:
        c.connect()
        r = c.request(Op.MULTI, MultiRequest([
            (op, body), (Op.CREATE, CreateRequest("/koff-m", b"", OPEN_ACL_UNSAFE, 0))]))
        still_open = c.request(Op.EXISTS, PathWatchRequest("/koff-m", False))
        return r.err, r.raw, still_open.err
    except ConnectionClosed:
        return "closed"
    finally:
        c.drop()


@pytest.mark.parametrize("name", sorted(MULTI_OPS))
def test_multi_with_a_keeper_op_fails_as_in_zookeeper(diff_pair, name):
    ref, cand = diff_pair
    want = _multi_outcome(ref, *MULTI_OPS[name])
    assert _multi_outcome(cand, *MULTI_OPS[name]) == want


def _word(srv, word: bytes) -> bytes:
    with socket.create_connection((srv.host, srv.port), timeout=5) as s:
        s.sendall(word)
        out = b""
        try:
            while chunk := s.recv(4096):
                out += chunk
        except ConnectionResetError:
            out += b"<reset>"
    return out


@pytest.mark.parametrize("word", [b"apiv", b"ftfl"])
def test_keeper_words_are_not_commands(diff_pair, word):
    ref, cand = diff_pair
    assert _word(cand, word) == _word(ref, word)


def test_multi_read_with_filtered_list_fails_as_in_zookeeper(diff_pair):
    def outcome(srv):
        c = RawClient(srv.host, srv.port, io_timeout=10)
        c.open()
        try:
            c.connect()
            r = c.request(Op.MULTI_READ, MultiRequest([
                (FILTERED_LIST, FilteredListRequest("/", False, 0)),
                (Op.GET_DATA, PathWatchRequest("/", False))]))
            return r.err, r.raw, c.request(Op.EXISTS, PathWatchRequest("/", False)).err
        except ConnectionClosed:
            return "closed"
        finally:
            c.drop()

    ref, cand = diff_pair
    assert outcome(cand) == outcome(ref)
