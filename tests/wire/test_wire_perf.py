"""Micro-checks that hot paths are not pathologically slow (e.g. quadratic).

No timing assertions: these only have to finish, with sizes at which quadratic
behaviour would blow the suite's time budget (and pytest-timeout) by far.
"""

from __future__ import annotations

from zabby.wire import Op
from zabby.wire.protocol import (
    FrameDecoder,
    MultiRequest,
    decode_reply_header,
    decode_request,
    encode_reply,
    encode_request,
    frame,
)
from zabby.wire.records import (
    CheckVersionRequest,
    GetChildrenResponse,
    GetDataResponse,
    PathWatchRequest,
    Stat,
)

N = 10_000


def test_decode_get_data_request_many():
    f = encode_request(7, Op.GET_DATA, PathWatchRequest("/some/node/path", True))[4:]
    for _ in range(N):
        xid, op, body = decode_request(f)
    assert (xid, op, body) == (7, Op.GET_DATA, PathWatchRequest("/some/node/path", True))


def test_encode_get_data_reply_many():
    stat = Stat(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
    body = GetDataResponse(b"v" * 100, stat)
    for i in range(N):
        out = encode_reply(i, i, 0, body)
    hdr, pos = decode_reply_header(bytes(out[4:]))
    assert hdr.xid == N - 1
    assert GetDataResponse.decode(bytes(out[4 + pos :])) == body


def test_encode_large_get_data_reply():
    # near jute.maxbuffer
    body = GetDataResponse(b"x" * 0xFFF00, Stat())
    out = encode_reply(1, 1, 0, body)
    assert FrameDecoder().feed(bytes(out))[0][16:20] == b"\x00\x0f\xff\x00"


def test_frame_decoder_many_frames_one_feed():
    payload = encode_request(1, Op.EXISTS, PathWatchRequest("/a", False))[4:]
    stream = frame(payload) * N
    frames = FrameDecoder().feed(stream)
    assert len(frames) == N
    assert frames[0] == frames[-1] == payload


def test_frame_decoder_many_frames_small_chunks():
    stream = frame(b"abcdefghij") * N
    dec = FrameDecoder()
    count = 0
    for i in range(0, len(stream), 7):
        count += len(dec.feed(stream[i : i + 7]))
    assert count == N
    assert dec.pending == 0


def test_frame_decoder_large_frame_small_chunks():
    # a ~1 MiB frame trickling in 1 KiB at a time: must not rescan / recopy per feed
    payload = b"z" * 0xFFF00
    stream = frame(payload)
    dec = FrameDecoder()
    got = []
    for i in range(0, len(stream), 1024):
        got.extend(dec.feed(stream[i : i + 1024]))
    assert got == [payload]


def test_decode_large_vectors_and_multi():
    children = [f"child-{i:06d}" for i in range(N)]
    b = GetChildrenResponse(children).to_bytes()
    assert GetChildrenResponse.decode(b).children == children
    mr = MultiRequest([(Op.CHECK, CheckVersionRequest(f"/n{i}", i)) for i in range(N)])
    f = encode_request(1, Op.MULTI, mr)[4:]
    assert decode_request(f)[2] == mr
