"""The web console, served by the AdminServer at ``/``.

The page (``static/``: plain HTML, JS and CSS, no build step, no CDN) talks to a JSON
API under ``/api/console/``:

* tree operations (``children``, ``node``, ``search``, ``count``, create / edit /
  delete) go through the real client protocol: the backend opens a ZooKeeper session
  to this server's client port (``client.ConsoleClient``, on the AdminServer's loop),
  adds the digest identity the browser sends, and maps error codes to plain messages,
  so ACLs apply exactly as they would to any other client;
* ``overview`` is mntr's values (``ops.monitor.monitor_values``, read on the server loop
  through ``ctx.bridge``), which the page turns into live charts;
* ``ensemble`` asks every member listed in ``server.N`` lines for ``srvr`` on its client
  port (mode and zxid), so any member shows who leads and each one's lag.

Every API request must carry ``X-Zabby-Console: 1`` (a page on another origin cannot
send a custom header without a CORS preflight, which we never grant), and a request
whose ``Origin`` is not this server's own is refused.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web

from zabby.wire import ACL, CreateMode, Err, Id, Perm, Stat

from .client import OPEN_ACL, ConsoleClient, KeeperError
from .ensemble import ensemble_view

if TYPE_CHECKING:
    from ..admin import AdminContext

__all__ = ["install"]

log = logging.getLogger("zabby.ops.console")

STATIC = Path(__file__).parent / "static"
API = "/api/console"
HEADER = "X-Zabby-Console"
AUTH_HEADER = "X-Zabby-Auth"  # "user:password" for digest, absent for anonymous
MAX_CHILDREN_STATS = 1000  # per-child stats for at most this many children
SEARCH_LIMIT = 500
SEARCH_VISIT_LIMIT = 20000
DELETE_LIMIT = 100000
MAX_DATA = 1024 * 1024


def install(app: web.Application, ctx: AdminContext) -> None:
    """Add the console's page and API to the AdminServer's application."""
    console = Console(ctx)
    app["zabby.console"] = console
    app.middlewares.append(console.guard)
    r = app.router
    r.add_get("/", console.index)
    r.add_get("/console", console.index)
    r.add_static("/console/static/", STATIC, append_version=False)
    r.add_get(f"{API}/children", console.children)
    r.add_get(f"{API}/node", console.get_node)
    r.add_post(f"{API}/node", console.create_node)
    r.add_put(f"{API}/node", console.set_node)
    r.add_delete(f"{API}/node", console.delete_node)
    r.add_get(f"{API}/count", console.count)
    r.add_get(f"{API}/search", console.search)
    r.add_get(f"{API}/whoami", console.whoami)
    r.add_get(f"{API}/overview", console.overview)
    r.add_get(f"{API}/ensemble", console.ensemble)
    app.on_shutdown.append(console.shutdown)


# ---------------------------------------------------------------- errors
PERM_NAMES = {Perm.READ: "READ", Perm.WRITE: "WRITE", Perm.CREATE: "CREATE",
              Perm.DELETE: "DELETE", Perm.ADMIN: "ADMIN"}


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


def keeper_error(e: KeeperError, action: str, who: str, needs: str = "") -> ApiError:
    """A ZooKeeper error code as an HTTP status and a sentence an operator can act on."""
    path = e.path or "?"
    code = e.code
    if code == Err.NOAUTH:
        need = f" (needs {needs})" if needs else ""
        return ApiError(403, "NOAUTH",
                        f"not allowed: {who} may not {action} {path}{need}")
    if code == Err.NONODE:
        return ApiError(404, "NONODE", f"no such node: {path}")
    if code == Err.NODEEXISTS:
        return ApiError(409, "NODEEXISTS", f"already exists: {path}")
    if code == Err.BADVERSION:
        return ApiError(409, "BADVERSION",
                        f"version mismatch: {path} changed since it was loaded; "
                        "reload it and edit again")
    if code == Err.NOTEMPTY:
        return ApiError(409, "NOTEMPTY",
                        f"not empty: {path} has children; delete it recursively")
    if code == Err.NOCHILDRENFOREPHEMERALS:
        return ApiError(400, "NOCHILDRENFOREPHEMERALS",
                        f"ephemeral nodes cannot have children: {path}")
    if code == Err.INVALIDACL:
        return ApiError(400, "INVALIDACL", f"invalid ACL for {path}")
    if code == Err.BADARGUMENTS:
        return ApiError(400, "BADARGUMENTS", f"bad arguments (is the path valid?): {path}")
    if code == Err.AUTHFAILED:
        return ApiError(401, "AUTHFAILED", f"authentication failed for {who}")
    if code == Err.QUOTAEXCEEDED:
        return ApiError(409, "QUOTAEXCEEDED", f"quota exceeded under {path}")
    if code in (Err.CONNECTIONLOSS, Err.OPERATIONTIMEOUT, Err.SESSIONEXPIRED):
        return ApiError(503, e.name, f"the server did not answer ({e.name}); try again")
    return ApiError(500, e.name, f"{action} {path} failed: {e.name}")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda o: json.dumps(o, indent=None))


# ---------------------------------------------------------------- values
def stat_json(s: Stat) -> dict[str, Any]:
    return {
        "czxid": s.czxid, "mzxid": s.mzxid, "pzxid": s.pzxid,
        "ctime": s.ctime, "mtime": s.mtime,
        "version": s.version, "cversion": s.cversion, "aversion": s.aversion,
        "ephemeralOwner": s.ephemeralOwner, "dataLength": s.dataLength,
        "numChildren": s.numChildren,
    }


def perms_text(perms: int) -> str:
    return "".join(c for bit, c in ((Perm.CREATE, "c"), (Perm.DELETE, "d"), (Perm.READ, "r"),
                                    (Perm.WRITE, "w"), (Perm.ADMIN, "a")) if perms & bit)


def acl_json(acl: list[ACL]) -> list[dict[str, Any]]:
    return [{"scheme": a.id.scheme, "id": a.id.id, "perms": a.perms,
             "permsText": perms_text(a.perms)} for a in acl]


def parse_perms(text: str) -> int:
    bits = {"c": Perm.CREATE, "d": Perm.DELETE, "r": Perm.READ, "w": Perm.WRITE,
            "a": Perm.ADMIN}
    perms = 0
    for ch in text.lower():
        if ch not in bits:
            raise ApiError(400, "BADREQUEST", f"unknown permission {ch!r} (use cdrwa)")
        perms |= bits[ch]
    return perms


def data_json(data: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {"base64": base64.b64encode(data).decode("ascii"),
                           "size": len(data), "text": None, "json": None}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return out
    out["text"] = text
    stripped = text.strip()
    if stripped[:1] in ("{", "[", '"') or stripped in ("true", "false", "null") or (
            stripped[:1].isdigit() or stripped[:1] == "-"):
        try:
            out["json"] = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            pass
    return out


def norm_path(path: str | None) -> str:
    if not path:
        raise ApiError(400, "BADREQUEST", "a path is required")
    if not path.startswith("/"):
        raise ApiError(400, "BADREQUEST", f"a path starts with '/': {path!r}")
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/") or "/"
    if path != "/":
        for part in path[1:].split("/"):
            if part in ("", ".", "..") or "\x00" in part:
                raise ApiError(400, "BADREQUEST", f"invalid path {path!r}: empty, '.' or "
                               "'..' components and NUL characters are not allowed")
    return path


def join(parent: str, child: str) -> str:
    return parent.rstrip("/") + "/" + child


# -------------------------------------------------------------- sessions
class Sessions:
    """One ZooKeeper session per identity, reused while it is used and closed when it
    has been idle a while (or when its connection drops)."""

    IDLE = 60.0

    def __init__(self, address: Callable[[], Awaitable[tuple[str, int]]]) -> None:
        self.address = address
        self.clients: dict[str, tuple[ConsoleClient, float]] = {}
        self.locks: dict[str, asyncio.Lock] = {}
        self._reaper: asyncio.Task[None] | None = None

    async def get(self, auth: str | None) -> ConsoleClient:
        key = auth or ""
        lock = self.locks.setdefault(key, asyncio.Lock())
        async with lock:
            entry = self.clients.get(key)
            if entry is not None and not entry[0].closed:
                self.clients[key] = (entry[0], time.monotonic())
                return entry[0]
            host, port = await self.address()
            client = await ConsoleClient.connect(host, port)
            if auth:
                try:
                    await client.add_auth("digest", auth.encode("utf-8"))
                except KeeperError:
                    await client.close()
                    raise
            self.clients[key] = (client, time.monotonic())
            if self._reaper is None or self._reaper.done():
                self._reaper = asyncio.get_running_loop().create_task(self._reap())
            return client

    async def _reap(self) -> None:
        while self.clients:
            await asyncio.sleep(self.IDLE / 4)
            now = time.monotonic()
            for key, (client, used) in list(self.clients.items()):
                if client.closed or now - used > self.IDLE:
                    del self.clients[key]
                    await client.close()

    async def close(self) -> None:
        clients = [c for c, _ in self.clients.values()]
        self.clients.clear()
        if self._reaper is not None:
            self._reaper.cancel()
        for c in clients:
            await c.close()


# ---------------------------------------------------------------- console
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Console:
    def __init__(self, ctx: AdminContext) -> None:
        self.ctx = ctx
        self._address: tuple[str, int] | None = None
        self.sessions = Sessions(self.client_address)

    async def client_address(self) -> tuple[str, int]:
        """Where this server listens for clients (read once on the server loop)."""
        if self._address is None:
            server = self.ctx.server
            try:
                port = await asyncio.get_running_loop().run_in_executor(
                    None, self.ctx.bridge.call, lambda: server.port)
            except Exception as e:  # noqa: BLE001 - ServerBusy or a stopping server
                raise ApiError(503, "BUSY", f"the server did not answer: {e}") from None
            host = self.ctx.config.client_port_address or "127.0.0.1"
            if host in ("0.0.0.0", "::", ""):
                host = "127.0.0.1"
            if port is None or port < 0:
                raise ApiError(503, "NOCLIENTPORT", "this server has no plain client port")
            self._address = (host, int(port))
        return self._address

    async def shutdown(self, app: web.Application) -> None:
        await self.sessions.close()

    # ------------------------------------------------------------ guard
    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(API + "/"):
            return await handler(request)
        origin = request.headers.get("Origin")
        if origin is not None and origin != "null":
            host = urlsplit(origin).netloc
            if host != request.host:
                return _json({"error": "FORBIDDEN",
                              "message": f"cross-origin request refused (Origin {origin})"},
                             403)
        elif origin == "null":
            return _json({"error": "FORBIDDEN", "message": "requests from an opaque origin "
                          "are refused"}, 403)
        if request.headers.get(HEADER) != "1":
            return _json({"error": "FORBIDDEN",
                          "message": f"the console API needs the header {HEADER}: 1"}, 403)
        try:
            return await handler(request)
        except ApiError as e:
            return _json({"error": e.error, "message": e.message}, e.status)
        except KeeperError as e:
            err = keeper_error(e, "use", self.who(request))
            return _json({"error": err.error, "message": err.message}, err.status)

    # ----------------------------------------------------------- helpers
    @staticmethod
    def auth(request: web.Request) -> str | None:
        auth = request.headers.get(AUTH_HEADER, "").strip()
        if not auth:
            return None
        if ":" not in auth:
            raise ApiError(400, "BADREQUEST", "credentials are user:password")
        return auth

    def who(self, request: web.Request) -> str:
        try:
            auth = self.auth(request)
        except ApiError:
            return "?"
        return f"digest user {auth.split(':', 1)[0]!r}" if auth else "anonymous (no credentials)"

    async def client(self, request: web.Request) -> ConsoleClient:
        try:
            return await self.sessions.get(self.auth(request))
        except KeeperError as e:
            raise keeper_error(e, "connect as", self.who(request)) from None

    async def body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "BADREQUEST", "the request body is not JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "BADREQUEST", "the request body is a JSON object")
        return body

    @staticmethod
    def data_of(body: dict[str, Any]) -> bytes:
        data = body.get("data", "")
        if data is None:
            return b""
        if not isinstance(data, str):
            raise ApiError(400, "BADREQUEST", "data is a string")
        if body.get("encoding", "text") == "base64":
            try:
                raw = base64.b64decode(data, validate=True)
            except binascii.Error:
                raise ApiError(400, "BADREQUEST", "data is not valid base64") from None
        elif body.get("encoding", "text") == "hex":
            try:
                raw = bytes.fromhex(data)
            except ValueError:
                raise ApiError(400, "BADREQUEST", "data is not valid hex") from None
        else:
            raw = data.encode("utf-8")
        if len(raw) > MAX_DATA:
            raise ApiError(400, "BADREQUEST", f"data is larger than {MAX_DATA} bytes")
        return raw

    async def run(self, request: web.Request, coro: Awaitable[Any], action: str,
                  needs: str = "") -> Any:
        try:
            return await coro
        except KeeperError as e:
            raise keeper_error(e, action, self.who(request), needs) from None

    # ------------------------------------------------------------- pages
    async def index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={
            "Cache-Control": "no-cache",
            "Content-Security-Policy": "default-src 'self'; img-src 'self' data:",
            "X-Frame-Options": "DENY",
        })

    # -------------------------------------------------------------- tree
    async def children(self, request: web.Request) -> web.Response:
        path = norm_path(request.query.get("path", "/"))
        zk = await self.client(request)
        names, stat = await self.run(request, zk.get_children(path), "list children of",
                                     "READ")
        names.sort()
        out: list[dict[str, Any]] = []
        stats: list[Stat | None | BaseException] = []
        if len(names) <= MAX_CHILDREN_STATS:
            stats = await asyncio.gather(*(zk.exists(join(path, n)) for n in names),
                                         return_exceptions=True)
        for i, name in enumerate(names):
            item: dict[str, Any] = {"name": name, "path": join(path, name)}
            s = stats[i] if i < len(stats) else None
            if isinstance(s, Stat):
                item.update(numChildren=s.numChildren, dataLength=s.dataLength,
                            ephemeral=s.ephemeralOwner != 0)
            out.append(item)
        return _json({"path": path, "children": out, "stat": stat_json(stat)})

    async def get_node(self, request: web.Request) -> web.Response:
        path = norm_path(request.query.get("path"))
        zk = await self.client(request)
        data, stat = await self.run(request, zk.get_data(path), "read", "READ")
        acl: list[dict[str, Any]] | None = None
        acl_error = None
        try:
            acl = acl_json((await zk.get_acl(path))[0])
        except KeeperError as e:
            acl_error = keeper_error(e, "read the ACL of", self.who(request), "READ or ADMIN"
                                     ).message
        return _json({"path": path, "data": data_json(data), "stat": stat_json(stat),
                      "acl": acl, "aclError": acl_error})

    async def create_node(self, request: web.Request) -> web.Response:
        body = await self.body(request)
        path = norm_path(body.get("path"))
        data = self.data_of(body)
        flags = CreateMode.PERSISTENT
        if body.get("sequential"):
            flags = CreateMode.PERSISTENT_SEQUENTIAL
        acl = OPEN_ACL
        if body.get("acl"):
            try:
                acl = [ACL(parse_perms(str(a.get("perms", ""))),
                           Id(str(a["scheme"]), str(a["id"]))) for a in body["acl"]]
            except (KeyError, TypeError, AttributeError):
                raise ApiError(400, "BADREQUEST", "acl is a list of {scheme, id, perms}"
                               ) from None
        zk = await self.client(request)
        created, stat = await self.run(request, zk.create(path, data, acl, int(flags)),
                                       "create", "CREATE on the parent")
        return _json({"path": created, "stat": stat_json(stat)}, 201)

    async def set_node(self, request: web.Request) -> web.Response:
        body = await self.body(request)
        path = norm_path(body.get("path"))
        data = self.data_of(body)
        version = body.get("version", -1)
        if not isinstance(version, int):
            raise ApiError(400, "BADREQUEST", "version is an integer (-1: any)")
        zk = await self.client(request)
        stat = await self.run(request, zk.set_data(path, data, version), "write", "WRITE")
        return _json({"path": path, "stat": stat_json(stat)})

    async def walk(self, zk: ConsoleClient, request: web.Request, root: str,
                   limit: int) -> list[str]:
        """root and every descendant, parents before children (at most `limit`)."""
        order = [root]
        level = [root]
        while level:
            results = await asyncio.gather(*(zk.get_children(p) for p in level),
                                           return_exceptions=True)
            nxt: list[str] = []
            for parent, res in zip(level, results, strict=True):
                if isinstance(res, KeeperError):
                    if res.code == Err.NONODE and parent != root:
                        continue  # deleted meanwhile
                    raise keeper_error(res, "list children of", self.who(request), "READ")
                if isinstance(res, BaseException):
                    raise res
                nxt.extend(join(parent, c) for c in sorted(res[0]))
            order.extend(nxt)
            if len(order) > limit:
                raise ApiError(413, "TOOMANY",
                               f"{root} has more than {limit} nodes under it; refusing")
            level = nxt
        return order

    async def count(self, request: web.Request) -> web.Response:
        path = norm_path(request.query.get("path"))
        zk = await self.client(request)
        nodes = await self.walk(zk, request, path, DELETE_LIMIT)
        return _json({"path": path, "count": len(nodes), "descendants": len(nodes) - 1})

    async def delete_node(self, request: web.Request) -> web.Response:
        path = norm_path(request.query.get("path"))
        if path == "/" or path == "/zookeeper" or path.startswith("/zookeeper/"):
            raise ApiError(400, "BADREQUEST", f"{path} cannot be deleted")
        try:
            version = int(request.query.get("version", "-1"))
        except ValueError:
            raise ApiError(400, "BADREQUEST", "version is an integer") from None
        recursive = request.query.get("recursive") in ("1", "true", "yes")
        zk = await self.client(request)
        if not recursive:
            await self.run(request, zk.delete(path, version), "delete", "DELETE on the parent")
            return _json({"path": path, "deleted": 1})
        expected = request.query.get("expect")
        nodes = await self.walk(zk, request, path, DELETE_LIMIT)
        if expected is not None and expected != str(len(nodes)):
            raise ApiError(409, "CHANGED", f"{path} now has {len(nodes)} nodes, not "
                           f"{expected}; count again before deleting")
        deleted = 0
        # deepest first; siblings at one depth in one pipelined batch
        by_depth: dict[int, list[str]] = {}
        for p in nodes[1:]:
            by_depth.setdefault(p.count("/"), []).append(p)
        for depth in sorted(by_depth, reverse=True):
            results = await asyncio.gather(*(zk.delete(p) for p in by_depth[depth]),
                                           return_exceptions=True)
            for res in results:
                if res is None:
                    deleted += 1
                elif isinstance(res, KeeperError) and res.code == Err.NONODE:
                    continue
                elif isinstance(res, KeeperError):
                    err = keeper_error(res, "delete", self.who(request), "DELETE on the parent")
                    return _json({"error": err.error, "deleted": deleted,
                                  "message": f"{err.message} ({deleted} nodes deleted before "
                                             "that)"}, err.status)
                else:
                    raise res
        try:
            await zk.delete(path, version)
            deleted += 1
        except KeeperError as e:
            err = keeper_error(e, "delete", self.who(request), "DELETE on the parent")
            return _json({"error": err.error, "deleted": deleted,
                          "message": f"{err.message} ({deleted} nodes under it deleted)"},
                         err.status)
        return _json({"path": path, "deleted": deleted})

    async def search(self, request: web.Request) -> web.Response:
        """Paths starting with `prefix`, breadth first, at most SEARCH_LIMIT."""
        raw = request.query.get("prefix", "/") or "/"
        if not raw.startswith("/"):
            raw = "/" + raw
        if raw.endswith("/"):
            parent, start = raw.rstrip("/") or "/", ""
        else:
            parent, _, start = raw.rpartition("/")
            parent = parent or "/"
        zk = await self.client(request)
        names, _ = await self.run(request, zk.get_children(parent), "list children of",
                                  "READ")
        level = [join(parent, n) for n in sorted(names) if n.startswith(start)]
        found: list[str] = []
        visited = 0
        truncated = False
        while level and not truncated:
            for p in level:
                if len(found) >= SEARCH_LIMIT:
                    truncated = True
                    break
                found.append(p)
            visited += len(level)
            if truncated or visited > SEARCH_VISIT_LIMIT:
                truncated = truncated or bool(level)
                break
            results = await asyncio.gather(*(zk.get_children(p) for p in level),
                                           return_exceptions=True)
            level = [join(p, c) for p, r in zip(level, results, strict=True)
                     if not isinstance(r, BaseException) for c in sorted(r[0])]
        return _json({"prefix": raw, "paths": found, "truncated": truncated})

    async def whoami(self, request: web.Request) -> web.Response:
        await self.client(request)  # proves the credentials are accepted
        return _json({"identity": self.who(request)})

    # ---------------------------------------------------------- metrics
    async def overview(self, request: web.Request) -> web.Response:
        from ..monitor import monitor_values

        loop = asyncio.get_running_loop()
        server = self.ctx.server
        try:
            values = await loop.run_in_executor(
                None, self.ctx.bridge.call, lambda: monitor_values(server))
        except Exception as e:  # noqa: BLE001 - ServerBusy or a stopping server
            raise ApiError(503, "BUSY", f"the server did not answer: {e}") from None
        v = {k: (val if isinstance(val, int | float | str | bool) or val is None else str(val))
             for k, val in values}
        return _json({"time": time.time(), "values": v})

    async def ensemble(self, request: web.Request) -> web.Response:
        return _json(await ensemble_view(self.ctx.config, await self.client_address()))
