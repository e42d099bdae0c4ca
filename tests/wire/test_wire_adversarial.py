"""Adversarial lengths: no allocation or loop sized by an untrusted count.

Every 4-byte window of a valid request (so every length/count field, wherever it
sits) is overwritten with a hostile value; decoding must give a record or
ProtocolError, and its peak allocation is bounded by the frame's own size, never
by the count. tracemalloc measures bytes, not time, so this cannot flake.
"""

from __future__ import annotations

import struct
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zabby.wire import Op, ProtocolError
from zabby.wire.constants import DEFAULT_MAX_BUFFER
from zabby.wire.protocol import (
    decode_connect,
    decode_request,
    encode_connect_request,
    encode_request,
)
from zabby.wire.records import ConnectRequest

from .wire_strategies import record_strategy, request_strategy

HOSTILE = [0x7FFFFFFF, 0x7FFFFFFE, 0x40000000, 0x3FFFFFFF, 1 << 24, 1 << 20, 65536, 4096,
           -2, -3, -(2**31), -1, 0]
HOSTILE_INT = st.sampled_from(HOSTILE) | st.integers(-(2**31), 2**31 - 1)


def _decode_bounded(fn, data: bytes):
    """Run fn(data); return (outcome, peak bytes allocated while it ran)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        try:
            fn(data)
            outcome = "record"
        except ProtocolError:
            outcome = "error"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return outcome, peak


def _bound(data: bytes) -> int:
    # a decoded record may hold Python objects a few dozen times the bytes they
    # came from (an empty string per 4 bytes, a list slot each...); a count-sized
    # allocation would be gigabytes
    return 256 * len(data) + (256 << 10)


def _patch(data: bytes, where: int, value: int) -> bytes:
    if len(data) < 4:
        return data
    i = where % (len(data) - 3)
    return data[:i] + struct.pack(">i", value) + data[i + 4 :]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request_strategy(), st.lists(st.tuples(st.integers(0, 10**6), HOSTILE_INT), min_size=1, max_size=3),
       st.integers(0, 64))
def test_request_with_hostile_length_fields(op_body, patches, extra):
    op, body = op_body
    data = encode_request(7, op, body)[4:] + b"\x00" * extra
    for where, value in patches:
        data = _patch(data, where + 8, value)  # keep the header, hit the body
    outcome, peak = _decode_bounded(decode_request, data)
    assert outcome in ("record", "error")
    assert peak < _bound(data), (op, peak, len(data))


@settings(max_examples=200, deadline=None)
@given(record_strategy(ConnectRequest), st.booleans(), st.integers(0, 10**6), HOSTILE_INT)
def test_connect_with_hostile_length_fields(req, ro, where, value):
    data = _patch(encode_connect_request(req, ro)[4:], where, value)
    outcome, peak = _decode_bounded(decode_connect, data)
    assert outcome in ("record", "error")
    assert peak < _bound(data)


@pytest.mark.parametrize("count", [0x7FFFFFFF, 0x10000000, DEFAULT_MAX_BUFFER, 300_000])
@pytest.mark.parametrize(
    "prefix",
    [
        # create: path "/", null data, then the ACL count
        struct.pack(">ii", 1, Op.CREATE) + b"\x00\x00\x00\x01/" + b"\xff\xff\xff\xff",
        # setACL: path "/", then the ACL count
        struct.pack(">ii", 1, Op.SET_ACL) + b"\x00\x00\x00\x01/",
        # setWatches2: relative zxid, then the first path count
        struct.pack(">iiq", 1, Op.SET_WATCHES2, 0),
        # a create inside a multi
        struct.pack(">ii", 1, Op.MULTI) + struct.pack(">i?i", Op.CREATE, False, -1)
        + b"\x00\x00\x00\x01/" + b"\xff\xff\xff\xff",
    ],
    ids=["create", "setACL", "setWatches2", "multi-create"],
)
def test_count_larger_than_frame_fails_before_reading_items(prefix, count):
    # a full-size frame (jute.maxbuffer) of zeros after a count it cannot hold:
    # each ACL takes at least 12 bytes, each path 4, so the count is refused at once
    data = prefix + struct.pack(">i", count) + b"\x00" * (DEFAULT_MAX_BUFFER - len(prefix) - 4)
    outcome, peak = _decode_bounded(decode_request, data)
    assert outcome == "error"
    assert peak < 1 << 20  # nothing but the error itself


def test_count_that_fits_decodes_linearly():
    # the largest honest ACL vector that fits a max-size frame decodes
    n = (DEFAULT_MAX_BUFFER - 64) // 20
    item = struct.pack(">i", 31) + b"\x00\x00\x00\x02ip" + b"\x00\x00\x00\x03a.b"
    assert len(item) == 17
    data = (struct.pack(">ii", 1, Op.SET_ACL) + b"\x00\x00\x00\x01/" + struct.pack(">i", n)
            + item * n + struct.pack(">i", -1))
    xid, op, body = decode_request(data)
    assert len(body.acl) == n and body.version == -1
