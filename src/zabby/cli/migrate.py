"""`zabby import` and `zabby export`: move a data directory from Apache ZooKeeper to
zabby, and back (for a rollback).

    zabby import --config zoo.cfg --from-zookeeper ZK_DATADIR [ZK_DATALOGDIR]
    zabby export --config zoo.cfg --to-zookeeper DIR

Import reads ZooKeeper 3.4-3.9's snapshots (plain, .gz, .snappy) and txn logs and
writes one zabby snapshot into the dataDir of zoo.cfg (which must be empty): the same
znodes, Stats, ACLs, sessions with their timeouts (so live clients reconnect with
their sessions), ephemerals and last zxid. Export writes the zabby data directory's
state as DIR/version-2/snapshot.<zxid>, which ZooKeeper 3.8 starts from (point its
dataDir at DIR). Stop the server before either: both read files the server writes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from . import progress as progress_mod
from .common import load_config_or_report
from .progress import progress_bars

# an ensemble member's dataDir holds its myid before anything is imported
_ALLOWED_IN_TARGET = {"myid", "version-2"}


def add_arguments(sub) -> None:
    p = sub.add_parser("import", help="import an Apache ZooKeeper data directory",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", "-c", required=True,
                   help="zabby's zoo.cfg: its dataDir (and dataLogDir) receive the data")
    p.add_argument("--from-zookeeper", required=True, nargs="+", metavar="DIR",
                   help="ZooKeeper's dataDir, then its dataLogDir if it has its own")
    p.add_argument("--ignore-digest", action="store_true",
                   help="import even if the tree's digest differs from ZooKeeper's record")
    progress_mod.add_argument(p)
    p.set_defaults(func=run_import)
    p = sub.add_parser("export", help="write zabby's data as an Apache ZooKeeper data directory",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", "-c", required=True, help="zabby's zoo.cfg (the data to export)")
    p.add_argument("--to-zookeeper", required=True, metavar="DIR",
                   help="ZooKeeper's dataDir to write (must hold no data yet)")
    p.add_argument("--compression", choices=("none", "gz", "snappy"), default="none",
                   help="snapshot compression (ZooKeeper 3.6+'s "
                        "zookeeper.snapshot.compression.method; default none)")
    progress_mod.add_argument(p)
    p.set_defaults(func=run_export)


def _not_empty(d: str) -> str | None:
    """What makes `d` unfit as an import target (None: empty or missing)."""
    if not os.path.exists(d):
        return None
    for name in sorted(os.listdir(d)):
        full = os.path.join(d, name)
        if name == "version-2" and os.path.isdir(full):
            inner = os.listdir(full)
            if inner:
                return f"{full} holds {len(inner)} file(s), e.g. {sorted(inner)[0]}"
        elif name not in _ALLOWED_IN_TARGET:
            return f"{d} holds {name}"
    return None


def run_import(args: argparse.Namespace) -> int:
    from ..storage import CorruptDataError, write_snapshot
    from ..storage.zookeeper import load_zookeeper

    src = args.from_zookeeper
    if len(src) > 2:
        print("zabby: --from-zookeeper takes ZK_DATADIR [ZK_DATALOGDIR]", file=sys.stderr)
        return 2
    cfg = load_config_or_report(args.config)
    if cfg is None:
        return 2
    data_dir, log_dir = cfg.data_dir, cfg.effective_data_log_dir
    for d in dict.fromkeys((data_dir, log_dir)):
        why = _not_empty(d)
        if why is not None:
            print(f"zabby: refusing to import: the target must be empty, but {why}",
                  file=sys.stderr)
            return 1
    t0 = time.perf_counter()
    try:
        with progress_bars(args.no_progress, delay=0.5) as bars:
            tree, rep = load_zookeeper(src[0], src[1] if len(src) > 1 else None,
                                       max_buffer=cfg.max_buffer,
                                       extended_types=cfg.extended_types_enabled,
                                       progress=bars, check_digest=not args.ignore_digest)
        t_read = time.perf_counter() - t0
        os.makedirs(data_dir, exist_ok=True)
        os.makedirs(log_dir, exist_ok=True)
        path = write_snapshot(tree, data_dir, compress=bool(cfg.snapshot_compression))
        if cfg.is_distributed:
            epoch = _write_epochs(data_dir, src[0], tree.last_zxid)
    except CorruptDataError as e:
        print(f"zabby: refusing to import: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"zabby: cannot import: {e}", file=sys.stderr)
        return 1
    took = time.perf_counter() - t0
    print(f"imported from {rep.snapshot or 'no snapshot'} (zxid {rep.snapshot_zxid:#x}) "
          f"+ {rep.replayed} txns from {len(rep.logs)} log file(s)")
    for s in rep.skipped_snapshots:
        print(f"  skipped a damaged snapshot: {s}")
    for p, off, why in rep.torn:
        print(f"  torn tail tolerated: {p} at offset {off}: {why}")
    if rep.dead_sessions:
        print(f"  dropped the ephemerals of {rep.dead_sessions} session(s) ZooKeeper no "
              f"longer tracked (as it does when it loads)")
    for w in rep.warnings:
        print(f"  warning: {w}")
    print(f"  digest: {rep.digest}")
    print(f"znodes: {rep.znodes}  sessions: {rep.sessions}  ephemerals: {rep.ephemerals}  "
          f"last zxid: {rep.last_zxid:#x}")
    print(f"wrote {path} in {took:.2f} s (reading {t_read:.2f} s)")
    if cfg.is_distributed:
        print(f"  ensemble member {cfg.server_id}: epoch {epoch} (new epochs start above it)")
    return 0


def _zk_epoch(zk_data_dir: str, name: str) -> int:
    """ZooKeeper's currentEpoch / acceptedEpoch file (in dataDir, or version-2)."""
    for d in (zk_data_dir, os.path.join(zk_data_dir, "version-2")):
        try:
            with open(os.path.join(d, name)) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            continue
    return 0


def _write_epochs(data_dir: str, zk_data_dir: str, last_zxid: int) -> int:
    """An ensemble member's epochs, so the first election after the import picks an
    epoch above every imported zxid's (ZooKeeper's currentEpoch / acceptedEpoch)."""
    from ..server.ensemble import EpochFile

    epoch = max(last_zxid >> 32, _zk_epoch(zk_data_dir, "currentEpoch"))
    accepted = max(epoch, _zk_epoch(zk_data_dir, "acceptedEpoch"))
    EpochFile(data_dir).save(accepted, epoch, -1)
    return epoch


def run_export(args: argparse.Namespace) -> int:
    from ..storage import CorruptDataError, recover
    from ..storage.zookeeper import write_zk_snapshot

    cfg = load_config_or_report(args.config)
    if cfg is None:
        return 2
    target = args.to_zookeeper
    why = _not_empty(target)
    if why is not None:
        print(f"zabby: refusing to export: the target must be empty, but {why}",
              file=sys.stderr)
        return 1
    if not os.path.isdir(os.path.join(cfg.data_dir, "version-2")):
        print(f"zabby: refusing to export: {cfg.data_dir} holds no zabby data", file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    try:
        with progress_bars(args.no_progress, delay=0.5) as bars:
            tree, rep = recover(cfg.data_dir, cfg.effective_data_log_dir,
                                max_buffer=cfg.max_buffer,
                                extended_types=cfg.extended_types_enabled, repair_tail=False,
                                progress=bars)
            path = write_zk_snapshot(tree, target, progress=bars,
                                     compression="" if args.compression == "none"
                                     else args.compression)
    except CorruptDataError as e:
        print(f"zabby: refusing to export: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"zabby: cannot export: {e}", file=sys.stderr)
        return 1
    took = time.perf_counter() - t0
    print(f"exported {rep.snapshot or 'an empty data directory'} + {rep.replayed} logged txns")
    print(f"znodes: {tree.node_count}  sessions: {len(tree.sessions)}  "
          f"ephemerals: {tree.ephemerals_count()}  last zxid: {tree.last_zxid:#x}")
    print(f"wrote {path} in {took:.2f} s: start ZooKeeper with dataDir={target}")
    return 0
