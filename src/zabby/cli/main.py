"""`zabby` command line: `zabby serve [--config zoo.cfg]`."""

from __future__ import annotations

import argparse
import logging
import sys

from .. import __version__


def _serve(args: argparse.Namespace) -> int:
    from ..server.app import run
    from ..server.config import ConfigError, default_config, load_config

    try:
        config = load_config(args.config) if args.config else default_config()
    except ConfigError as e:
        print(f"zabby: invalid configuration: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"zabby: cannot read configuration: {e}", file=sys.stderr)
        return 2
    if args.port is not None:
        config.client_port = args.port
    from ..storage import CorruptDataError

    try:
        run(config)
    except CorruptDataError as e:
        print(f"zabby: refusing to start: {e}\n"
              f"  inspect with `zabby check`, repair with `zabby check --repair`",
              file=sys.stderr)
        return 1
    except OSError as e:
        print(f"zabby: cannot start: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zabby", description=__doc__)
    parser.add_argument("--version", action="version", version=f"zabby {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run a server (embedded default without --config)")
    p.add_argument("--config", "-c", help="a ZooKeeper zoo.cfg")
    p.add_argument("--port", type=int, help="override clientPort")
    p.set_defaults(func=_serve)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
