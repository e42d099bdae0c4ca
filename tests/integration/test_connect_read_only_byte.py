"""The connect response's readOnly byte, at the byte level, on zabby and on Apache
ZooKeeper 3.8 (the same assertions for both).

A ConnectRequest may end with a readOnly boolean (clients since ZooKeeper 3.4) or not
(older clients, and some newer ones: ClickHouse's, ZOOKEEPER-4814). The server answers
with the byte only when the request had it: a client that did not send it reads the
response as exactly the 36 bytes of ConnectResponse, and a 37th byte would be taken as
the start of the next frame's length (ClickHouse #53749: the session hangs or fails).
"""

from __future__ import annotations

import socket
import struct

import pytest

from zabby.wire import XID_PING, Op
from zabby.wire.protocol import decode_reply_header, encode_request
from zabby.wire.records import ConnectRequest, ConnectResponse

pytestmark = pytest.mark.timeout(60)

_INT = struct.Struct(">i")
RESPONSE_BODY = 4 + 4 + 8 + 4 + 16  # protocolVersion, timeOut, sessionId, passwd (16)


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def _frame(s: socket.socket) -> bytes:
    (n,) = _INT.unpack(_recv_exact(s, 4))
    return _recv_exact(s, n)


def _connect(server, tail: bytes) -> tuple[bytes, bytes]:
    """Open a session with a ConnectRequest followed by ``tail`` (b"", b"\\0", b"\\1");
    returns the connect response's payload and the reply to a ping sent after it."""
    body = bytearray()
    ConnectRequest(0, 0, 10000, 0, bytes(16)).encode(body)
    body += tail
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(_INT.pack(len(body)) + bytes(body))
        resp = _frame(s)
        s.sendall(encode_request(XID_PING, Op.PING))
        ping = _frame(s)
        # close the session, so the server does not keep it for its timeout
        s.sendall(encode_request(1, Op.CLOSE_SESSION))
        _frame(s)
    return resp, ping


@pytest.fixture(params=["zabby_server", "zk_server"])
def server(request):
    return request.getfixturevalue(request.param)


@pytest.mark.parametrize("tail, expect", [
    (b"", b""),  # no readOnly byte sent: none back
    (b"\x00", b"\x00"),  # readOnly=false: the byte says read-write
    (b"\x01", b"\x00"),  # canBeReadOnly: still read-write, this server has a quorum
])
def test_read_only_byte_only_when_sent(server, tail, expect):
    resp, ping = _connect(server, tail)
    assert len(resp) == RESPONSE_BODY + len(expect), resp.hex()
    assert resp[RESPONSE_BODY:] == expect
    decoded, pos = ConnectResponse.decode_from(resp, 0)
    assert decoded.timeOut > 0 and decoded.sessionId != 0 and pos == RESPONSE_BODY
    # the stream stays in step: the next frame is the ping's reply
    hdr, _ = decode_reply_header(ping)
    assert hdr.xid == XID_PING and hdr.err == 0
