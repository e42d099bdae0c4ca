"""Known-answer tests: byte strings written out by hand from zookeeper.jute.

Jute's binary archive: int = 4 bytes big-endian, long = 8, boolean = 1 byte,
buffer/ustring = int length + bytes (-1 for null), vector = int count + items
(-1 for null), records = their fields in order. Frames are int length + payload.
The hex below is written from those rules, not produced by our encoder.
"""

from __future__ import annotations

import pytest

from zabby.wire import Err, EventType, KeeperState, Op, ProtocolError
from zabby.wire.protocol import (
    FrameDecoder,
    MultiRequest,
    MultiResponse,
    decode_connect,
    decode_connect_request,
    decode_connect_response,
    decode_reply_header,
    decode_request,
    encode_connect_request,
    encode_connect_response,
    encode_notification,
    encode_reply,
    encode_request,
)
from zabby.wire.records import (
    ACL,
    CheckVersionRequest,
    ConnectRequest,
    ConnectResponse,
    Create2Response,
    CreateRequest,
    DeleteRequest,
    Empty,
    ErrorResponse,
    GetChildrenResponse,
    GetDataResponse,
    Id,
    MultiHeader,
    PathResponse,
    PathWatchRequest,
    ReplyHeader,
    SetWatches,
    Stat,
    WatcherEvent,
)


def h(s: str) -> bytes:
    """Hex with whitespace and `|` separators allowed, for readability."""
    return bytes.fromhex(s.replace("|", " "))


def encode(rec) -> bytes:
    out = bytearray()
    rec.encode(out)
    return bytes(out)


# --------------------------------------------------------------- connect
# A 3.8 Java client opening a new session with a 30 s timeout: protocolVersion 0,
# lastZxidSeen 0, timeOut 30000, sessionId 0, passwd = 16 zero bytes, readOnly false.
JAVA_NEW_SESSION = h(
    "0000002d"  # frame length 45
    "00000000"  # protocolVersion
    "0000000000000000"  # lastZxidSeen
    "00007530"  # timeOut 30000
    "0000000000000000"  # sessionId
    "00000010"
    + "00" * 16  # passwd: length 16, zeros
    + "00"  # readOnly false
)


def test_connect_request_java_new_session():
    frames = FrameDecoder().feed(JAVA_NEW_SESSION)
    assert len(frames) == 1
    req, ro = decode_connect(frames[0])
    assert req == ConnectRequest(0, 0, 30000, 0, bytes(16))
    assert ro is False
    assert encode_connect_request(req, False) == JAVA_NEW_SESSION


# Reconnect of a read-only-capable client: lastZxidSeen 0x100000005, timeOut 4000,
# sessionId 0x1000a6b2c3d0001, a 4-byte passwd, readOnly true.
JAVA_RECONNECT_RO = h(
    "00000021"  # 4+8+4+8+(4+4)+1 = 33
    "00000000"
    "0000000100000005"
    "00000fa0"
    "01000a6b2c3d0001"
    "00000004 deadbeef"
    "01"
)


def test_connect_request_reconnect_read_only():
    req, ro = decode_connect(JAVA_RECONNECT_RO[4:])
    assert req.protocolVersion == 0
    assert req.lastZxidSeen == 0x100000005
    assert req.timeOut == 4000
    assert req.sessionId == 0x1000A6B2C3D0001
    assert req.passwd == b"\xde\xad\xbe\xef"
    assert ro is True
    assert encode_connect_request(req, True) == JAVA_RECONNECT_RO


def test_connect_request_legacy_without_read_only():
    # same as the new-session frame minus the trailing readOnly byte
    payload = JAVA_NEW_SESSION[4:-1]
    assert decode_connect(payload) == (ConnectRequest(0, 0, 30000, 0, bytes(16)), False)


def test_connect_request_null_passwd():
    payload = h("00000000 0000000000000000 00007530 0000000000000000 ffffffff")
    assert decode_connect(payload) == (ConnectRequest(0, 0, 30000, 0, None), False)


def test_connect_response():
    resp = ConnectResponse(0, 30000, 0x1000A6B2C3D0001, bytes(range(16)))
    # protocolVersion(4) timeOut(4) sessionId(8) passwd(4+16) readOnly(1) = 37
    expected = h(
        "00000025000000000000753001000a6b2c3d000100000010 000102030405060708090a0b0c0d0e0f00"
    )
    assert encode_connect_response(resp, False) == expected
    assert decode_connect_response(expected[4:]) == (resp, False)
    ro = encode_connect_response(resp, True)
    assert ro == expected[:-1] + b"\x01"
    assert decode_connect_response(ro[4:]) == (resp, True)
    # a 3.4-style response without readOnly
    assert decode_connect_response(expected[4:-1]) == (resp, False)
    # for a client that sent no readOnly byte: none back (ZooKeeper 3.8, ZOOKEEPER-4814)
    legacy = encode_connect_response(resp, None)
    assert legacy == h("00000024") + expected[4:-1]


def test_connect_request_says_whether_read_only_was_sent():
    assert decode_connect_request(JAVA_NEW_SESSION[4:])[1] is False
    assert decode_connect_request(JAVA_RECONNECT_RO[4:])[1] is True
    assert decode_connect_request(JAVA_NEW_SESSION[4:-1]) == (
        ConnectRequest(0, 0, 30000, 0, bytes(16)), None)


# -------------------------------------------------------------- requests
def test_get_data_request_from_java_client():
    # zk.getData("/foo", true, stat): xid 1, op getData(4), path "/foo", watch true
    data = h("00000011 | 00000001 00000004 | 00000004 2f666f6f | 01")
    frames = FrameDecoder().feed(data)
    assert decode_request(frames[0]) == (1, Op.GET_DATA, PathWatchRequest("/foo", True))
    assert encode_request(1, Op.GET_DATA, PathWatchRequest("/foo", True)) == data


def test_ping():
    data = h("00000008 fffffffe 0000000b")
    assert decode_request(data[4:]) == (-2, Op.PING, Empty())
    assert encode_request(-2, Op.PING) == data


def test_close_session():
    data = h("00000008 00000009 fffffff5")
    assert decode_request(data[4:]) == (9, Op.CLOSE_SESSION, Empty())
    assert encode_request(9, Op.CLOSE_SESSION) == data


def test_create_request_open_acl_ephemeral_sequential():
    # create("/app/lock-", b"hi", OPEN_ACL_UNSAFE, EPHEMERAL_SEQUENTIAL) as create2 (15)
    body = h(
        "0000000a 2f6170702f6c6f636b2d"  # "/app/lock-"
        "00000002 6869"  # data b"hi"
        "00000001"  # one ACL
        "0000001f"  # perms ALL
        "00000005 776f726c64"  # "world"
        "00000006 616e796f6e65"  # "anyone"
        "00000003"  # flags EPHEMERAL_SEQUENTIAL
    )
    req = CreateRequest("/app/lock-", b"hi", [ACL(31, Id("world", "anyone"))], 3)
    assert CreateRequest.decode(body) == req
    assert encode(req) == body
    framed = encode_request(3, Op.CREATE2, req)
    assert framed == h("%08x" % (8 + len(body)) + "00000003 0000000f") + body
    assert decode_request(framed[4:]) == (3, Op.CREATE2, req)


def test_null_string_and_buffer_and_vector():
    # null path (-1), null data (-1), null acl vector (-1), flags 0
    body = h("ffffffff ffffffff ffffffff 00000000")
    assert CreateRequest.decode(body) == CreateRequest(None, None, None, 0)
    assert encode(CreateRequest(None, None, None, 0)) == body
    # empty is not null
    body = h("00000000 00000000 00000000 00000000")
    assert CreateRequest.decode(body) == CreateRequest("", b"", [], 0)


def test_utf8_path():
    # "/é€😀": 2f | c3a9 | e282ac | f09f9880 = 10 bytes
    body = h("0000000a 2fc3a9e282acf09f9880 00")
    assert PathWatchRequest.decode(body) == PathWatchRequest("/é€😀", False)
    assert encode(PathWatchRequest("/é€😀", False)) == body


def test_set_watches():
    body = h(
        "000000000000002a"  # relativeZxid 42
        "00000001 00000002 2f61"  # dataWatches ["/a"]
        "00000000"  # existWatches []
        "00000002 00000002 2f62 00000000"  # childWatches ["/b", ""]
    )
    rec = SetWatches(42, ["/a"], [], ["/b", ""])
    assert SetWatches.decode(body) == rec
    assert encode(rec) == body


# ---------------------------------------------------------------- replies
STAT = Stat(
    czxid=0x10,
    mzxid=0x1A,
    ctime=1700000000000,
    mtime=1700000000000,
    version=1,
    cversion=0,
    aversion=0,
    ephemeralOwner=0,
    dataLength=5,
    numChildren=0,
    pzxid=0x10,
)
STAT_BYTES = h(
    "0000000000000010"  # czxid
    "000000000000001a"  # mzxid
    "0000018bcfe56800"  # ctime 1700000000000
    "0000018bcfe56800"  # mtime
    "00000001"  # version
    "00000000"  # cversion
    "00000000"  # aversion
    "0000000000000000"  # ephemeralOwner
    "00000005"  # dataLength
    "00000000"  # numChildren
    "0000000000000010"  # pzxid
)


def test_stat_layout():
    assert len(STAT_BYTES) == 68
    assert encode(STAT) == STAT_BYTES
    assert Stat.decode(STAT_BYTES) == STAT


def test_get_data_reply():
    # reply to xid 7 at zxid 0x1a: data b"hello" + stat; 16 + 9 + 68 = 93 = 0x5d
    expected = h("0000005d | 00000007 000000000000001a 00000000 | 00000005 68656c6c6f") + STAT_BYTES
    got = encode_reply(7, 0x1A, 0, GetDataResponse(b"hello", STAT))
    assert bytes(got) == expected
    f = FrameDecoder().feed(expected)[0]
    hdr, pos = decode_reply_header(f)
    assert hdr == ReplyHeader(7, 0x1A, 0)
    assert GetDataResponse.decode_from(f, pos) == (GetDataResponse(b"hello", STAT), len(f))


def test_get_data_reply_null_data():
    expected = h("00000058 | 00000007 000000000000001a 00000000 | ffffffff") + STAT_BYTES
    assert bytes(encode_reply(7, 0x1A, 0, GetDataResponse(None, STAT))) == expected


def test_error_reply():
    # NONODE (-101 = 0xffffff9b): header only, body suppressed
    expected = h("00000010 | 00000003 000000000000001a ffffff9b")
    assert bytes(encode_reply(3, 0x1A, Err.NONODE, GetDataResponse(b"x", STAT))) == expected
    assert decode_reply_header(expected[4:]) == (ReplyHeader(3, 0x1A, -101), 16)


def test_ping_reply():
    assert bytes(encode_reply(-2, 0x1A, 0)) == h("00000010 fffffffe 000000000000001a 00000000")


def test_get_children_reply():
    body = h("00000002 00000001 61 00000003 626262")
    assert encode(GetChildrenResponse(["a", "bbb"])) == body
    assert bytes(encode_reply(4, 1, 0, GetChildrenResponse(["a", "bbb"]))) == (
        h("%08x" % (16 + len(body)) + "00000004 0000000000000001 00000000") + body
    )


# ----------------------------------------------------------- notification
def test_notification():
    # NodeDataChanged(3), SyncConnected(3) on "/a"; xid -1, zxid -1, err 0
    expected = h(
        "0000001e"  # 16 + 4 + 4 + 4 + 2 = 30
        "ffffffff ffffffffffffffff 00000000"
        "00000003 00000003 00000002 2f61"
    )
    got = encode_notification(EventType.NODE_DATA_CHANGED, KeeperState.SYNC_CONNECTED, "/a")
    assert bytes(got) == expected
    f = FrameDecoder().feed(expected)[0]
    hdr, pos = decode_reply_header(f)
    assert hdr == ReplyHeader(-1, -1, 0)
    assert WatcherEvent.decode(f[pos:]) == WatcherEvent(3, 3, "/a")


def test_session_event_notification_null_path():
    # e.g. a state change event with no path: type None(-1), state Expired(-112), path null
    expected = h("0000001c ffffffff ffffffffffffffff 00000000 ffffffff ffffff90 ffffffff")
    assert bytes(encode_notification(EventType.NONE, KeeperState.EXPIRED, None)) == expected


# ------------------------------------------------------------------ multi
MULTI_DONE = h("ffffffff 01 ffffffff")  # MultiHeader(type -1, done true, err -1)


def test_multi_header_layout():
    assert encode(MultiHeader(-1, True, -1)) == MULTI_DONE
    assert MultiHeader.decode(MULTI_DONE) == MultiHeader(-1, True, -1)


def test_multi_request_create_check_delete():
    body = (
        h("00000001 00 ffffffff")  # MultiHeader(create, false, -1)
        + h(
            "00000002 2f78 00000000 00000001 0000001f 00000005 776f726c64 00000006 616e796f6e65 00000000"
        )
        + h("0000000d 00 ffffffff")  # check
        + h("00000002 2f78 ffffffff")  # path "/x", version -1
        + h("00000002 00 ffffffff")  # delete
        + h("00000002 2f79 00000005")  # path "/y", version 5
        + MULTI_DONE
    )
    mr = MultiRequest(
        [
            (Op.CREATE, CreateRequest("/x", b"", [ACL(31, Id("world", "anyone"))], 0)),
            (Op.CHECK, CheckVersionRequest("/x", -1)),
            (Op.DELETE, DeleteRequest("/y", 5)),
        ]
    )
    assert MultiRequest.decode(body) == mr
    assert encode(mr) == body
    framed = h("%08x" % (8 + len(body)) + "00000005 0000000e") + body
    assert encode_request(5, Op.MULTI, mr) == framed
    assert decode_request(framed[4:]) == (5, Op.MULTI, mr)


def test_multi_request_empty():
    assert MultiRequest.decode(MULTI_DONE) == MultiRequest([])
    assert encode(MultiRequest([])) == MULTI_DONE


def test_multi_read_get_data_and_get_children():
    # Java's MultiOperationRecord serialises Op.getData / Op.getChildren as
    # GetDataRequest / GetChildrenRequest: a path *and* a watch boolean (always false).
    body = (
        h("00000004 00 ffffffff")  # getData
        + h("00000002 2f61 00")  # path "/a", watch false
        + h("00000008 00 ffffffff")  # getChildren
        + h("00000001 2f 00")  # path "/", watch false
        + MULTI_DONE
    )
    mr = MultiRequest.decode(body)
    assert [(op, rec.path) for op, rec in mr.ops] == [(Op.GET_DATA, "/a"), (Op.GET_CHILDREN, "/")]
    assert encode(mr) == body
    xid, op, got = decode_request(encode_request(6, Op.MULTI_READ, mr)[4:])
    assert (xid, op) == (6, Op.MULTI_READ)
    assert [(o, r.path) for o, r in got.ops] == [(Op.GET_DATA, "/a"), (Op.GET_CHILDREN, "/")]


def test_multi_request_bad_op_type():
    with pytest.raises(ProtocolError):
        MultiRequest.decode(h("0000000b 00 ffffffff") + MULTI_DONE)  # ping inside multi


def test_multi_response_success():
    stat = Stat(*range(1, 12))
    body = (
        h("00000001 00 00000000")  # create, err 0
        + h("00000002 2f78")  # CreateResponse "/x"
        + h("0000000f 00 00000000")  # create2
        + h("00000002 2f7a")
        + encode(stat)
        + h("0000000d 00 00000000")  # check: no body
        + h("00000002 00 00000000")  # delete: no body
        + MULTI_DONE
    )
    resp = MultiResponse(
        [
            (Op.CREATE, 0, PathResponse("/x")),
            (Op.CREATE2, 0, Create2Response("/z", stat)),
            (Op.CHECK, 0, None),
            (Op.DELETE, 0, None),
        ]
    )
    assert encode(resp) == body
    assert MultiResponse.decode_from(body, 0) == (resp, len(body))


def test_multi_response_failed():
    # a failed multi: every result is an ErrorResult, header (type -1, done false, err)
    # followed by ErrorResponse(err): first op OK(0), second NONODE(-101), third
    # RUNTIMEINCONSISTENCY(-2)
    body = (
        h("ffffffff 00 00000000 00000000")
        + h("ffffffff 00 ffffff9b ffffff9b")
        + h("ffffffff 00 fffffffe fffffffe")
        + MULTI_DONE
    )
    resp = MultiResponse(
        [
            (Op.ERROR, 0, ErrorResponse(0)),
            (Op.ERROR, Err.NONODE, ErrorResponse(Err.NONODE)),
            (Op.ERROR, Err.RUNTIMEINCONSISTENCY, ErrorResponse(Err.RUNTIMEINCONSISTENCY)),
        ]
    )
    assert encode(resp) == body
    assert MultiResponse.decode_from(body, 0) == (resp, len(body))
    framed = bytes(encode_reply(5, 0x20, 0, resp))
    assert framed == h("%08x" % (16 + len(body)) + "00000005 0000000000000020 00000000") + body
