"""`zabby` command line: `zabby serve [--config zoo.cfg]`, and for the data directory
`zabby log FILE`, `zabby snapshot FILE`, `zabby check [--repair]`, `zabby purge`; `zabby shell -server host:port`;
`zabby import` / `zabby export` to move data from and to Apache ZooKeeper."""

from __future__ import annotations

import argparse
import logging
import sys

from .. import __version__


class _Version(argparse.Action):
    """`zabby --version`: the version, then whether the request path runs compiled
    (mypyc) or pure Python and why (zabby/_compiled.py). Worked out only when asked:
    it imports the compiled modules."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="show the version and whether the request path is compiled, and exit"):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from .. import build_info

        print(f"zabby {__version__}\n{build_info()}")
        parser.exit()


def _serve(args: argparse.Namespace) -> int:
    from ..server.app import run
    from ..server.config import ConfigError, default_config, load_config, parse_config

    if args.ensemble:
        import tempfile

        from ..server.local_ensemble import run_local_ensemble

        try:
            extra = _settings(args.set)
        except ValueError as e:
            print(f"zabby: {e}", file=sys.stderr)
            return 2
        base = args.dir or tempfile.mkdtemp(prefix="zabby-ensemble-")
        try:
            return run_local_ensemble(args.ensemble, base, observers=args.observers,
                                      extra=extra, jvm_options=args.jvm_options)
        except ValueError as e:
            print(f"zabby: {e}", file=sys.stderr)
            return 2

    from ..server.config import system_properties_from

    props = system_properties_from([f"-D{o}" for o in args.jvm_options])
    try:
        extra = _settings(args.set)
        if args.config and extra:  # the file's keys, then these (the last one wins)
            with open(args.config, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            text += "\n" + "".join(f"{k}={v}\n" for k, v in extra.items())
            config = parse_config(text, source=args.config, system_properties=props)
        elif args.config:
            config = load_config(args.config, props)
        elif props or extra:
            print("zabby: -D and --set options need --config zoo.cfg (or --ensemble)",
                  file=sys.stderr)
            return 2
        else:
            config = default_config()
    except (ConfigError, ValueError) as e:
        print(f"zabby: invalid configuration: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"zabby: cannot read configuration: {e}", file=sys.stderr)
        return 2
    if args.port is not None:
        config.client_port = args.port
    from .. import build_info
    from ..ops import services_for
    from ..ops.fourletter import handle_four_letter_word
    from ..storage import CorruptDataError
    from .progress import progress_bars

    logging.getLogger("zabby.cli").info("zabby %s, %s", __version__, build_info())
    # loading a big snapshot takes seconds: a bar on a terminal (only if it lasts 0.5 s)
    try:
        with progress_bars(args.no_progress, delay=0.5) as bars:
            run(config, four_letter_handler=handle_four_letter_word,
                services=services_for(config), progress=bars)
    except ConfigError as e:
        print(f"zabby: invalid configuration: {e}", file=sys.stderr)
        return 2
    except CorruptDataError as e:
        print(f"zabby: refusing to start: {e}\n"
              f"  inspect with `zabby check`, repair with `zabby check --repair`",
              file=sys.stderr)
        return 1
    except OSError as e:
        print(f"zabby: cannot start: {e}", file=sys.stderr)
        return 1
    return 0


def _settings(pairs: list[str]) -> dict[str, str]:
    """``--set key=value`` options: zoo.cfg keys (a repeated key: the last one wins)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"--set wants key=value, not {pair!r}")
        out[key.strip()] = value.strip()
    return out


def _print_lines(render, path: str) -> int:
    """Print what `render(path)` yields; a damaged or unreadable file is one message."""
    from ..storage import CorruptDataError

    try:
        for line in render(path):
            print(line)
    except CorruptDataError as e:
        print(f"zabby: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"zabby: cannot read {path}: {e}", file=sys.stderr)
        return 1
    return 0


def _log(args: argparse.Namespace) -> int:
    from ..storage.inspect import log_lines

    return _print_lines(log_lines, args.file)


def _snapshot(args: argparse.Namespace) -> int:
    from ..storage.inspect import snapshot_lines

    return _print_lines(snapshot_lines, args.file)


def _check(args: argparse.Namespace) -> int:
    from ..storage import check
    from .common import storage_dirs
    from .progress import progress_bars

    dirs = storage_dirs(args)
    if dirs is None:
        return 2
    data_dir, log_dir, cfg = dirs
    if cfg is not None:
        kw = {"max_buffer": cfg.max_buffer, "extended_types": cfg.extended_types_enabled}
    else:
        kw = {"extended_types": True}
    try:
        with progress_bars(args.no_progress) as bars:
            if bars is not None:
                kw["progress"] = bars
                kw["say"] = bars.write  # repair's lines above the bar, not through it
            result = check(data_dir, log_dir, repair=args.repair, **kw)
    except OSError as e:
        print(f"zabby: {e}", file=sys.stderr)
        return 1
    if result.ok:
        print(result.message)
        return 0
    print(f"zabby: not recoverable: {result.message}", file=sys.stderr)
    return 1


def _purge(args: argparse.Namespace) -> int:
    from ..storage import purge
    from .common import storage_dirs

    dirs = storage_dirs(args)
    if dirs is None:
        return 2
    data_dir, log_dir, cfg = dirs
    n = args.n if args.n is not None else (cfg.autopurge_snap_retain_count if cfg else 3)
    if n < 3:
        print("zabby: -n must be at least 3", file=sys.stderr)
        return 2
    for path in purge(data_dir, log_dir, n):
        print(f"deleted {path}")
    return 0


def _add_bench(sub) -> None:
    from ..bench import cli as bench_cli

    p = sub.add_parser("bench", help="load generator for zabby or ZooKeeper",
                       description=bench_cli.DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    bench_cli.add_arguments(p)
    p.set_defaults(func=bench_cli.run)


def _add_shell(sub) -> None:
    from . import shell

    p = sub.add_parser("shell", help="interactive ZooKeeper shell (zkCli.sh's commands)",
                       description=shell.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    shell.add_arguments(p)
    p.set_defaults(func=shell.main)


def _add_verify(sub) -> None:
    from ..verify import cli as verify_cli

    p = sub.add_parser("verify", help="check that an ensemble keeps ZooKeeper's guarantees",
                       description=verify_cli.DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    verify_cli.add_arguments(p)
    p.set_defaults(func=verify_cli.main)


def main(argv: list[str] | None = None) -> int:
    from . import progress

    parser = argparse.ArgumentParser(prog="zabby", description=__doc__)
    parser.add_argument("--version", action=_Version)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run a server (embedded default without --config)")
    p.add_argument("--config", "-c", help="a ZooKeeper zoo.cfg")
    p.add_argument("--port", type=int, help="override clientPort")
    p.add_argument("--ensemble", type=int, metavar="N",
                   help="start a local ensemble of N voters (ports and data picked for you)")
    p.add_argument("--observers", type=int, default=0, help="with --ensemble: observers")
    p.add_argument("--dir", help="with --ensemble: base directory (default: a new temp dir)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a zoo.cfg key, after the --config file's (with --ensemble: in "
                   "every member's zoo.cfg); repeat for more")
    p.add_argument("-D", dest="jvm_options", action="append", default=[], metavar="KEY=VALUE",
                   help="a Java system property as ZooKeeper takes it "
                   "(-Dzookeeper.authProvider.1=..., -Djava.security.auth.login.config=...); "
                   "also read from $SERVER_JVMFLAGS and $JVMFLAGS as zkServer.sh does")
    progress.add_argument(p)
    p.set_defaults(func=_serve)
    p = sub.add_parser("log", help="print the entries of a txn log segment")
    p.add_argument("file")
    p.set_defaults(func=_log)
    p = sub.add_parser("snapshot", help="print the tree and sessions of a snapshot")
    p.add_argument("file")
    p.set_defaults(func=_snapshot)
    for name, fn, help_ in (
        ("check", _check, "can the data directory be recovered? (exit 0 yes, 1 no)"),
        ("purge", _purge, "delete old snapshots and the log segments no longer needed"),
    ):
        p = sub.add_parser(name, help=help_)
        g = p.add_mutually_exclusive_group()
        g.add_argument("--config", "-c", help="a ZooKeeper zoo.cfg (dataDir, dataLogDir)")
        g.add_argument("--data-dir", help="dataDir (holds version-2/snapshot.*)")
        p.add_argument("--log-dir", help="dataLogDir (default: the data dir)")
        if name == "check":
            p.add_argument("--repair", action="store_true",
                           help="truncate the log at the first damaged entry (says what it drops)")
            progress.add_argument(p)
        else:
            p.add_argument("-n", type=int, help="snapshots to keep (>= 3; default "
                           "autopurge.snapRetainCount or 3)")
        p.set_defaults(func=fn)
    _add_bench(sub)
    _add_shell(sub)
    _add_verify(sub)
    from . import migrate

    migrate.add_arguments(sub)  # `zabby import` / `zabby export`
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
