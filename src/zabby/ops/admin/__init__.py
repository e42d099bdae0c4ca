"""The AdminServer: ZooKeeper's HTTP admin API (``admin.*`` keys), and whatever else the
operator views hang on it (the web console).

It runs an aiohttp application on its own event loop in its own thread, so a slow or
hostile HTTP client never holds up the client port; it reads the server only through
``ctx.bridge`` (``zabby.ops.bridge``).

HTTPS (``admin.forceHttps``, ``admin.portUnification``, ``admin.needClientAuth``) comes
from the server's security settings (``server.admin_tls``): `admin_service` passes
``server.security.admin_tls`` in.  With port unification the AdminServer accepts on its
own socket and peeks each connection's first byte (0x16: TLS) before handing it to
aiohttp, with or without TLS.

Others add routes with an *installer*: ``installer(app, ctx)`` is called once, before
the server listens.  ``install_commands`` (ZooKeeper's command URL, ``admin.commandURL``)
is the first; ``zabby.ops.INSTALLERS`` lists what ``zabby serve`` installs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..bridge import LoopBridge

if TYPE_CHECKING:
    from ...server.admin_tls import AdminTls
    from ...server.config import ServerConfig
    from ...server.core import ZabbyServer

__all__ = ["AdminContext", "AdminServer", "Installer", "admin_service", "install_commands"]

log = logging.getLogger("zabby.ops.admin")


@dataclass
class AdminContext:
    """What a route handler may use. ``server`` belongs to the server's loop: touch it
    only inside ``bridge.call(fn)``."""

    server: ZabbyServer
    config: ServerConfig
    bridge: LoopBridge
    # read once at start, as ZooKeeper keeps them: the config file's text (icfg) and
    # the zookeeper.* properties it sets (sysp)
    initial_configuration: str | None = None
    zookeeper_properties: dict[str, str] = field(default_factory=dict)
    snapshot_limiter: Any = None
    restore_limiter: Any = None
    # X509AuthenticationProvider.superUser: the client certificate DN that is also super
    x509_super_user: str | None = None

    def __post_init__(self) -> None:
        from .commands import initial_configuration, zookeeper_properties
        from .snapshot import RateLimiter

        if self.initial_configuration is None:
            self.initial_configuration = initial_configuration(self.config)
        if not self.zookeeper_properties:
            self.zookeeper_properties = zookeeper_properties(self.config)
        interval = getattr(self.config, "admin_rate_limiter_interval", 300000)
        if self.snapshot_limiter is None:
            self.snapshot_limiter = RateLimiter(1, interval)
        if self.restore_limiter is None:
            self.restore_limiter = RateLimiter(1, interval)


Installer = Callable[[web.Application, AdminContext], None]


class AdminServer:
    """An HTTP server in a thread of its own. ``start()`` returns once it listens (or
    raises OSError if it cannot bind); ``stop()`` closes it and joins the thread."""

    def __init__(self, server: ZabbyServer, config: ServerConfig, *, host: str, port: int,
                 installers: Sequence[Installer] = (), bridge: LoopBridge | None = None,
                 tls: AdminTls | None = None) -> None:
        self.host = host
        self.port = port  # the bound port once started (port 0 picks a free one)
        self.tls = tls  # None: plain HTTP
        ctls = getattr(getattr(server, "security", None), "client_tls", None)
        self.ctx = AdminContext(
            server=server, config=config,
            bridge=bridge or LoopBridge(asyncio.get_running_loop()),
            x509_super_user=getattr(ctls, "super_user", None),
        )
        self.app = web.Application()
        for install in installers:
            install(self.app, self.ctx)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._run, name="zabby-admin", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise OSError(f"AdminServer did not start within {timeout} s")
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as e:  # reported to start() if it happened before listening
            if not self._started.is_set():
                self._error = e
                self._started.set()
            else:
                log.exception("AdminServer stopped on an error")
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        idle_ms = getattr(self.ctx.config, "admin_idle_timeout", 30000)
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False,
                               keepalive_timeout=max(idle_ms, 1) / 1000.0)
        await runner.setup()
        try:
            if self.tls is not None and self.tls.port_unification:
                await self._serve_unified(runner)
                return
            ctx = self.tls.tls.context if self.tls is not None else None
            site = web.TCPSite(runner, self.host, self.port, reuse_address=True,
                               ssl_context=ctx)
            await site.start()
            server = site._server  # aiohttp keeps the asyncio server here
            if server is not None and server.sockets:
                self.port = server.sockets[0].getsockname()[1]
            self._started.set()
            await self._stopping.wait()
        finally:
            await runner.cleanup()

    async def _serve_unified(self, runner: web.AppRunner) -> None:
        """admin.portUnification: HTTP and HTTPS on one port, told apart by the first
        byte each client sends (a client silent for the handshake timeout is dropped)."""
        from ...server.listen import accept_forever, first_byte_is_tls, listen_socket

        assert self.tls is not None and self._stopping is not None
        tls = self.tls.tls
        loop = asyncio.get_running_loop()
        factory = runner.server  # aiohttp's protocol factory
        assert factory is not None
        pending: set[asyncio.Task] = set()

        async def hand_over(conn: socket.socket) -> None:
            try:
                is_tls = await first_byte_is_tls(conn, tls.handshake_timeout)
                if is_tls is None:
                    conn.close()
                    return
                ctx: ssl.SSLContext | None = tls.context if is_tls else None
                await loop.connect_accepted_socket(
                    factory, conn, ssl=ctx,
                    ssl_handshake_timeout=tls.handshake_timeout if is_tls else None)
            except (OSError, ssl.SSLError, TimeoutError) as e:
                log.info("AdminServer: unsuccessful handshake: %s", e)
                conn.close()

        def on_accept(conn: socket.socket, _addr: object) -> None:
            task = loop.create_task(hand_over(conn))
            pending.add(task)
            task.add_done_callback(pending.discard)

        sock = listen_socket(self.host, self.port, 128)
        self.port = sock.getsockname()[1]
        acceptor = loop.create_task(accept_forever(sock, on_accept, "AdminServer"))
        self._started.set()
        try:
            await self._stopping.wait()
        finally:
            acceptor.cancel()
            for task in list(pending):
                task.cancel()
            sock.close()

    def stop(self, timeout: float = 10.0) -> None:
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(timeout)


# --------------------------------------------------------------------- commands
def install_commands(app: web.Application, ctx: AdminContext) -> None:
    """ZooKeeper's command servlet at ``admin.commandURL``: ``GET <url>`` lists the
    commands, ``GET <url>/<name>?k=v`` runs one (JSON), ``POST <url>/restore``."""
    from . import commands as cmds
    from .jsonout import encode

    url = getattr(ctx.config, "admin_command_url", "/commands").rstrip("/")

    async def links(request: web.Request) -> web.Response:
        names = sorted(cmds.PRIMARY_NAMES)
        body = "".join(cmds.iter_links(url, names))
        return web.Response(text=body, content_type="text/html")

    async def run(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        known = cmds.COMMANDS.get(name)
        post = request.method == "POST"
        if known is not None and known.post != post:
            raise web.HTTPMethodNotAllowed(request.method, ["POST" if known.post else "GET"])
        loop = asyncio.get_running_loop()
        body_path = None
        if post and known is not None:
            early = await loop.run_in_executor(
                None, cmds.refuse_early, ctx, name, request.headers.get("Authorization"),
                request.remote or "", _peer_dn(request))
            if early is not None:  # refused before a byte of the upload is stored
                data = await loop.run_in_executor(None, encode, early.to_map())
                return web.Response(body=data, status=early.status,
                                    content_type="application/json")
            body_path = await _save_body(request, loop)
        kwargs = {k: request.query.getone(k) for k in request.query}
        try:
            r = await loop.run_in_executor(
                None, lambda: cmds.run_command(
                    ctx, name, kwargs, post=post,
                    auth_info=request.headers.get("Authorization"),
                    client_ip=request.remote or "", body=body_path,
                    peer_dn=_peer_dn(request)))
        finally:
            if body_path is not None:
                try:
                    os.unlink(body_path)
                except OSError:
                    pass
        if r.file is not None:
            resp = web.FileResponse(r.file, status=r.status, headers={
                **r.headers, "Content-Type": "application/octet-stream"})
            return resp
        data = await loop.run_in_executor(None, encode, r.to_map())
        return web.Response(body=data, status=r.status, headers=r.headers,
                            content_type="application/json")

    app.router.add_get(url, links)
    app.router.add_get(url + "/", links)
    app.router.add_route("GET", url + "/{name:.+}", run)
    app.router.add_route("POST", url + "/{name:.+}", run)


def _peer_dn(request: web.Request) -> str | None:
    """The x509 id (Java's subject DN) of the client certificate the AdminServer's TLS
    verified (``admin.needClientAuth``), or None (plain HTTP, or no certificate)."""
    from ...server.tls import peer_identity

    transport = request.transport
    if transport is None:
        return None
    try:
        return peer_identity(transport.get_extra_info("ssl_object"))
    except Exception:  # an unparsable certificate is no identity
        log.warning("AdminServer: cannot read the client certificate", exc_info=True)
        return None


async def _save_body(request: web.Request, loop: asyncio.AbstractEventLoop) -> str:
    """Stream a POST body into a temporary file (written from a worker thread)."""
    import tempfile

    fd, path = tempfile.mkstemp(prefix="zabby-restore-")
    f = os.fdopen(fd, "wb")
    try:
        async for chunk in request.content.iter_chunked(1 << 20):
            await loop.run_in_executor(None, f.write, chunk)
    except BaseException:
        f.close()
        os.unlink(path)
        raise
    f.close()
    return path


def admin_service(config: ServerConfig, installers: Sequence[Installer] = ()):
    """The OpsService that runs an AdminServer beside the server: it listens on
    ``admin.serverAddress:admin.serverPort``; if it cannot (the port is taken), it logs
    a warning and the server goes on without it, as ZooKeeper does."""

    def start(server: ZabbyServer) -> Callable[[], None]:
        admin = AdminServer(server, config, host=config.admin_server_address,
                            port=config.admin_server_port, installers=installers,
                            tls=getattr(server.security, "admin_tls", None))
        try:
            admin.start()
        except OSError as e:
            log.warning("Problem starting AdminServer on %s:%d (%s); the server goes on "
                        "without it", config.admin_server_address, config.admin_server_port, e)
            admin.stop()
            return lambda: None
        log.info("Started AdminServer on address %s, port %d and command URL %s (%s)",
                 config.admin_server_address, admin.port, config.admin_command_url,
                 "HTTP" if admin.tls is None else "HTTPS only" if admin.tls.force_https
                 else "HTTP and HTTPS")
        return admin.stop

    return start
