"""One client TCP connection: bytes in, frames out, replies batched per loop turn."""

from __future__ import annotations

import asyncio
import itertools
import logging
import struct
from collections import deque
from typing import TYPE_CHECKING, Any, Final

from ..wire import Op, ProtocolError
from ..wire.protocol import FrameDecoder, decode_connect_request, decode_request
from .metrics import LatencyCounters

if TYPE_CHECKING:
    from .core import ZabbyServer
    from .session import Session

log = logging.getLogger("zabby.server.cnxn")

_REQ_HDR: Final = struct.Struct(">ii")

# Output queued for one connection is capped: the transport's buffer pauses writing
# above OUTPUT_HIGH, and `pump` stops answering (and the connection stops being read)
# while the transport is paused or the replies made in this turn reach OUTPUT_HIGH.
# What one connection can hold is then ~2 * OUTPUT_HIGH plus one reply (<= jute.maxbuffer).
OUTPUT_HIGH: Final = 256 * 1024
OUTPUT_LOW: Final = 64 * 1024
# Output that is not a reply to a request pump chose to answer (watch notifications,
# addauth replies) is not throttled that way; a client that lets this much pile up
# unread is disconnected (its session stays: it may reconnect and set its watches).
OUTPUT_HARD_LIMIT: Final = 64 * 1024 * 1024
# Writes of one connection handed to the commit pipeline at once; the rest of its
# backlog waits for them, so a deep pipeline is prepared in slices between which
# other clients are served.
MAX_INFLIGHT_WRITES = 128
# Requests read but not answered, per connection: above this it is not read.
MAX_OUTSTANDING: Final = 1000

# Frames of one connection handled in one loop turn; the rest of a big read waits for
# the next turn (the connection is not read meanwhile), so a client that sends
# thousands of cheap requests in one read (addauth) cannot hold the loop.
FRAMES_PER_TURN: Final = 256

# why a connection is not being read (bits of ClientConnection.read_paused)
PAUSE_OUTPUT: Final = 1  # its client does not read its replies
PAUSE_BACKLOG: Final = 2  # MAX_OUTSTANDING requests of its own are waiting
PAUSE_GLOBAL: Final = 4  # the server has globalOutstandingLimit writes in flight
PAUSE_SLICE: Final = 8  # frames of an earlier read still wait for their turn


_SERIALS = itertools.count()


class _Malformed:
    """Stands for a request body that did not decode."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MALFORMED"


MALFORMED: Final = _Malformed()


class ClientConnection(LatencyCounters):
    """Speaks the client protocol on one socket.

    Before the ConnectRequest the first four bytes may instead be a
    four-letter word (``ruok``, ``srvr``...), answered and closed.
    Replies and notifications are appended to an output list and flushed in
    one ``transport.write`` at the end of the loop turn.

    An asyncio protocol by its methods, not by its base: compiled, it is a native
    class, whose one base (`LatencyCounters`) must be native too.
    """

    def __init__(self, server: ZabbyServer) -> None:
        self.server = server
        # hashed by the order connections were made, not by address: the server's
        # sets of connections are then iterated the same way in every run (a
        # simulated run replays exactly from its seed: zabby.sim)
        self._serial = next(_SERIALS)
        self.transport: asyncio.Transport | None = None
        self.decoder = FrameDecoder(server.config.max_buffer)
        self.session: Session | None = None
        self.peer: tuple[str, int] = ("", 0)
        self.initialized = False  # ConnectRequest seen
        # its ConnectRequest ended with the readOnly byte: only then does the connect
        # response carry one (an older client would read it as the next frame's length)
        self.sent_read_only = True
        self._head = b""
        self.head_rest = b""  # bytes after the first four in the same read
        self.closed = False
        self.closing = False  # close after the pending output is flushed
        self._out: list[bytes | bytearray] = []
        self._out_bytes = 0  # in _out, not yet given to the transport
        self._flush_scheduled = False
        self._receiving = False
        # back-pressure: the transport's buffer is above its high-water mark
        self.write_paused = False
        self.stalled = False  # pump stopped for output; resume once it drains
        self.read_paused = 0  # PAUSE_* bits; read only while 0
        self._frames: list[bytes] | None = None  # decoded, not yet handled (a slice)
        self._next_frame = 0
        # request pipeline state (see ZabbyServer.pump)
        self.backlog: deque = deque()
        self.inflight = 0
        # writes started ahead of held reads whose placeholders are in the backlog
        # (ZabbyServer._run_ahead); every one of them is also counted in inflight
        self.placed = 0
        self.pumping = False
        self.auth: list = []  # authenticated ids of this connection, in order
        self.auth_set: set = set()  # the same ids, for O(1) membership
        self.sasl: Any = None  # this connection's SASL exchange (server.sasl)
        # statistics for `cons` and mntr
        self.established = server.clock.time_ns() / 1e9
        self.packets_received = 0
        self.packets_sent = 0
        self.last_cxid = -1
        self.last_zxid = -1
        self.last_opcode = -1  # `last_op` names it
        self.last_latency = 0
        self.min_latency = 0
        self.max_latency = 0
        self.total_latency = 0
        self.latency_count = 0
        self.last_response_ns = 0  # server.clock.monotonic_ns() of the last reply

    # ------------------------------------------------------------ asyncio
    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("", 0)
        self.peer = (peer[0], peer[1])
        if not self.server.accept_connection(self):
            self.closed = True
            transport.abort()
            return
        transport.set_write_buffer_limits(high=OUTPUT_HIGH, low=OUTPUT_LOW)

    def data_received(self, data: bytes) -> None:
        if self.closed or self.closing:
            return
        self.server.metrics.bytes_received_count += len(data)
        # replies made while handling this read go out in one write at the end
        self._receiving = True
        try:
            self._received(data)
        finally:
            self._receiving = False
            if self._flush_scheduled:
                self.flush()

    def _received(self, data: bytes) -> None:
        try:
            if len(self._head) < 4:
                # the first four bytes may be a four-letter word, not a length
                need = 4 - len(self._head)
                self._head += data[:need]
                if len(self._head) == 4:
                    self.head_rest = data[need:]  # what followed the head (stmk's mask)
                    if self.server.four_letter_word(self, self._head):
                        return
                    self.head_rest = b""
            frames = self.decoder.feed(data)
            if self._frames is not None:  # a read arrived before the last one was done
                self._frames.extend(frames)
                return
            self._handle_frames(frames, 0)
        except ProtocolError as e:
            log.warning("closing connection from %s:%d: malformed frame: %s", *self.peer, e)
            self.abort()
        except Exception:  # a bug must never take the server down
            log.exception("closing connection from %s:%d after internal error", *self.peer)
            self.abort()

    def _more_frames(self) -> None:
        frames, i = self._frames, self._next_frame
        self._frames = None
        if frames is None or self.closed or self.closing:
            return
        self._receiving = True
        try:
            self._handle_frames(frames, i)
        except ProtocolError as e:
            log.warning("closing connection from %s:%d: malformed frame: %s", *self.peer, e)
            self.abort()
        except Exception:  # a bug must never take the server down
            log.exception("closing connection from %s:%d after internal error", *self.peer)
            self.abort()
        finally:
            self._receiving = False
            if self._flush_scheduled:
                self.flush()
        if self._frames is None:
            self.resume(PAUSE_SLICE)

    def _handle_frames(self, frames: list[bytes], i: int) -> None:
        server = self.server
        end = i + FRAMES_PER_TURN
        n = len(frames)
        while i < n:
            if i >= end:
                # the rest in a later turn: other clients are served in between
                self._frames, self._next_frame = frames, i
                self.pause(PAUSE_SLICE)
                asyncio.get_running_loop().call_soon(self._more_frames)
                return
            f = frames[i]
            i += 1
            self.packets_received += 1
            if not self.initialized:
                req, read_only = decode_connect_request(f)
                self.initialized = True
                self.sent_read_only = read_only is not None
                server.handle_connect(self, req, bool(read_only))
                if self.closed or self.closing:
                    return
            else:
                try:
                    xid, op, body = decode_request(f)
                except ProtocolError:
                    if len(f) < 8:
                        raise  # not even a request header: drop the connection
                    # a header with an undecodable body gets MARSHALLINGERROR
                    xid, op = _REQ_HDR.unpack_from(f, 0)
                    body = MALFORMED
                server.handle_request(self, xid, op, body)
                if self.closed or self.closing:
                    return

    def connection_lost(self, exc) -> None:  # type: ignore[override]
        self.closed = True
        self.server.connection_closed(self)

    def pause_writing(self) -> None:
        # a client that does not read its replies stops being read and answered
        self.write_paused = True
        self.pause(PAUSE_OUTPUT)

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.closed:
            return
        if self.stalled:
            self._resume_pump()
        else:
            self.resume(PAUSE_OUTPUT)

    @property
    def output_full(self) -> bool:
        """Answer no more requests for now: the replies would only pile up."""
        return self.write_paused or self._out_bytes >= OUTPUT_HIGH

    def _resume_pump(self) -> None:
        # later in this turn, not from inside a write or a flush
        self.stalled = False
        asyncio.get_running_loop().call_soon(self.server.resume_pump, self)

    def pause(self, why: int) -> None:
        if not self.read_paused and self.transport is not None and not self.closed:
            self.transport.pause_reading()
            self.server.read_paused(self, True)
        self.read_paused |= why

    def resume(self, why: int) -> None:
        if not self.read_paused & why:
            return
        self.read_paused &= ~why
        if not self.read_paused and self.transport is not None and not self.closed:
            self.transport.resume_reading()
            self.server.read_paused(self, False)

    # ------------------------------------------------------------ output
    def send(self, data: bytes | bytearray) -> None:
        if self.closed:
            return
        self._out.append(data)
        self._out_bytes += len(data)
        self.packets_sent += 1
        if not self._flush_scheduled:
            self._flush_scheduled = True
            if not self._receiving:
                self.server.schedule_flush(self)

    def flush(self) -> None:
        self._flush_scheduled = False
        out = self._out
        if not out or self.closed or self.transport is None:
            out.clear()
            self._out_bytes = 0
            if self.closing:  # close_after_flush with nothing to send
                self._close_now()
            return
        self._out = []
        self._out_bytes = 0
        if len(out) == 1:
            self.transport.write(out[0])
        else:
            self.transport.write(b"".join(out))
        if self.closing:
            self._close_now()
        elif self.write_paused and self.transport.get_write_buffer_size() > OUTPUT_HARD_LIMIT:
            log.warning("closing connection from %s:%d: %d bytes of output unread",
                        *self.peer, self.transport.get_write_buffer_size())
            self.abort()
        elif self.stalled and not self.write_paused:
            # pump stopped at OUTPUT_HIGH of unflushed replies; they are written now
            self._resume_pump()

    def close_after_flush(self) -> None:
        """Send what is queued, then close (used after closeSession, auth failure...)."""
        if self.closed:
            return
        self.closing = True
        if not self._flush_scheduled:
            self._flush_scheduled = True
            if not self._receiving:
                self.server.schedule_flush(self)

    def _close_now(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()
            self.server.connection_closed(self)

    def abort(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self._out.clear()
            self._out_bytes = 0
            self.transport.abort()
            self.server.connection_closed(self)

    # ------------------------------------------------------------ stats
    def reset_stats(self) -> None:
        self.packets_received = self.packets_sent = 0
        self.reset_latency()
        self.last_latency = 0
        self.last_opcode = -1
        self.last_cxid = self.last_zxid = -1

    @property
    def last_op(self) -> str:
        """ZooKeeper's short name of the last answered operation (`cons`)."""
        return _OP_NAMES.get(self.last_opcode, "NA")

    @property
    def last_response(self) -> float:
        """Time of day (s) of the last reply, 0.0 before the first (`cons`)."""
        if not self.last_response_ns:
            return 0.0
        clock = self.server.clock
        return (clock.time_ns() - (clock.monotonic_ns() - self.last_response_ns)) / 1e9

    def __hash__(self) -> int:
        return self._serial

    def __repr__(self) -> str:
        return f"<ClientConnection {self.peer[0]}:{self.peer[1]}>"


# ZooKeeper's names for `cons`'s lop (ServerCnxn.op2String)
_OP_NAMES: dict[int, str] = {
    Op.PING: "PING", Op.CREATE_SESSION: "SESS", Op.MULTI: "MULT", Op.MULTI_READ: "MLTR",
    Op.CREATE: "CREA", Op.CREATE2: "CREA", Op.CREATE_TTL: "CREA", Op.CREATE_CONTAINER: "CREA",
    Op.DELETE: "DELE", Op.DELETE_CONTAINER: "DELE", Op.SET_DATA: "SETD", Op.RECONFIG: "RECO",
    Op.SET_ACL: "SETA", Op.CLOSE_SESSION: "CLOS", Op.SYNC: "SYNC", Op.CHECK: "CHEC",
    Op.EXISTS: "EXIS", Op.GET_DATA: "GETD", Op.SET_WATCHES: "SETW", Op.SET_WATCHES2: "STW2",
    Op.ADD_WATCH: "ADDW", Op.GET_ACL: "GETA", Op.GET_CHILDREN: "GETC", Op.GET_CHILDREN2: "GETC",
    Op.GET_ALL_CHILDREN_NUMBER: "GETACN", Op.CHECK_WATCHES: "CHKW", Op.REMOVE_WATCHES: "REMW",
    Op.WHO_AM_I: "HOMI", Op.GET_EPHEMERALS: "GETE",
}
