"""ZooKeeper 3.9's ``snapshot`` and ``restore`` admin commands, and the authentication
and authorization they need (3.9's ``AuthRequest``: ALL permission on ``/``).

Identity: the HTTP ``Authorization`` header holds ``<scheme> <auth>``, as 3.9 reads it:
``digest user:password`` (the id ``addauth digest user:password`` would give, or
``super`` when it matches ``DigestAuthenticationProvider.superDigest``), ``ip`` (the
client's address) or ``x509`` (the subject DN of the client certificate the AdminServer's
HTTPS verified -- ``admin.needClientAuth=true`` -- in Java's ``X500Principal.getName()``
form, plus ``super`` when it is ``X509AuthenticationProvider.superUser``).  The ids must be granted every permission bit on ``/`` by its ACL.

Rate limits: at most one snapshot and one restore per
``admin.rateLimiterIntervalInMS`` (default 5 minutes), each with its own limiter, as in
3.9 (where snapshot's interval is, by a unit slip, read as microseconds; ours is
milliseconds for both).

``snapshot`` makes the server write a snapshot now (the same forked child that writes
its periodic snapshots, so the loop pauses only for the fork) and streams that file from
the AdminServer's thread; the stream is zabby's snapshot format (see
``zabby.storage.snapshot``), which ``restore`` accepts -- not ZooKeeper's.

``restore`` (standalone only) validates the whole upload before it touches anything,
then swaps the tree and makes it durable: see :func:`_restore`.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from ...tree.acl import check_perm, digest_id
from ...wire.records import Id

if TYPE_CHECKING:
    from . import AdminContext
    from .commands import Kwargs, Response

log = logging.getLogger("zabby.ops.admin")

ALL_PERMS = 31  # ZooDefs.Perms.ALL: READ | WRITE | CREATE | DELETE | ADMIN
SNAPSHOT_TIMEOUT = 600.0  # seconds a snapshot may take before the command gives up


class RateLimiter:
    """3.9's RateLimiter: `rate` permits per interval, the interval restarting at the
    first request after it ran out."""

    def __init__(self, rate: int, interval_ms: int, clock=time.monotonic) -> None:
        self.rate = rate
        self.interval = interval_ms / 1000.0
        self.clock = clock
        self.reset_at = clock()
        self.remaining = rate
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            now = self.clock()
            if now > self.reset_at + self.interval:
                self.remaining = self.rate
                self.reset_at = now
            if self.remaining > 0:
                self.remaining -= 1
                return True
            return False


def _identities(ctx: AdminContext, auth_info: str, client_ip: str,
                peer_dn: str | None = None) -> list[Id] | None:
    """handleAuthentication: the ids the header proves, or None (not authenticated)."""
    parts = auth_info.split(" ")
    while parts and parts[-1] == "":  # Java's split drops trailing empty strings
        parts.pop()
    if len(parts) not in (1, 2):
        return None
    scheme = parts[0]
    auth = parts[1] if len(parts) == 2 else None
    if scheme == "digest":
        if auth is None:
            return None
        ident = digest_id(auth)
        superd = ctx.config.super_digest
        if superd is not None and hmac.compare_digest(ident.encode(), superd.encode()):
            return [Id("super", "")]
        return [Id("digest", ident)]
    if scheme == "ip" and client_ip:
        return [Id("ip", client_ip)]
    if scheme == "x509" and peer_dn is not None:  # as 3.9: the id comes from the request
        ids = [Id("x509", peer_dn)]
        if ctx.x509_super_user is not None and peer_dn == ctx.x509_super_user:
            ids.insert(0, Id("super", peer_dn))
        return ids
    return None  # no such provider, or x509 without a verified client certificate


def authorize(ctx: AdminContext, r: Response, auth_info: str | None,
              client_ip: str, peer_dn: str | None = None) -> Response | None:
    """None when the request may run the command; else the answer that refuses it."""
    if auth_info is None:
        log.warning("Auth info is missing for command %s", r.command)
        r.error, r.status = "Auth info is missing for the command", 401
        return r
    ids = _identities(ctx, auth_info, client_ip, peer_dn)
    if not ids:
        r.error, r.status = "Not authenticated", 401
        return r

    def root_acl(server: Any) -> list | None:
        node = server.tree.get_node("/")
        return None if node is None else list(node.acl)

    try:
        acl = ctx.bridge.call(root_acl, ctx.server)
    except Exception:
        log.warning("Error occurred during auth for command %s", r.command, exc_info=True)
        r.error, r.status = "Error occurred during auth", 500
        return r
    if acl is None:
        r.error, r.status = "Error occurred during auth", 500
        return r
    for bit in (1, 2, 4, 8, 16):
        if ALL_PERMS & bit and not check_perm(acl, bit, ids):
            r.error, r.status = "Not authorized", 403
            return r
    return None


# ------------------------------------------------------------------ snapshot
def _start_snapshot(server: Any) -> tuple[int, str, int] | None:
    """On the loop: fork the snapshot writer unless one is running; (zxid, path)."""
    from ...storage.snapshot import snapshot_path

    committer = getattr(server, "committer", None)
    if committer is None:
        raise RuntimeError("this server has no snapshot writer")
    if committer._snap_child is not None:
        return None
    zxid = server.tree.last_zxid
    taken = committer.snapshots_taken
    committer.take_snapshot()
    return zxid, snapshot_path(committer.snap_dir, zxid), taken


def take_snapshot(ctx: AdminContext, timeout: float = SNAPSHOT_TIMEOUT) -> tuple[int, str]:
    """Have the server write a snapshot and wait (in this thread) until it is on disk."""
    deadline = time.monotonic() + timeout
    committer = ctx.server.committer
    while True:
        started = ctx.bridge.call(_start_snapshot, ctx.server)
        if started is not None:
            break
        if time.monotonic() > deadline:  # a periodic snapshot is still being written
            raise TimeoutError("a snapshot is already being written")
        time.sleep(0.05)
    zxid, path, taken_before = started
    # the reaper thread clears _snap_child once the child exited (attribute reads only)
    while committer._snap_child is not None:
        if time.monotonic() > deadline:
            raise TimeoutError("the snapshot took too long")
        time.sleep(0.02)
    if committer.snapshots_taken == taken_before or not os.path.exists(path):
        raise OSError(f"writing the snapshot at zxid 0x{zxid:x} failed (see the server log)")
    return zxid, path


def _snapshot(ctx: AdminContext, r: Response, kw: Kwargs) -> None:
    if not ctx.config.admin_snapshot_enabled:
        log.warning("Snapshot command is disabled")
        r.status = 503
        return
    if not ctx.snapshot_limiter.allow():
        log.warning("Snapshot request was rate limited")
        r.status = 429
        return
    streaming = True
    if "streaming" in kw:
        streaming = kw["streaming"].lower() == "true"  # Boolean.parseBoolean
    try:
        zxid, path = take_snapshot(ctx)
        size = os.path.getsize(path)
    except Exception as e:
        log.warning("Exception occurred when taking the snapshot via the snapshot admin "
                    "command: %s", e)
        r.status = 500
        return
    r.headers["last_zxid"] = f"0x{zxid:x}"
    r.headers["snapshot_size"] = str(size)
    if size == 0:
        r.status = 500
    elif streaming:
        r.file = path


# ------------------------------------------------------------------ restore
RESTORE_QUIESCE_TIMEOUT = 30.0  # seconds to wait for in-flight writes to drain


class RestoreRefused(Exception):
    """This server cannot install a snapshot (the message says why)."""


def _restorable(server: Any) -> None:
    from ...server.durability import GroupCommitter

    if getattr(server.config, "is_distributed", False) or hasattr(server, "peer"):
        raise RestoreRefused(
            "restore is refused on an ensemble member: installing a snapshot on one server "
            "would make it diverge from the quorum (restore a standalone server, or restore "
            "offline: see docs/OPERATING.md)")
    if not isinstance(server.committer, GroupCommitter):
        raise RestoreRefused("restore needs a server with a data directory")
    if server._server is not None or server._secure is not None:
        raise RestoreRefused("restore is not supported while TLS client listeners are on")
    if server.committer.failure is not None:
        raise RestoreRefused(f"the server refuses writes: {server.committer.failure}")
    if server._restoring:
        raise RestoreRefused("another restore is in progress")


def _quiesce(server: Any) -> None:
    """On the loop: stop taking clients and drop every connection (their sessions and
    watches belong to the state being replaced)."""
    _restorable(server)
    server._restoring = True
    server._stop_accepting()
    for conn in list(server.connections):
        conn.abort()


def _resume(server: Any) -> None:
    server._restoring = False
    server._start_accepting()


def _swap(server: Any, tree: Any) -> tuple[int, str, int] | None:
    """On the loop, once nothing is in flight: install `tree` and fork the writer of
    its snapshot (the zxid continues past the log's end, so recovery from that
    snapshot replays only what comes after it).  None: writes still in flight."""
    from ...server.session import SessionTracker
    from ...storage.snapshot import snapshot_path

    c = server.committer
    for conn in list(server.connections):  # one that slipped in before accept stopped
        conn.abort()
    if server.outstanding or c._pending or c._inflight or c._snap_child is not None:
        return None
    old = server.tree
    zxid = max(old.last_zxid, tree.last_zxid)
    tree.last_zxid = zxid
    server.adopt_tree(tree)  # the server's settings: ACL providers, quotas, digest
    server.next_zxid = zxid + 1
    # the snapshot's sessions join the tracker once the snapshot is on disk (_finish):
    # none may expire, and no txn (a container's deletion...) may be logged, before
    # it is -- a txn logged on top of a restore that never reached the disk would
    # land on the old state at the next start
    tracker = SessionTracker(server.config.tick_time, 1, server.monotonic_ms())
    tracker._next_id = server.sessions._next_id  # new ids never reuse old ones
    server.sessions = tracker
    c.failure = RESTORING
    taken = c.snapshots_taken
    c.take_snapshot()
    return zxid, snapshot_path(c.snap_dir, zxid), taken


RESTORING = "a restore is being written; writes wait for it"


def _finish(server: Any) -> None:
    """On the loop, the restored snapshot on disk: writes and sessions resume."""
    c = server.committer
    if c.failure == RESTORING:
        c.failure = None
    now = server.monotonic_ms()
    for sid, timeout in server.tree.sessions.items():
        server.sessions.add(sid, timeout, now)
    server._containers_proposed.clear()


def restore(ctx: AdminContext, tree: Any) -> int:
    """Install a validated tree on this standalone server; its zxid once durable."""
    bridge, server = ctx.bridge, ctx.server
    bridge.call(_quiesce, server)
    swapped = None
    try:
        deadline = time.monotonic() + RESTORE_QUIESCE_TIMEOUT
        while swapped is None:
            swapped = bridge.call(_swap, server, tree)
            if swapped is None:
                if time.monotonic() > deadline:
                    raise TimeoutError("writes in flight did not drain; nothing was restored")
                time.sleep(0.02)
        zxid, path, taken = swapped
        log.warning("restore: installed a snapshot at zxid 0x%x (%d nodes); writing it",
                    zxid, tree.node_count)
        committer = server.committer
        while committer._snap_child is not None:  # cleared by the reaper thread
            time.sleep(0.02)
        if committer.snapshots_taken == taken or not os.path.exists(path):
            # the restored state is live but not on disk: logging writes on top of it
            # would mix two histories at the next start, so refuse them
            def fail() -> None:
                committer.failure = ("restore could not write its snapshot; restart the "
                                     "server (it comes back with the state before restore)")
            bridge.call(fail)
            raise OSError("writing the restored snapshot failed (see the server log)")
        bridge.call(_finish, server)
        return zxid
    finally:
        try:
            bridge.call(_resume, server)
        except Exception:
            log.exception("restore: could not resume accepting clients")


def _restore(ctx: AdminContext, r: Response, kw: Kwargs) -> None:
    """POST a snapshot (zabby's format, as ``snapshot`` streams it) to replace this
    server's data.  The stream is read to a file and validated completely (both
    checksums, every record decoded into a new tree) before anything changes; then the
    server stops taking clients, drops every connection, waits for writes in flight,
    swaps the tree, writes it as a snapshot whose zxid is past the log's end, and takes
    clients again.  Only a standalone server: an ensemble member is refused."""
    from ...storage import CorruptDataError
    from ...storage.snapshot import load_snapshot

    if not ctx.config.admin_restore_enabled:
        log.warning("Restore command is disabled")
        r.status = 503
        return
    body = kw.get("__body__")
    if body is None:
        r.status = 400
        return
    try:
        ctx.bridge.call(_restorable, ctx.server)
    except RestoreRefused as e:
        r.status, r.error = 501, str(e)
        return
    if not ctx.restore_limiter.allow():
        log.warning("Restore request was rate limited")
        r.status = 429
        return
    try:
        tree = load_snapshot(body, max_buffer=ctx.config.max_buffer,
                             extended_types=ctx.config.extended_types_enabled)
    except CorruptDataError as e:
        r.status, r.error = 400, f"the snapshot is not valid: {e}"
        return
    except Exception as e:
        r.status, r.error = 500, f"cannot read the snapshot: {e}"
        return
    try:
        r.data["last_zxid"] = restore(ctx, tree)
    except RestoreRefused as e:
        r.status, r.error = 501, str(e)
    except Exception as e:
        log.warning("Exception occurred when restore snapshot via the restore command: %s", e)
        r.status, r.error = 500, f"restore failed: {e}"


def register(command) -> None:
    command("snapshot", "snap", auth=True)(_snapshot)
    command("restore", "rest", auth=True, post=True)(_restore)
