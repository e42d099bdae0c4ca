"""`zabby serve --ensemble N`: a whole local ensemble for development.

Each member gets a directory under the base directory (zoo.cfg, myid, data),
free loopback ports for clients, quorum and election, and its own process;
their log lines are relayed prefixed with ``[server.N]``. Extra zoo.cfg keys
(``zabby serve --ensemble 3 --set key=value ...``) go into every member's zoo.cfg,
and ``-D`` options onto every member's command line.

A member that dies (kill -9 it to try failover) is reported with its id, pid and
exit status and the others keep running; the ensemble ends when every member has
died, or on SIGINT/SIGTERM, which stops every member (SIGTERM, then SIGKILL after a
grace period).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# keys each member must have its own value of: the ensemble writes them
RESERVED_KEYS = frozenset({
    "dataDir", "dataLogDir", "clientPort", "clientPortAddress", "secureClientPort",
    "secureClientPortAddress", "peerType", "dynamicConfigFile", "myid",
})


def check_extra(extra: dict[str, str]) -> None:
    """ValueError for an extra key the ensemble writes itself (one value per member)."""
    for key in extra:
        if key in RESERVED_KEYS or key.startswith(("server.", "group.", "weight.")):
            raise ValueError(f"{key} is set by the local ensemble for each member; "
                             "it cannot be passed through")


def write_ensemble(base_dir: str, n: int, *, tick_time: int = 2000, observers: int = 0,
                   host: str = "127.0.0.1", extra: dict[str, str] | None = None) -> list[dict]:
    """Write zoo.cfg + myid for n voters (+ observers); return each member's facts."""
    total = n + observers
    ports = free_ports(3 * total, host)
    members = []
    for i in range(1, total + 1):
        cp, qp, ep = ports[3 * (i - 1) : 3 * i]
        members.append({"id": i, "client_port": cp, "quorum_port": qp, "election_port": ep,
                        "observer": i > n, "dir": os.path.join(base_dir, f"server{i}")})
    lines = [f"tickTime={tick_time}", "initLimit=10", "syncLimit=5",
             "4lw.commands.whitelist=*", f"clientPortAddress={host}"]
    for k, v in (extra or {}).items():
        lines.append(f"{k}={v}")
    server_lines = [
        f"server.{m['id']}={host}:{m['quorum_port']}:{m['election_port']}"
        + (":observer" if m["observer"] else ":participant")
        + f";{host}:{m['client_port']}"
        for m in members
    ]
    for m in members:
        data = os.path.join(m["dir"], "data")
        os.makedirs(data, exist_ok=True)
        with open(os.path.join(data, "myid"), "w") as f:
            f.write(f"{m['id']}\n")
        cfg = [*lines, f"dataDir={data}", f"clientPort={m['client_port']}"]
        if m["observer"]:
            cfg.append("peerType=observer")
        cfg += server_lines
        m["config"] = os.path.join(m["dir"], "zoo.cfg")
        with open(m["config"], "w") as f:
            f.write("\n".join(cfg) + "\n")
    return members


def _relay(proc: subprocess.Popen, label: str) -> None:
    for line in proc.stdout:  # type: ignore[union-attr]
        sys.stdout.write(f"[{label}] {line}")
        sys.stdout.flush()


def exit_status(returncode: int) -> str:
    """A process's end in words: ``exited with status 1``, ``was killed by SIGKILL``."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with status {returncode}"


def run_local_ensemble(n: int, base_dir: str, *, observers: int = 0, tick_time: int = 2000,
                       extra: dict[str, str] | None = None,
                       jvm_options: list[str] | None = None) -> int:
    """Run the members until SIGINT/SIGTERM (status 0) or until all have died (1)."""
    extra = dict(extra or {})
    check_extra(extra)
    members = write_ensemble(base_dir, n, observers=observers, tick_time=tick_time,
                             extra=extra)
    flags = [f"-D{o}" for o in jvm_options or ()]
    from .config import ConfigError, load_config, system_properties_from

    try:  # a bad --set value: one message now, not one from each member as it dies
        load_config(members[0]["config"], system_properties_from(flags, env={}))
    except ConfigError as e:
        print(f"zabby: invalid configuration: {e}", file=sys.stderr)
        return 2
    print(f"zabby: starting a local ensemble of {n} voters"
          + (f" and {observers} observers" if observers else "") + f" in {base_dir}",
          flush=True)
    alive: dict[int, tuple[dict, subprocess.Popen]] = {}
    for m in members:
        p = subprocess.Popen(
            [sys.executable, "-m", "zabby", "serve", "--config", m["config"], *flags],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            start_new_session=True,
        )
        m["pid"] = p.pid
        alive[m["id"]] = (m, p)
        print(f"zabby: server.{m['id']} pid {p.pid} client port {m['client_port']}"
              + (" (observer)" if m["observer"] else ""), flush=True)
        threading.Thread(target=_relay, args=(p, f"server.{m['id']}"), daemon=True).start()
    conn = ",".join(f"127.0.0.1:{m['client_port']}" for m in members)
    print(f"zabby: connect with hosts={conn}", flush=True)
    stop = threading.Event()

    def _stop(*_a) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    status = 0
    while not stop.is_set():
        for mid, (m, p) in list(alive.items()):
            rc = p.poll()
            if rc is None:
                continue
            del alive[mid]
            print(f"zabby: server.{mid} (pid {p.pid}) {exit_status(rc)}; "
                  f"{len(alive)} of {len(members)} members still running", file=sys.stderr,
                  flush=True)
            if alive:
                print(f"zabby: to start it again by hand: {sys.executable} -m zabby serve "
                      f"--config {m['config']}", file=sys.stderr, flush=True)
        if not alive:
            print("zabby: every member has exited; the local ensemble is over",
                  file=sys.stderr, flush=True)
            status = 1
            break
        stop.wait(0.2)
    procs = [p for _m, p in alive.values()]
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + 5
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return status
