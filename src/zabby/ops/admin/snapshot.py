"""ZooKeeper 3.9's ``snapshot`` and ``restore`` admin commands, and the authentication
and authorization they need (3.9's ``AuthRequest``: ALL permission on ``/``).

Identity: the HTTP ``Authorization`` header holds ``<scheme> <auth>``, as 3.9 reads it:
``digest user:password`` (the id ``addauth digest user:password`` would give, or
``super`` when it matches ``DigestAuthenticationProvider.superDigest``) or ``ip`` (the
client's address).  The ids must be granted every permission bit on ``/`` by its ACL.

Rate limits: at most one snapshot and one restore per
``admin.rateLimiterIntervalInMS`` (default 5 minutes), each with its own limiter, as in
3.9 (where snapshot's interval is, by a unit slip, read as microseconds; ours is
milliseconds for both).

``snapshot`` makes the server write a snapshot now (the same forked child that writes
its periodic snapshots, so the loop pauses only for the fork) and streams that file from
the AdminServer's thread; the stream is zabby's snapshot format (see
``zabby.storage.snapshot``), which ``restore`` accepts -- not ZooKeeper's.

``restore`` is refused on every server, after authentication and a full validation of
the uploaded stream: see :func:`_restore` for why.
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


def _identities(ctx: AdminContext, auth_info: str, client_ip: str) -> list[Id] | None:
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
    return None  # no such provider here (x509 needs the admin port on TLS)


def authorize(ctx: AdminContext, r: Response, auth_info: str | None,
              client_ip: str) -> Response | None:
    """None when the request may run the command; else the answer that refuses it."""
    if auth_info is None:
        log.warning("Auth info is missing for command %s", r.command)
        r.error, r.status = "Auth info is missing for the command", 401
        return r
    ids = _identities(ctx, auth_info, client_ip)
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
def _start_snapshot(server: Any) -> tuple[int, str] | None:
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
def _restore(ctx: AdminContext, r: Response, kw: Kwargs) -> None:
    """Validate the uploaded snapshot completely, then refuse to install it.

    Installing it correctly needs more than swapping the tree (what 3.9 does): the
    transaction log beyond the snapshot's zxid must not be replayed over it after a
    restart, the zxid sequence must continue past the log's end, in-flight writes and
    every session must be dropped, and an ensemble would need a new epoch agreed by a
    quorum.  zabby does none of that yet, and a half-done restore loses data silently;
    so the command checks the stream (the operator learns whether the file is good)
    and answers 501 with the reason.  Restore offline instead: stop the server, put
    the file in ``<dataDir>/version-2/`` with a zxid above every log entry (or move
    the old data directory away), start it.
    """
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
    r.data["snapshot_zxid"] = f"0x{tree.last_zxid:x}"
    r.data["snapshot_node_count"] = tree.node_count
    del tree
    r.status = 501
    r.error = ("restore is not supported by zabby: the snapshot is valid, but it is not "
               "installed on a running server (see docs/OPERATING.md to restore offline)")


def register(command) -> None:
    command("snapshot", "snap", auth=True)(_snapshot)
    command("restore", "rest", auth=True, post=True)(_restore)
