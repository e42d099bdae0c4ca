"""Run a server until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from collections.abc import Callable, Sequence

from ..storage import CorruptDataError, Progress, TxnLog, purge, recover
from ..storage.snapshot import write_snapshot
from . import native_log
from .config import ConfigError, ServerConfig
from .core import FourLetterHandler, ZabbyServer
from .durability import GroupCommitter
from .fsync_helper import FsyncPool, LogWriter
from .security import load_security

log = logging.getLogger("zabby")

# An operator-facing service started beside a running server (the AdminServer, the
# Prometheus endpoint, ...): called with the started server, on its event loop; it
# starts whatever it needs (its own thread, so the client loop never waits on it)
# and returns the function that stops it.  ``server`` only calls them; ``zabby.ops``
# provides them (``zabby.ops.services``).
OpsService = Callable[[ZabbyServer], Callable[[], None]]


def install_uvloop() -> bool:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def build_server(
    config: ServerConfig, *, four_letter_handler: FourLetterHandler | None = None,
    progress: Progress | None = None,
) -> ZabbyServer:
    """Recover the data directory and make a server that logs before it replies.

    `four_letter_handler` answers four-letter words on the client port (the ``cli``
    passes ``zabby.ops.fourletter.handle_four_letter_word``; ``server`` does not know
    ``ops``); without one the server answers none. `progress` hears how far loading
    the snapshot and replaying the log has come (``zabby.storage.Progress``; the
    ``cli`` draws it on a terminal).

    Raises CorruptDataError (the caller refuses to start) if the data directory
    holds corruption that recovery must not paper over.
    """
    # a security setting that cannot be honoured refuses to start before anything else
    security = load_security(config)
    log_dir = config.effective_data_log_dir
    os.makedirs(config.data_dir, exist_ok=True)
    os.makedirs(log_dir, exist_ok=True)
    # An ensemble member's log may end in proposals that were never committed:
    # its tree starts from the snapshot, and consensus re-applies what is committed.
    tree, report = recover(
        config.data_dir, log_dir,
        max_buffer=config.max_buffer, extended_types=config.extended_types_enabled,
        replay=not config.is_distributed, progress=progress,
    )
    log.info(
        "recovered zxid 0x%x from %s + %d logged txns in %.3f s",
        report.last_zxid, report.snapshot or "an empty data directory", report.replayed,
        report.seconds,
    )
    trusted = True
    if report.snapshot is None:
        trusted = _trust_empty_db(config, report, log_dir)
        if trusted:
            _no_snapshot(config, tree, report, log_dir)
    txn_log = TxnLog(
        log_dir, prealloc_bytes=config.pre_alloc_size_kb * 1024, force_sync=config.force_sync
    )
    txn_log.open_for_append(report.log_last_zxid, report.newest_segment)
    server: ZabbyServer | None = None
    committer = GroupCommitter(
        txn_log, snap_dir=config.data_dir, snap_count=config.snap_count,
        tree_getter=lambda: server.tree, compress=bool(config.snapshot_compression),
        # the log is on the real filesystem: a C thread of ours (or, without it, a
        # helper process) writes and fsyncs each batch, the loop only encodes it
        # (docs/ARCHITECTURE.md, "Log writes off the loop"); ZABBY_LOG_WRITER=loop:
        # the loop writes, two helpers fsync (the design before; kept to measure
        # against). With the helper, a small batch with none in flight goes to a
        # Python thread of ours instead (`direct_max`).
        syncer=_log_syncer() if config.force_sync else None,
        max_inflight=LOG_BATCHES_IN_FLIGHT,
        direct_max=_log_direct_max(),
    )
    if config.force_sync:
        log.info("txn log writes: %s", "a C thread of this process (zabby._logio)"
                 if _log_native() else "a helper process (ZABBY_LOG_WRITER=%s)"
                 % (os.environ.get("ZABBY_LOG_WRITER") or "child, zabby._logio not built"))
    if config.is_distributed:
        from .local_sessions import server_class

        EnsembleServer = server_class(config)  # noqa: N806 - readonly / local sessions
        if config.server_id is None or config.server_id not in config.servers:
            raise ConfigError(f"{config.source or '<config>'}: this server's id is unknown: "
                              f"write it to {os.path.join(config.data_dir, 'myid')} "
                              f"(one of {sorted(config.servers)})")
        server = EnsembleServer(config, tree=tree, txn_log=txn_log, committer=committer,
                                my_id=config.server_id, log_last_zxid=report.log_last_zxid,
                                security=security, four_letter_handler=four_letter_handler)
        if not trusted:
            server.peer.distrust_empty_db()

            def synced() -> None:
                # in sync with a leader: a snapshot, so that a restart finds this data
                # directory no longer empty (a DIFF sync writes only log entries)
                server.on_serving = None
                log.info("synced with the leader: taking a snapshot of the tree")
                committer.take_snapshot()

            server.on_serving = synced
    else:
        server = ZabbyServer(config, committer=committer, tree=tree, security=security,
                             four_letter_handler=four_letter_handler)
    server.metrics.dbinittime.add(int(report.seconds * 1000))
    server.metrics.startup_txns_loaded.add(report.replayed)
    return server


EMPTY_SNAPSHOT_WARNING = "No snapshot found, but there are log entries. "


def _trust_empty_db(config: ServerConfig, report, log_dir: str) -> bool:
    """May an ensemble member that found no snapshot take part in elections? As
    ZooKeeper 3.8's FileTxnSnapLog.restore: a directory with txn logs is not empty
    (`_no_snapshot` decides); an empty one is trusted once if `<dataLogDir>/initialize`
    exists (deleted now: a new ensemble's members), else if db.autocreate (the
    default). An untrusted one may have been wiped and so lack txns it acknowledged:
    it takes no snapshot (a restart finds it empty again) and follows a leader that a
    quorum elected without it (consensus.Peer.distrust_empty_db)."""
    if report.log_last_zxid or not config.is_distributed:
        return True
    marker = os.path.join(log_dir, "initialize")
    try:
        os.unlink(marker)
    except FileNotFoundError:
        pass
    else:
        log.info("%s found: an empty database will not block voting participation", marker)
        return True
    if config.db_autocreate:
        return True
    log.warning("empty data directory and db.autocreate=false: taking no part in leader "
                "election until a leader has synced this server (it may have been wiped)")
    return False

# Log batches handed to the writer and not yet durable, at most (the committer's
# max_inflight, the writer's slots). With 32 sessions of one setData at a time, the
# round trip to the writer was ~390 us against ~205 us for the fdatasync itself, and
# with 2 in flight a batch that filled meanwhile waited for a slot: 4 gave 12-20 %
# more setData/s at 32 x 1 and no loss at 32 x 16 (docs/ARCHITECTURE.md).
LOG_BATCHES_IN_FLIGHT = 4


# With the writer child, a log batch of at most this many txns with none in flight is
# written and fdatasynced by a thread of the server's process instead (`GroupCommitter`'s
# direct lane): one session of setData at a time, 2.3-2.4k -> 2.8-3.0k ops/s standalone.
# The native writer needs no such lane (one session: 2.98-3.23k ops/s without it,
# 2.82-2.91k with it). ZABBY_LOG_DIRECT_MAX sets it either way (0: off).
LOG_DIRECT_MAX = 4


def _log_native() -> bool:
    """The log's writes and fdatasyncs go to the C writer thread (server/native_log.py)
    wherever it was built; ZABBY_LOG_WRITER=child (or loop, seal) chooses the writer
    child, its Python twin and the fallback of a pure-Python install. 32 x 1 setData:
    +10-16 % (docs/ARCHITECTURE.md, "Log writes off the loop")."""
    return (os.environ.get("ZABBY_LOG_WRITER") in (None, "native")
            and native_log.available())


def _log_direct_max() -> int:
    return int(os.environ.get("ZABBY_LOG_DIRECT_MAX", 0 if _log_native() else LOG_DIRECT_MAX))


def _log_syncer():
    mode = os.environ.get("ZABBY_LOG_WRITER")
    if mode == "loop":
        return FsyncPool
    n = LOG_BATCHES_IN_FLIGHT
    if _log_native():
        return lambda loop: native_log.NativeLogWriter(loop, slots=n)
    if mode == "seal":  # the writer also computes the checksums (lost with 1 KiB values)
        return lambda loop: LogWriter(loop, slots=n, seal=True)
    return lambda loop: LogWriter(loop, slots=n)  # the loop computes the checksums


def _no_snapshot(config: ServerConfig, tree, report, log_dir: str) -> None:
    """A data directory without a snapshot, as ZooKeeper 3.8's FileTxnSnapLog.restore:
    with txn logs it refuses to start (the snapshot they follow is missing) unless
    snapshot.trust.empty=true, which replays the logs from an empty tree (meant for
    upgrades from versions that wrote no snapshot at start); either way -- a brand-new
    directory too -- a snapshot is taken at once, as ZooKeeper does when it loads its
    database, so the next start finds one."""
    if report.log_last_zxid:
        if not config.snapshot_trust_empty:
            where = os.path.join(log_dir, "version-2")
            raise CorruptDataError(
                f"{where}: {EMPTY_SNAPSHOT_WARNING}Something is broken! (the txn logs run to "
                f"zxid 0x{report.log_last_zxid:x}; to start from them alone, as when "
                "upgrading from a version that wrote no snapshot, set "
                "snapshot.trust.empty=true)", path=where)
        log.warning("%sThis should only be allowed during upgrading.", EMPTY_SNAPSHOT_WARNING)
    write_snapshot(tree, config.data_dir, compress=bool(config.snapshot_compression))


async def serve(
    config: ServerConfig, ready=None, *, four_letter_handler: FourLetterHandler | None = None,
    services: Sequence[OpsService] = (), progress: Progress | None = None,
) -> None:
    server = build_server(config, four_letter_handler=four_letter_handler, progress=progress)
    await server.start()
    stoppers: list[Callable[[], None]] = []
    try:
        for start_service in services:
            stoppers.append(start_service(server))
    except BaseException:
        for stop_service in reversed(stoppers):
            stop_service()
        await server.stop()
        raise
    purger = None
    if config.autopurge_purge_interval > 0:
        purger = asyncio.get_running_loop().create_task(_autopurge(config))
    if ready is not None:
        ready(server)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover
            pass
    freeze_s = os.environ.get("ZABBY_TEST_FREEZE_ON_SIGUSR2")
    if freeze_s:
        # tests only: SIGUSR2 makes the event loop busy (not stopped) for that many
        # seconds, as a huge request would; sockets keep filling meanwhile
        import time

        loop.add_signal_handler(signal.SIGUSR2, time.sleep, float(freeze_s))
    await stop.wait()
    log.info("shutting down")
    if purger is not None:
        purger.cancel()
    for stop_service in reversed(stoppers):
        try:
            stop_service()
        except Exception:
            log.exception("stopping an operator service failed")
    await server.stop()


async def _autopurge(config: ServerConfig) -> None:
    """autopurge.purgeInterval: keep the newest snapRetainCount snapshots and the
    log segments recovery from the oldest of them needs; delete the rest."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(config.autopurge_purge_interval * 3600)
        try:
            deleted = await loop.run_in_executor(
                None, purge, config.data_dir, config.effective_data_log_dir,
                config.autopurge_snap_retain_count,
            )
            log.info("autopurge removed %d old snapshot/log files", len(deleted))
        except Exception:
            log.exception("autopurge failed")


def raise_fd_limit() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit, as the JVM does for ZooKeeper: every
    client costs a descriptor, and 1024 is easily reached."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):  # pragma: no cover
        pass


def _test_clock_offset() -> None:
    """Tests only (zabby.testing.diskfaults): ZABBY_TEST_CLOCK_OFFSET_MS=N makes this
    process's wall and monotonic clocks read N ms ahead of the machine's, as after a
    restart on a host whose clock jumped. Installed before the event loop exists."""
    raw = os.environ.get("ZABBY_TEST_CLOCK_OFFSET_MS")
    if not raw:
        return
    import time

    ms = int(raw)
    t, tn, m, mn = time.time, time.time_ns, time.monotonic, time.monotonic_ns
    time.time = lambda: t() + ms / 1000
    time.time_ns = lambda: tn() + ms * 1_000_000
    time.monotonic = lambda: m() + ms / 1000
    time.monotonic_ns = lambda: mn() + ms * 1_000_000
    # the server's Clock holds the machine's functions themselves (bound at import,
    # before this ran): give it the offset ones too
    from .clock import Clock

    Clock.monotonic_ns = staticmethod(time.monotonic_ns)
    Clock.time_ns = staticmethod(time.time_ns)
    log.warning("ZABBY_TEST_CLOCK_OFFSET_MS: this server's clocks read %d ms ahead", ms)


def _keep_tree_frozen() -> None:
    """The server owns this process: the tree it recovers, and what is alive at each
    snapshot fork, stay frozen (gc.freeze()), so the cyclic GC's full collections
    walk only what is newer (at 1M znodes each walk of the whole heap took 315-400 ms,
    a stall for every client). Both or neither: a frozen recovered tree without
    freezing at the fork made every fork 45-97 ms instead of 12-20. Unless set
    already (benchmarks/snapshot_client_pause.py A/Bs them; docs/ARCHITECTURE.md)."""
    from ..storage import snapshot
    from .durability import GroupCommitter

    if snapshot.KEEP_FROZEN is None:
        snapshot.KEEP_FROZEN = True
    if GroupCommitter.keep_frozen is None:
        GroupCommitter.keep_frozen = True


# The cyclic GC's young-generation threshold in a server's own process. CPython
# collects generation 0 whenever the GC-tracked objects allocated and not yet freed
# pass the threshold (700 by default). A server with pipelined requests keeps a few
# thousand young objects alive at any moment (backlog tuples, txns, their callbacks,
# replies), none of them cyclic garbage, so at 700 it ran a young collection every
# ~100 requests: 6,122 young and 553 middle collections in a 9 s run of standalone
# setData at 32 x 16 (352 ms; py-spy put 3 % of its CPU in the GC; 2,057 objects collected).
# Above the live set they all but stop (20,000: 3 young and 1 middle collection in the
# same run, 20 ms).
GC_YOUNG_THRESHOLD = 20_000


def _tune_gc() -> None:
    """Raise generation 0's threshold to GC_YOUNG_THRESHOLD (a higher one set by
    whoever runs us is kept)."""
    young, middle, old = gc.get_threshold()
    if 0 < young < GC_YOUNG_THRESHOLD:  # 0: the cyclic GC is off; leave it so
        gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def run(
    config: ServerConfig, *, four_letter_handler: FourLetterHandler | None = None,
    services: Sequence[OpsService] = (), progress: Progress | None = None,
) -> None:
    _test_clock_offset()
    _keep_tree_frozen()
    _tune_gc()
    raise_fd_limit()
    install_uvloop()
    asyncio.run(serve(config, four_letter_handler=four_letter_handler, services=services,
                      progress=progress))
