"""What the data-directory commands (`zabby check`, `purge`, `import`, `export`) share:
reading zoo.cfg with one readable refusal, and finding the data directories."""

from __future__ import annotations

import argparse
import sys


def load_config_or_report(path: str):
    """The parsed zoo.cfg at `path`, or None after printing why it cannot be used."""
    from ..server.config import ConfigError, load_config

    try:
        return load_config(path)
    except (ConfigError, OSError) as e:
        print(f"zabby: invalid configuration: {e}", file=sys.stderr)
        return None


def storage_dirs(args: argparse.Namespace):
    """(data_dir, log_dir, config or None) from --config or --data-dir/--log-dir;
    None after printing why there are none."""
    if args.config:
        cfg = load_config_or_report(args.config)
        if cfg is None:
            return None
        return cfg.data_dir, cfg.effective_data_log_dir, cfg
    if not args.data_dir:
        print("zabby: give --config zoo.cfg or --data-dir DIR", file=sys.stderr)
        return None
    return args.data_dir, args.log_dir, None
