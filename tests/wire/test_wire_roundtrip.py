"""Property tests: everything the wire layer encodes decodes back to itself."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zabby.wire import ProtocolError, Record
from zabby.wire.constants import XID_NOTIFICATION
from zabby.wire.jute import vector
from zabby.wire.protocol import (
    MULTI_OP_BODY,
    MULTI_RESULT_BODY,
    REQUEST_BODY,
    FrameDecoder,
    MultiRequest,
    MultiResponse,
    decode_connect,
    decode_connect_response,
    decode_reply_header,
    decode_request,
    encode_connect_request,
    encode_connect_response,
    encode_notification,
    encode_reply,
    encode_request,
    frame,
)
from zabby.wire.records import (
    ConnectRequest,
    ConnectResponse,
    Empty,
    ReplyHeader,
    WatcherEvent,
)

from .wire_strategies import (
    INT32,
    INT64,
    RECORD_CLASSES,
    USTRING,
    body_strategy,
    encoded,
    multi_request_strategy,
    multi_response_strategy,
    record_strategy,
    request_strategy,
)

FAST = settings(max_examples=40, deadline=None)
MEDIUM = settings(max_examples=120, deadline=None)


def one_frame(data: bytes) -> bytes:
    """Split a framed message with FrameDecoder, insisting on exactly one frame."""
    frames = FrameDecoder().feed(data)
    assert len(frames) == 1
    return frames[0]


def test_record_classes_discovered():
    names = {c.__name__ for c in RECORD_CLASSES}
    assert {"ConnectRequest", "Stat", "ACL", "MultiHeader", "GetDataResponse"} <= names
    assert len(RECORD_CLASSES) > 30


# ------------------------------------------------------------------ records
@pytest.mark.parametrize("cls", RECORD_CLASSES, ids=lambda c: c.__name__)
@FAST
@given(data=st.data())
def test_record_roundtrip(cls, data):
    rec = data.draw(record_strategy(cls))
    b = rec.to_bytes()
    assert encoded(rec) == b
    back, pos = cls.decode_from(b, 0)
    assert pos == len(b)
    assert back == rec
    assert type(back) is cls
    # decode ignores trailing bytes; memoryview / bytearray inputs and an offset work too
    tail = data.draw(st.binary(max_size=8))
    assert cls.decode(b + tail) == rec
    assert cls.decode(memoryview(bytearray(b + tail))) == rec
    back2, pos2 = cls.decode_from(b"\x00\x01\x02" + b, 3)
    assert (back2, pos2) == (rec, len(b) + 3)
    # encoding is deterministic and appends to an existing buffer
    out = bytearray(b"xy")
    rec.encode(out)
    assert bytes(out) == b"xy" + b
    # equality/hash are consistent
    assert hash(back) == hash(rec)


@pytest.mark.parametrize("cls", RECORD_CLASSES, ids=lambda c: c.__name__)
@FAST
@given(data=st.data())
def test_record_strict_prefix_is_truncated(cls, data):
    """Every field is mandatory, so any strict prefix of an encoding must fail cleanly."""
    b = data.draw(record_strategy(cls)).to_bytes()
    if not b:
        return
    cut = data.draw(st.integers(0, len(b) - 1))
    with pytest.raises(ProtocolError):
        cls.decode(b[:cut])


@pytest.mark.parametrize(
    "cls",
    # nested-record fields default to None (as in Java's jute), which is not encodable
    [c for c in RECORD_CLASSES if all(isinstance(t, str | tuple) for _, t in c.FIELDS)],
    ids=lambda c: c.__name__,
)
def test_record_defaults_roundtrip(cls):
    rec = cls()
    assert cls.decode(rec.to_bytes()) == rec


def test_bool_field_name_prefix_of_other_field():
    """Code generation must not confuse a bool field with another field it prefixes."""

    class Tricky(Record):
        FIELDS = (
            ("watch", "bool"),
            ("watchers", "int"),
            ("watchPaths", vector("ustring")),
            ("watch2", "bool"),
        )

    rec = Tricky(True, 7, ["/a"], False)
    b = rec.to_bytes()
    assert b == b"\x01" + b"\x00\x00\x00\x07" + b"\x00\x00\x00\x01\x00\x00\x00\x02/a" + b"\x00"
    assert Tricky.decode(b) == rec


# ------------------------------------------------------------ request bodies
@pytest.mark.parametrize("op", sorted(REQUEST_BODY), ids=lambda o: f"{getattr(o, 'name', o)}")
@FAST
@given(data=st.data())
def test_request_body_roundtrip(op, data):
    body_type = REQUEST_BODY[op]
    body = data.draw(body_strategy(body_type))
    b = encoded(body)
    back, pos = body_type.decode_from(b, 0)
    assert pos == len(b)
    assert back == body


@pytest.mark.parametrize("op", sorted(MULTI_OP_BODY), ids=lambda o: o.name)
@FAST
@given(data=st.data())
def test_multi_op_body_roundtrip(op, data):
    body = data.draw(record_strategy(MULTI_OP_BODY[op]))
    assert MULTI_OP_BODY[op].decode(body.to_bytes()) == body
    # and inside a MultiRequest on its own
    mr = MultiRequest([(op, body)])
    assert MultiRequest.decode(encoded(mr)) == mr


@pytest.mark.parametrize("op", sorted(MULTI_RESULT_BODY), ids=lambda o: o.name)
@FAST
@given(data=st.data())
def test_multi_result_body_roundtrip(op, data):
    body_type = MULTI_RESULT_BODY[op]
    body = None if body_type is None else data.draw(record_strategy(body_type))
    err = data.draw(INT32)
    resp = MultiResponse([(op, err, body)])
    b = encoded(resp)
    back, pos = MultiResponse.decode_from(b, 0)
    assert pos == len(b)
    assert back == resp


@MEDIUM
@given(multi_request_strategy(), st.binary(max_size=6))
def test_multi_request_roundtrip(mr, tail):
    b = encoded(mr)
    back, pos = MultiRequest.decode_from(b + tail, 0)
    assert pos == len(b)
    assert back == mr
    assert MultiRequest.decode(b) == mr
    # always terminated by the done header (-1, true, -1)
    assert b.endswith(b"\xff\xff\xff\xff\x01\xff\xff\xff\xff")


@MEDIUM
@given(multi_response_strategy(), st.binary(max_size=6))
def test_multi_response_roundtrip(resp, tail):
    b = encoded(resp)
    back, pos = MultiResponse.decode_from(b + tail, 0)
    assert pos == len(b)
    assert back == resp
    assert b.endswith(b"\xff\xff\xff\xff\x01\xff\xff\xff\xff")


# ------------------------------------------------------------------ framing
@MEDIUM
@given(INT32, request_strategy())
def test_framed_request_roundtrip(xid, op_body):
    op, body = op_body
    data = encode_request(xid, op, body)
    f = one_frame(data)
    assert data == frame(f)
    assert decode_request(f) == (xid, op, body)


@FAST
@given(INT32, st.sampled_from(sorted(o for o, t in REQUEST_BODY.items() if t is Empty)))
def test_framed_request_without_body(xid, op):
    f = one_frame(encode_request(xid, op))
    assert len(f) == 8
    assert decode_request(f) == (xid, op, Empty())


@FAST
@given(INT32, INT32.filter(lambda o: o not in REQUEST_BODY), st.binary(max_size=16))
def test_unknown_opcode_yields_no_body(xid, op, junk):
    f = one_frame(encode_request(xid, op)) + junk
    assert decode_request(f) == (xid, op, None)


# ------------------------------------------------------------------ replies
_REPLY_BODIES = sorted(
    {t for t in MULTI_RESULT_BODY.values() if t is not None}
    | {c for c in RECORD_CLASSES if c.__name__.endswith("Response") and c is not ConnectResponse},
    key=lambda c: c.__name__,
)


def reply_body_strategy():
    return st.sampled_from(_REPLY_BODIES).flatmap(record_strategy) | multi_response_strategy()


@MEDIUM
@given(INT32, INT64, reply_body_strategy())
def test_reply_roundtrip(xid, zxid, body):
    data = encode_reply(xid, zxid, 0, body)
    assert isinstance(data, bytes | bytearray)
    f = one_frame(bytes(data))
    hdr, pos = decode_reply_header(f)
    assert hdr == ReplyHeader(xid, zxid, 0)
    back, end = type(body).decode_from(f, pos)
    assert end == len(f)
    assert back == body


@FAST
@given(INT32, INT64, INT32.filter(lambda e: e != 0), st.none() | reply_body_strategy())
def test_error_reply_has_no_body(xid, zxid, err, body):
    f = one_frame(bytes(encode_reply(xid, zxid, err, body)))
    hdr, pos = decode_reply_header(f)
    assert hdr == ReplyHeader(xid, zxid, err)
    assert pos == len(f) == 16


@FAST
@given(INT32, INT64)
def test_ok_reply_without_body(xid, zxid):
    f = one_frame(bytes(encode_reply(xid, zxid, 0)))
    assert decode_reply_header(f) == (ReplyHeader(xid, zxid, 0), 16)


@MEDIUM
@given(INT32, INT32, USTRING)
def test_notification_roundtrip(event_type, state, path):
    f = one_frame(bytes(encode_notification(event_type, state, path)))
    hdr, pos = decode_reply_header(f)
    assert hdr == ReplyHeader(XID_NOTIFICATION, -1, 0)
    ev, end = WatcherEvent.decode_from(f, pos)
    assert end == len(f)
    assert ev == WatcherEvent(event_type, state, path)


# ------------------------------------------------------------------ connect
@MEDIUM
@given(record_strategy(ConnectRequest), st.booleans())
def test_connect_request_roundtrip_with_read_only(req, ro):
    data = encode_connect_request(req, ro)
    f = one_frame(data)
    assert len(f) == len(req.to_bytes()) + 1
    assert decode_connect(f) == (req, ro)


@FAST
@given(record_strategy(ConnectRequest))
def test_connect_request_without_read_only_byte(req):
    # old (pre-3.4) clients stop after passwd
    f = req.to_bytes()
    assert decode_connect(f) == (req, False)
    assert decode_connect(one_frame(frame(f))) == (req, False)


@MEDIUM
@given(record_strategy(ConnectResponse), st.booleans())
def test_connect_response_roundtrip_with_read_only(resp, ro):
    f = one_frame(encode_connect_response(resp, ro))
    assert len(f) == len(resp.to_bytes()) + 1
    assert decode_connect_response(f) == (resp, ro)


@FAST
@given(record_strategy(ConnectResponse))
def test_connect_response_without_read_only_byte(resp):
    assert decode_connect_response(resp.to_bytes()) == (resp, False)


def test_encoded_strings_refuse_every_change_and_keep_their_encoding():
    from zabby.wire.primitives import encoded_strings

    es = encoded_strings(["a", "bc"])
    want = b"\0\0\0\x02" + b"\0\0\0\x01a" + b"\0\0\0\x02bc"  # vector<ustring>
    for mutate in (es.clear, es.sort, es.pop, lambda: es.append("x"),
                   lambda: es.__setitem__(0, "x"), lambda: es.__iadd__(["x"])):
        with pytest.raises(TypeError, match="EncodedStrings list is immutable"):
            mutate()
    assert es == ["a", "bc"] and es.encoded == want
