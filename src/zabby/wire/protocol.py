"""Frames and messages of the client protocol, sans-IO.

A connection carries 4-byte big-endian length-prefixed frames. The first frame
from a client is a ConnectRequest; every later frame is a RequestHeader (xid,
opcode) followed by the opcode's body. The server answers with a ReplyHeader
(xid, zxid, err) and, when err is 0, the response body.
"""

from __future__ import annotations

import struct
from typing import Any, Final

from . import keeper as _keeper
from .constants import DEFAULT_MAX_BUFFER, XID_NOTIFICATION, Err, Op
from .jute import INT, ProtocolError, read_bool, read_int
from .records import (
    AddWatchRequest,
    AuthPacket,
    CheckVersionRequest,
    ConnectRequest,
    ConnectResponse,
    Create2Response,
    CreateRequest,
    CreateTTLRequest,
    DeleteRequest,
    Empty,
    ErrorResponse,
    GetChildren2Response,
    GetChildrenResponse,
    GetDataResponse,
    GetEphemeralsRequest,
    MultiHeader,
    PathRequest,
    PathResponse,
    PathWatchRequest,
    ReconfigRequest,
    ReplyHeader,
    SaslToken,
    SetACLRequest,
    SetDataRequest,
    SetWatches,
    SetWatches2,
    StatResponse,
    WatcherEvent,
    WatchTypeRequest,
)

_REPLY_HDR: Final = struct.Struct(">iiqi")  # length, xid, zxid, err
_REQ_HDR: Final = struct.Struct(">ii")
_XID_NOTIFICATION: Final = XID_NOTIFICATION
_MULTI_HDR: Final = struct.Struct(">iBi")  # MultiHeader: type, done, err
_MULTI_DONE: Final = _MULTI_HDR.pack(-1, 1, -1)


class MultiRequest:
    """`multi` / `multiRead` body: (opcode, request record) pairs ended by a done header."""

    __slots__ = ("ops",)

    def __init__(self, ops: list[tuple[int, Any]] | None = None) -> None:
        self.ops = ops if ops is not None else []

    def encode(self, out: bytearray) -> None:
        pack = _MULTI_HDR.pack
        for op, rec in self.ops:
            out += pack(op, 0, -1)  # MultiHeader(op, False, -1)
            rec.encode(out)
        out += _MULTI_DONE

    @classmethod
    def decode_from(cls, buf, pos: int) -> tuple[MultiRequest, int]:
        ops: list[tuple[int, Any]] = []
        append = ops.append
        n = len(buf)
        unpack = _MULTI_HDR.unpack_from
        get = MULTI_OP_BODY.get
        while True:
            # MultiHeader (type, done, err), unpacked in place: no record per op
            if pos + 9 > n:
                raise ProtocolError("truncated MultiHeader")
            op, done, _err = unpack(buf, pos)
            pos += 9
            if done:
                return cls(ops), pos
            body_type = get(op)
            if body_type is None:
                raise ProtocolError(f"invalid type of op in multi: {op}")
            rec, pos = body_type.decode_from(buf, pos)
            append((op, rec))

    @classmethod
    def decode(cls, buf) -> MultiRequest:
        return cls.decode_from(buf, 0)[0]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MultiRequest) and self.ops == other.ops

    def __repr__(self) -> str:
        return f"MultiRequest({self.ops!r})"


class MultiResponse:
    """`multi` / `multiRead` reply: one (opcode, err, body) per op.

    A failed op is (Op.ERROR, err, ErrorResponse(err)); ops without a body
    (delete, check) carry None.
    """

    __slots__ = ("results",)

    def __init__(self, results: list[tuple[int, int, Any]] | None = None) -> None:
        self.results = results if results is not None else []

    def encode(self, out: bytearray) -> None:
        pack = _MULTI_HDR.pack
        for op, err, body in self.results:
            out += pack(op, 0, err)  # MultiHeader(op, False, err)
            if body is not None:
                body.encode(out)
        out += _MULTI_DONE

    @classmethod
    def decode_from(cls, buf, pos: int) -> tuple[MultiResponse, int]:
        results: list[tuple[int, int, Any]] = []
        while True:
            hdr, pos = MultiHeader.decode_from(buf, pos)
            if hdr.done:
                return cls(results), pos
            body_type = MULTI_RESULT_BODY.get(hdr.type, ProtocolError)
            if body_type is ProtocolError:
                raise ProtocolError(f"invalid type of result in multi: {hdr.type}")
            body = None
            if body_type is not None:
                body, pos = body_type.decode_from(buf, pos)
            results.append((hdr.type, hdr.err, body))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MultiResponse) and self.results == other.results

    def __repr__(self) -> str:
        return f"MultiResponse({self.results!r})"


# Body record of each request opcode.
REQUEST_BODY: Final[dict[int, Any]] = {
    Op.CREATE: CreateRequest,
    Op.CREATE2: CreateRequest,
    Op.CREATE_CONTAINER: CreateRequest,
    Op.CREATE_TTL: CreateTTLRequest,
    Op.DELETE: DeleteRequest,
    Op.DELETE_CONTAINER: PathRequest,
    Op.EXISTS: PathWatchRequest,
    Op.GET_DATA: PathWatchRequest,
    Op.SET_DATA: SetDataRequest,
    Op.GET_ACL: PathRequest,
    Op.SET_ACL: SetACLRequest,
    Op.GET_CHILDREN: PathWatchRequest,
    Op.GET_CHILDREN2: PathWatchRequest,
    Op.SYNC: PathRequest,
    Op.PING: Empty,
    Op.CHECK: CheckVersionRequest,
    Op.MULTI: MultiRequest,
    Op.MULTI_READ: MultiRequest,
    Op.RECONFIG: ReconfigRequest,
    Op.CHECK_WATCHES: WatchTypeRequest,
    Op.REMOVE_WATCHES: WatchTypeRequest,
    Op.AUTH: AuthPacket,
    Op.SET_WATCHES: SetWatches,
    Op.SET_WATCHES2: SetWatches2,
    Op.SASL: SaslToken,
    Op.GET_EPHEMERALS: GetEphemeralsRequest,
    Op.GET_ALL_CHILDREN_NUMBER: PathRequest,
    Op.ADD_WATCH: AddWatchRequest,
    Op.WHO_AM_I: Empty,
    Op.CLOSE_SESSION: Empty,
    # ClickHouse Keeper's extensions: always decoded, answered only when the server
    # enables them (zabby.keeperExtensions), else treated as unknown opcodes
    _keeper.FILTERED_LIST: _keeper.FilteredListRequest,
    _keeper.CHECK_NOT_EXISTS: CheckVersionRequest,
    _keeper.CREATE_IF_NOT_EXISTS: CreateRequest,
    _keeper.REMOVE_RECURSIVE: _keeper.RemoveRecursiveRequest,
    _keeper.LIST_RECURSIVE: _keeper.ListRecursiveRequest,
}

# Ops allowed inside a multi / multiRead body.
MULTI_OP_BODY: dict[int, Any] = {
    Op.CREATE: CreateRequest,
    Op.CREATE2: CreateRequest,
    Op.CREATE_CONTAINER: CreateRequest,
    Op.CREATE_TTL: CreateTTLRequest,
    Op.DELETE: DeleteRequest,
    Op.SET_DATA: SetDataRequest,
    Op.CHECK: CheckVersionRequest,
    # MultiOperationRecord sends GetChildrenRequest / GetDataRequest (path + watch)
    Op.GET_CHILDREN: PathWatchRequest,
    Op.GET_DATA: PathWatchRequest,
    # ClickHouse Keeper's: checkNotExists, createIfNotExists, removeRecursive in a
    # write multi, filteredList in a multiRead (its result is a List, 12); unless the
    # server enables them, a multi holding one fails whole, as in ZooKeeper
    _keeper.CHECK_NOT_EXISTS: CheckVersionRequest,
    _keeper.CREATE_IF_NOT_EXISTS: CreateRequest,
    _keeper.REMOVE_RECURSIVE: _keeper.RemoveRecursiveRequest,
    _keeper.FILTERED_LIST: _keeper.FilteredListRequest,
}

# Body of each result in a MultiResponse (None: no body).
MULTI_RESULT_BODY: dict[int, Any] = {
    Op.CREATE: PathResponse,
    Op.CREATE2: Create2Response,
    Op.CREATE_TTL: Create2Response,
    Op.CREATE_CONTAINER: Create2Response,
    Op.DELETE: None,
    Op.CHECK: None,
    Op.SET_DATA: StatResponse,
    Op.GET_CHILDREN: GetChildrenResponse,
    Op.GET_DATA: GetDataResponse,
    Op.ERROR: ErrorResponse,
    _keeper.CHECK_NOT_EXISTS: None,
    Op.GET_CHILDREN2: GetChildren2Response,  # Keeper's filteredList in a multiRead
    _keeper.CREATE_IF_NOT_EXISTS: PathResponse,
    _keeper.REMOVE_RECURSIVE: None,
}

WRITE_OPS = frozenset(
    {
        Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL, Op.DELETE,
        Op.DELETE_CONTAINER, Op.SET_DATA, Op.SET_ACL, Op.CHECK, Op.MULTI, Op.RECONFIG,
        Op.CREATE_SESSION, Op.CLOSE_SESSION,
    }
)


# ------------------------------------------------------------------ framing
class FrameDecoder:
    """Splits a byte stream into frames. `feed` returns every complete frame.

    A length below zero or above `max_frame` raises ProtocolError: the caller
    closes the connection, as ZooKeeper does ("Len error").
    """

    __slots__ = ("_buf", "max_frame")

    def __init__(self, max_frame: int = DEFAULT_MAX_BUFFER) -> None:
        self._buf = bytearray()
        self.max_frame = max_frame

    def feed(self, data: bytes) -> list[bytes]:
        # Frames are cut straight from `data` (usually whole frames: one copy each);
        # only a frame split across reads goes through the buffer, which is copied out
        # once, when its first frame is complete (not at every read of a big frame:
        # that would be quadratic in its size). The length is read byte by byte, which
        # the compiled build does natively.
        buf = self._buf
        if buf:
            buf += data
            have = len(buf)
            if have < 4:
                return []
            length = (buf[0] << 24) | (buf[1] << 16) | (buf[2] << 8) | buf[3]
            if length >= 0x80000000:
                length -= 0x100000000
            if length < 0 or length > self.max_frame:
                raise ProtocolError(f"frame length {length} out of range")
            if 4 + length > have:
                return []
            data = bytes(buf)
            buf.clear()
        frames: list[bytes] = []
        pos = 0
        n = len(data)
        limit = self.max_frame
        while n - pos >= 4:
            length = ((data[pos] << 24) | (data[pos + 1] << 16) | (data[pos + 2] << 8)
                      | data[pos + 3])
            if length >= 0x80000000:
                length -= 0x100000000
            if length < 0 or length > limit:
                raise ProtocolError(f"frame length {length} out of range")
            end = pos + 4 + length
            if end > n:
                break
            frames.append(data[pos + 4 : end])
            pos = end
        if pos < n:
            buf += data[pos:] if pos else data
        return frames

    @property
    def pending(self) -> int:
        return len(self._buf)


def frame(payload: bytes | bytearray) -> bytes:
    return INT.pack(len(payload)) + bytes(payload)


# ------------------------------------------------------------ connect handshake
def decode_connect(frame_bytes) -> tuple[ConnectRequest, bool]:
    """Decode the first frame of a session; returns (request, readOnly)."""
    req, read_only = decode_connect_request(frame_bytes)
    return req, bool(read_only)


def decode_connect_request(frame_bytes) -> tuple[ConnectRequest, bool | None]:
    """Like `decode_connect`, but readOnly is None when the client did not send the
    byte at all (a client older than ZooKeeper 3.4's read-only mode, or one that leaves
    it out): such a client must not get the byte back in the connect response."""
    req, pos = ConnectRequest.decode_from(frame_bytes, 0)
    read_only = None
    if pos < len(frame_bytes):
        read_only, pos = read_bool(frame_bytes, pos)
    return req, read_only


def encode_connect_request(req: ConnectRequest, read_only: bool = False) -> bytes:
    out = bytearray(4)
    req.encode(out)
    out += b"\x01" if read_only else b"\x00"
    INT.pack_into(out, 0, len(out) - 4)
    return bytes(out)


def encode_connect_response(resp: ConnectResponse, read_only: bool | None = False) -> bytes:
    """read_only None: no readOnly byte at all (for a client that sent none, as
    ZooKeeper answers it: ZOOKEEPER-4814)."""
    out = bytearray(4)
    resp.encode(out)
    if read_only is not None:
        out += b"\x01" if read_only else b"\x00"
    INT.pack_into(out, 0, len(out) - 4)
    return bytes(out)


def decode_connect_response(frame_bytes) -> tuple[ConnectResponse, bool]:
    resp, pos = ConnectResponse.decode_from(frame_bytes, 0)
    read_only = False
    if pos < len(frame_bytes):
        read_only, pos = read_bool(frame_bytes, pos)
    return resp, read_only


# ------------------------------------------------------------------ requests
def decode_request(frame_bytes) -> tuple[int, int, Any]:
    """Decode a request frame into (xid, opcode, body).

    An opcode we do not know yields body None (the caller answers it); a body
    that does not parse raises ProtocolError.
    """
    if len(frame_bytes) < 8:
        raise ProtocolError("truncated request header")
    xid, op = _REQ_HDR.unpack_from(frame_bytes, 0)
    body_type = REQUEST_BODY.get(op)
    if body_type is None:
        return xid, op, None
    body, _ = body_type.decode_from(frame_bytes, 8)
    return xid, op, body


def encode_request(xid: int, op: int, body: Any = None) -> bytes:
    out = bytearray(12)
    _REQ_HDR.pack_into(out, 4, xid, op)
    if body is not None:
        body.encode(out)
    INT.pack_into(out, 0, len(out) - 4)
    return bytes(out)


# ------------------------------------------------------------------- replies
def encode_reply(xid: int, zxid: int, err: int, body: Any = None) -> bytearray:
    """A whole framed reply. The body is written only when err is 0."""
    out = bytearray(20)
    if err == 0 and body is not None:
        body.encode(out)
    _REPLY_HDR.pack_into(out, 0, len(out) - 4, xid, zxid, err)
    return out


def encode_notification(event_type: int, state: int, path: str | None) -> bytearray:
    out = bytearray(20)
    WatcherEvent(event_type, state, path).encode(out)
    _REPLY_HDR.pack_into(out, 0, len(out) - 4, _XID_NOTIFICATION, -1, 0)
    return out


def decode_reply_header(frame_bytes) -> tuple[ReplyHeader, int]:
    return ReplyHeader.decode_from(frame_bytes, 0)


__all__ = [
    "Err",
    "FrameDecoder",
    "MultiRequest",
    "MultiResponse",
    "MULTI_OP_BODY",
    "MULTI_RESULT_BODY",
    "REQUEST_BODY",
    "WRITE_OPS",
    "decode_connect",
    "decode_connect_request",
    "decode_connect_response",
    "decode_reply_header",
    "decode_request",
    "encode_connect_request",
    "encode_connect_response",
    "encode_notification",
    "encode_reply",
    "encode_request",
    "frame",
    "read_int",
]
