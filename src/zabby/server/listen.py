"""Listening sockets of our own, for the ports that do TLS (secure client port, peer ports).

`loop.create_server` is not used there: uvloop closes a listening server for good on an
accept error such as EMFILE, and a port that sniffs TLS from plaintext must see the
socket before any protocol does. The plaintext client port has its own, leaner accept
path in `core.ZabbyServer` (it sheds connections at the descriptor limit).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

log = logging.getLogger("zabby.server.listen")

TLS_HANDSHAKE = 0x16  # the first byte of a TLS record carrying a handshake


def listen_socket(host: str, port: int, backlog: int) -> socket.socket:
    """A non-blocking socket listening on (host, port), SO_REUSEADDR set."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def accept_forever(
    sock: socket.socket, on_accept: Callable[[socket.socket, object], None], what: str
) -> None:
    """Accept until cancelled; each connection (non-blocking, TCP_NODELAY) goes to
    `on_accept(conn, address)`. An accept error (EMFILE and the like) is logged and
    accepting pauses 100 ms instead of spinning."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            conn, addr = await loop.sock_accept(sock)
        except asyncio.CancelledError:
            raise
        except OSError as e:
            log.warning("%s: accept failed: %s", what, e)
            await asyncio.sleep(0.1)
            continue
        conn.setblocking(False)
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        on_accept(conn, addr)


async def first_byte_is_tls(conn: socket.socket, timeout: float) -> bool | None:
    """Peek (never read) the first byte a client sent: True for a TLS handshake record,
    False for plaintext, None when it closed or sent nothing within `timeout` seconds."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    fd = conn.fileno()
    loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await asyncio.wait_for(ready, timeout)
    except TimeoutError:
        return None
    finally:
        loop.remove_reader(fd)
    try:
        first = conn.recv(1, socket.MSG_PEEK)
    except OSError:
        return None
    return first[0] == TLS_HANDSHAKE if first else None
