"""Robustness: any bytes either decode or raise ProtocolError, never anything else."""

from __future__ import annotations

import struct
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zabby.wire import Op, ProtocolError
from zabby.wire.jute import read_buffer, read_ustring
from zabby.wire.protocol import (
    FrameDecoder,
    MultiRequest,
    MultiResponse,
    decode_connect,
    decode_connect_response,
    decode_reply_header,
    decode_request,
    encode_request,
    frame,
)
from zabby.wire.records import GetChildrenResponse, GetDataResponse, SetWatches2

from .wire_strategies import (
    RECORD_CLASSES,
    chunked,
    record_strategy,
    request_strategy,
)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FAST = settings(max_examples=40, deadline=None)

# Raw bytes, biased toward the interesting: short buffers, and buffers that start
# with plausible small lengths / -1 so decoding gets past the first field.
SMALL_INTS = st.sampled_from([0, 1, 2, 4, 8, 9, 0x7FFFFFFF, -1, -2, -(2**31)]).map(
    lambda n: struct.pack(">i", n)
)
RAW = st.binary(max_size=64) | st.builds(
    lambda parts, tail: b"".join(parts) + tail,
    st.lists(SMALL_INTS | st.binary(max_size=5), max_size=10),
    st.binary(max_size=16),
)


def ok_or_protocol_error(fn, *args):
    try:
        return fn(*args)
    except ProtocolError:
        return None


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    b = bytearray(data)
    for i, v in edits:
        if b:
            b[i % len(b)] = v
    if cut is not None:
        b = b[: cut % (len(b) + 1)]
    return bytes(b)


EDITS = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4)
CUT = st.none() | st.integers(0, 10**6)


# ---------------------------------------------------------------- raw bytes
@FUZZ
@given(RAW)
def test_decode_request_arbitrary(data):
    ok_or_protocol_error(decode_request, data)


@FUZZ
@given(st.sampled_from(sorted(int(o) for o in Op)), RAW, st.integers(-(2**31), 2**31 - 1))
def test_decode_request_known_opcode_arbitrary_body(op, body, xid):
    ok_or_protocol_error(decode_request, struct.pack(">ii", xid, op) + body)


@pytest.mark.parametrize("cls", RECORD_CLASSES, ids=lambda c: c.__name__)
@FAST
@given(RAW)
def test_record_decode_arbitrary(cls, data):
    rec = ok_or_protocol_error(cls.decode, data)
    if rec is not None:
        assert type(rec) is cls
    ok_or_protocol_error(cls.decode, memoryview(data))


@FUZZ
@given(RAW)
def test_multi_decode_arbitrary(data):
    ok_or_protocol_error(MultiRequest.decode, data)
    ok_or_protocol_error(MultiResponse.decode_from, data, 0)


@FUZZ
@given(RAW)
def test_connect_and_reply_header_arbitrary(data):
    ok_or_protocol_error(decode_connect, data)
    ok_or_protocol_error(decode_connect_response, data)
    ok_or_protocol_error(decode_reply_header, data)


@FUZZ
@given(RAW, st.lists(st.integers(0, 10**6), max_size=8), st.integers(0, 200))
def test_frame_decoder_arbitrary_chunks(data, cuts, max_frame):
    dec = FrameDecoder(max_frame=max_frame)
    got = []
    try:
        for chunk in chunked(data, cuts):
            frames = dec.feed(chunk)
            assert all(isinstance(f, bytes) and len(f) <= max_frame for f in frames)
            got.extend(frames)
    except ProtocolError:
        return
    # no error: everything fed is accounted for as frames + pending bytes
    assert sum(4 + len(f) for f in got) + dec.pending == len(data)


# ---------------------------------------------- mutated valid encodings
@FUZZ
@given(request_strategy(), EDITS, CUT)
def test_decode_request_mutated(op_body, edits, cut):
    op, body = op_body
    data = mutate(encode_request(1, op, body)[4:], edits, cut)
    ok_or_protocol_error(decode_request, data)


@FUZZ
@given(request_strategy(), st.data())
def test_decode_request_truncated_body(op_body, data):
    op, body = op_body
    f = encode_request(1, op, body)[4:]
    if len(f) == 8:
        return
    cut = data.draw(st.integers(0, len(f) - 1))
    with pytest.raises(ProtocolError):
        decode_request(f[:cut])


@pytest.mark.parametrize("cls", RECORD_CLASSES, ids=lambda c: c.__name__)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_record_decode_mutated(cls, data):
    b = data.draw(record_strategy(cls)).to_bytes()
    ok_or_protocol_error(cls.decode, mutate(b, data.draw(EDITS), data.draw(CUT)))


# ------------------------------------------------------------ frame decoder
FRAMES = st.lists(st.binary(max_size=40), max_size=30)


@settings(max_examples=100, deadline=None)
@given(FRAMES, st.lists(st.integers(0, 10**6), max_size=20), st.binary(max_size=3))
def test_frame_decoder_chunking_invariant(payloads, cuts, partial):
    stream = b"".join(frame(p) for p in payloads)
    # a trailing incomplete frame stays pending
    tail = struct.pack(">i", 10)[: len(partial)] if partial else b""
    dec = FrameDecoder(max_frame=40)
    got = []
    for chunk in chunked(stream + tail, cuts):
        got.extend(dec.feed(chunk))
    assert got == payloads
    assert dec.pending == len(tail)
    # byte by byte as well
    dec = FrameDecoder(max_frame=40)
    got = [f for i in range(len(stream)) for f in dec.feed(stream[i : i + 1])]
    assert got == payloads
    assert dec.pending == 0


def test_frame_decoder_one_byte_at_a_time_empty_frames():
    dec = FrameDecoder()
    assert dec.feed(b"\x00\x00") == []
    assert dec.feed(b"\x00") == []
    assert dec.feed(b"\x00\x00\x00\x00\x00") == [b"", b""]
    assert dec.pending == 0


@pytest.mark.parametrize("length", [-1, -2, -(2**31), 101, 2**31 - 1])
def test_frame_decoder_bad_length(length):
    with pytest.raises(ProtocolError):
        FrameDecoder(max_frame=100).feed(struct.pack(">i", length))
    # also after good frames and split across feeds
    dec = FrameDecoder(max_frame=100)
    assert dec.feed(frame(b"ok") + struct.pack(">i", length)[:2]) == [b"ok"]
    with pytest.raises(ProtocolError):
        dec.feed(struct.pack(">i", length)[2:])


def test_frame_decoder_max_frame_boundary():
    dec = FrameDecoder(max_frame=100)
    assert dec.feed(frame(b"x" * 100)) == [b"x" * 100]
    with pytest.raises(ProtocolError):
        FrameDecoder(max_frame=100).feed(frame(b"x" * 101))


def test_frame_decoder_default_max_is_jute_maxbuffer():
    dec = FrameDecoder()
    with pytest.raises(ProtocolError):
        dec.feed(struct.pack(">i", 0xFFFFF + 1))
    assert FrameDecoder().feed(struct.pack(">i", 0xFFFFF)) == []


# --------------------------------------------------- huge counts / lengths
HUGE = [0x7FFFFFFF, 0x40000000, 0x3FFFFFFF, 1 << 20]


@pytest.mark.parametrize("count", HUGE)
def test_huge_vector_count_small_frame(count):
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError):
            GetChildrenResponse.decode(struct.pack(">i", count) + b"\x00\x00\x00\x01a")
        # vector<ustring> inside a request, via decode_request
        with pytest.raises(ProtocolError):
            decode_request(struct.pack(">iiqi", 1, Op.SET_WATCHES2, 0, count) + b"\xff" * 32)
        # vector<ACL> inside a create
        with pytest.raises(ProtocolError):
            decode_request(
                struct.pack(">ii", 1, Op.CREATE)
                + b"\x00\x00\x00\x01/"
                + b"\xff\xff\xff\xff"
                + struct.pack(">i", count)
                + b"\x00" * 40
            )
        # buffers and strings
        with pytest.raises(ProtocolError):
            GetDataResponse.decode(struct.pack(">i", count) + b"abc")
        with pytest.raises(ProtocolError):
            read_buffer(struct.pack(">i", count), 0)
        with pytest.raises(ProtocolError):
            read_ustring(struct.pack(">i", count) + b"abc", 0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # nothing sized by the bogus count was allocated


def test_vector_count_at_most_remaining_bytes_is_linear():
    # count == remaining bytes: passes the cheap bound, fails on the first short item
    data = struct.pack(">i", 4000) + b"\x00" * 4000
    with pytest.raises(ProtocolError):
        SetWatches2.decode(b"\x00" * 8 + data)
    # many empty strings is fine
    n = 5000
    rec = GetChildrenResponse.decode(struct.pack(">i", n) + b"\x00\x00\x00\x00" * n)
    assert rec.children == [""] * n


@pytest.mark.parametrize("n", [-2, -100, -(2**31)])
def test_negative_lengths_other_than_minus_one(n):
    with pytest.raises(ProtocolError):
        read_buffer(struct.pack(">i", n), 0)
    with pytest.raises(ProtocolError):
        read_ustring(struct.pack(">i", n), 0)
    # ...but a vector count below -1 reads as an empty vector, as ZooKeeper 3.8's
    # BinaryInputArchive does (so a create with such an ACL fails INVALIDACL)
    assert GetChildrenResponse.decode(struct.pack(">i", n)).children == []


def test_invalid_utf8_is_replaced_not_raised():
    data = b"\x00\x00\x00\x04\xff\xfe/\xc3"
    assert read_ustring(data, 0)[0] == "\ufffd\ufffd/\ufffd"


def test_multi_many_headers_not_recursive():
    # 20k ops in one multi: decoded iteratively (no RecursionError)
    op = b"\x00\x00\x00\x0d\x00\xff\xff\xff\xff" + b"\x00\x00\x00\x01/" + b"\xff\xff\xff\xff"
    body = op * 20000 + b"\xff\xff\xff\xff\x01\xff\xff\xff\xff"
    mr = MultiRequest.decode(body)
    assert len(mr.ops) == 20000
    with pytest.raises(ProtocolError):
        MultiRequest.decode(op * 20000)  # missing the done header


def test_multi_op_not_allowed():
    for bad in (Op.PING, Op.MULTI, Op.SET_WATCHES, Op.ERROR, 12345):
        with pytest.raises(ProtocolError):
            MultiRequest.decode(struct.pack(">i?i", bad, False, -1) + b"\x00" * 32)
    with pytest.raises(ProtocolError):
        MultiResponse.decode_from(struct.pack(">i?i", Op.PING, False, 0) + b"\x00" * 32, 0)


@FAST
@given(st.binary(max_size=30))
def test_bytearray_and_memoryview_inputs(data):
    for buf in (bytearray(data), memoryview(data)):
        ok_or_protocol_error(decode_request, buf)
        ok_or_protocol_error(decode_connect, buf)
        ok_or_protocol_error(MultiRequest.decode, buf)
