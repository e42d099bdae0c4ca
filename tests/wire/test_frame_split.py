"""The client and quorum frame splitters give the same frames however the stream is cut.

Both cut frames straight out of a read when it holds whole frames and go through their
buffer only for a frame split across reads, so every way of cutting the stream (whole,
byte by byte, at random points) must give the same frames, and bad headers must be
refused wherever they fall.
"""

import struct
import tracemalloc
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zabby.server.peers import FrameReader, PeerProtocolError, encode_frame
from zabby.wire.protocol import FrameDecoder, ProtocolError

payloads = st.lists(st.binary(max_size=300), max_size=8)
cuts = st.lists(st.integers(min_value=0, max_value=4000), max_size=12)


def _client_frame(p: bytes) -> bytes:
    return struct.pack(">i", len(p)) + p


def _pieces(data: bytes, points: list[int]) -> list[bytes]:
    marks = sorted({min(p, len(data)) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in zip(marks, marks[1:], strict=False)]


@pytest.mark.parametrize("splitter, framed", [(FrameDecoder, _client_frame),
                                                (FrameReader, encode_frame)],
                         ids=["client", "quorum"])
@settings(max_examples=300, deadline=None)
@given(frames=payloads, points=cuts)
def test_frames_survive_any_cut(splitter, framed, frames, points):
    data = b"".join(framed(p) for p in frames)
    s = splitter()
    got = []
    for piece in _pieces(data, points):
        got += s.feed(piece)
    assert got == frames
    assert all(type(f) is bytes for f in got)
    assert not s._buf  # nothing left over once every frame was whole


def test_a_partial_frame_waits_for_the_rest():
    dec = FrameDecoder()
    whole = _client_frame(b"abc") + _client_frame(b"defg")
    assert dec.feed(whole[:9]) == [b"abc"]
    assert dec.pending == 2
    assert dec.feed(whole[9:]) == [b"defg"]
    assert dec.pending == 0
    r = FrameReader()
    q = encode_frame(b"abc") + encode_frame(b"defg")
    assert r.feed(q[:13]) == [b"abc"]
    assert r.feed(q[13:14]) == []
    assert r.feed(q[14:]) == [b"defg"]


@pytest.mark.parametrize("length", [-1, -(2**31), 2**20 + 1, 2**31 - 1])
def test_client_length_out_of_range_is_refused_after_a_good_frame(length):
    dec = FrameDecoder(max_frame=2**20)
    data = _client_frame(b"ok") + struct.pack(">i", length)
    with pytest.raises(ProtocolError):
        dec.feed(data)
    # the same header arriving in two reads
    dec = FrameDecoder(max_frame=2**20)
    assert dec.feed(data[:8]) == [b"ok"]
    with pytest.raises(ProtocolError):
        dec.feed(data[8:])


def test_quorum_frame_over_the_limit_or_with_a_bad_checksum_is_refused():
    r = FrameReader(max_frame=100)
    with pytest.raises(PeerProtocolError):
        r.feed(encode_frame(b"ok") + struct.pack(">II", 101, 0))
    bad = bytearray(encode_frame(b"x" * 50))
    bad[20] ^= 0xFF
    r = FrameReader()
    with pytest.raises(PeerProtocolError):
        r.feed(bytes(bad))
    # a checksum that only fails once the split frame is complete
    r = FrameReader()
    assert r.feed(bytes(bad[:30])) == []
    with pytest.raises(PeerProtocolError):
        r.feed(bytes(bad[30:]))
    assert zlib.crc32(b"x" * 50) == struct.unpack(">I", encode_frame(b"x" * 50)[4:8])[0]


@pytest.mark.parametrize("splitter, framed", [(FrameDecoder, _client_frame),
                                                (FrameReader, encode_frame)],
                         ids=["client", "quorum"])
def test_a_big_frame_in_small_reads_costs_work_linear_in_its_size(splitter, framed):
    """A frame arriving in many reads is copied out of the buffer once, when it is
    whole: not at every read (a 1 GiB SNAP frame, or a client's jute.maxbuffer-sized
    request, read 64 KiB at a time would otherwise hold the loop for minutes).
    Measured as memory, not time: the most each read allocates beyond what it keeps."""
    size, piece = 4 << 20, 4096
    data = framed(b"s" * size)
    s = splitter(max_frame=size)
    extra = 0
    got: list = []
    tracemalloc.start()
    try:
        for i in range(0, len(data), piece):
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            got += s.feed(data[i:i + piece])
            extra += tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert got == [b"s" * size]
    # a copy of the buffer per read would add ~size/2 per read (~2 GiB here); the
    # buffer's own growth and the final copies are a few times the frame
    assert extra < 16 * size, f"{extra / size:.0f} x the frame allocated in passing"
