"""The dynamic configuration: membership + version, as ZooKeeper 3.5+ writes it.

One text format serves three places, as in ZooKeeper:

* ``/zookeeper/config``'s data and the reconfig reply:
  ``server.N=host:quorumPort:electionPort:role[;clientHost:clientPort]`` lines, then
  ``version=<hex>`` (no newline after it);
* the dynamic config file ``zoo.cfg.dynamic.<hex version>``: the server lines only,
  sorted as strings, no version (it is in the file name), no final newline;
* the reconfig request's ``joiningServers`` / ``newMembers`` (comma or newline
  separated ``server.N=...`` entries).

A server line's client part is left out when that address came from the static
``clientPort`` rather than the line itself (ZooKeeper's isClientAddrFromStatic).
Server lines are listed by id, which is the order ZooKeeper's hash map gives for the
ids of ordinary ensembles.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from .config import OBSERVER, PARTICIPANT, ConfigError, ServerSpec, _Parser

__all__ = [
    "Membership", "ReconfigError", "dynamic_file_lines", "format_spec", "parse_membership",
    "parse_server_entries", "version_from_filename", "write_dynamic_config",
]

_VERSION_SUFFIX = re.compile(r"\.dynamic\.([0-9a-fA-F]+)$")


class ReconfigError(ValueError):
    """Bad reconfig input (the client gets BADARGUMENTS)."""


class ParseCrash(ReconfigError):
    """Input on which ZooKeeper's parsing throws outside its checks (a server id that
    is not a number; new members without a participant): MARSHALLINGERROR."""


def _host(h: str) -> str:
    return f"[{h}]" if ":" in h else h


def format_spec(spec: ServerSpec, with_client: bool = True) -> str:
    # several addresses: sorted by host, joined with "|" (QuorumServer.toString)
    addrs = sorted([(spec.host, spec.quorum_port, spec.election_port), *spec.more],
                   key=lambda a: a[0])
    out = "|".join(f"{_host(h)}:{q}:{e}" for h, q, e in addrs)
    out += f":{OBSERVER if spec.is_observer else PARTICIPANT}"
    if with_client and spec.client_port is not None:
        out += f";{_host(spec.client_host or '0.0.0.0')}:{spec.client_port}"
    return out


@dataclass(frozen=True)
class Membership:
    """A configuration: its servers and version (0: never established)."""

    servers: dict[int, ServerSpec]
    version: int = 0
    # ids whose client address came from the static clientPort (left out of the text)
    static_client: frozenset[int] = field(default_factory=frozenset)
    # hierarchical quorums (group id -> server ids; server id -> weight); empty: majority
    groups: dict[int, tuple[int, ...]] = field(default_factory=dict)
    weights: dict[int, int] = field(default_factory=dict)

    @property
    def voters(self) -> frozenset[int]:
        return frozenset(s for s, spec in self.servers.items() if not spec.is_observer)

    @property
    def observers(self) -> frozenset[int]:
        return frozenset(s for s, spec in self.servers.items() if spec.is_observer)

    def lines(self) -> list[str]:
        out = [f"server.{sid}={format_spec(self.servers[sid], sid not in self.static_client)}"
               for sid in sorted(self.servers)]
        if self.groups:
            out += [f"group.{g}={':'.join(map(str, sorted(ids)))}"
                    for g, ids in sorted(self.groups.items())]
            out += [f"weight.{sid}={w}" for sid, w in sorted(self.weights.items())]
        return out

    def text(self) -> bytes:
        """What /zookeeper/config holds (QuorumMaj.toString)."""
        return ("\n".join([*self.lines(), f"version={self.version:x}"])).encode()

    def with_version(self, version: int) -> Membership:
        return Membership(dict(self.servers), version, self.static_client, dict(self.groups),
                          dict(self.weights))


def dynamic_file_lines(m: Membership) -> str:
    """The dynamic config file's text: server lines sorted as strings, no version."""
    return "\n".join(sorted(m.lines()))


def version_from_filename(path: str | None) -> int:
    if not path:
        return 0
    found = _VERSION_SUFFIX.search(os.path.basename(path))
    return int(found.group(1), 16) if found else 0


def _spec(key: str, value: str) -> ServerSpec:
    p = _Parser("<reconfig>")
    p.any_server_id = True
    p.cfg.multi_address_enabled = True
    try:
        return p.server_spec(key.strip(), value.strip())
    except ConfigError as e:
        raise ReconfigError(str(e)) from None


def parse_server_entries(text: str, *, need_client: bool,
                         quorum: dict[str, str] | None = None) -> dict[int, ServerSpec]:
    """``server.N=spec`` entries separated by commas or newlines (a reconfig's joining
    or new members). ``need_client``: each must name a client port (incremental).
    ``quorum``: where group.N / weight.N entries go (else they are refused)."""
    out: dict[int, ServerSpec] = {}
    for item in re.split(r"[,\n]", text):
        item = item.strip()
        if not item:
            continue
        parts = item.split("=")
        if len(parts) != 2:
            raise ReconfigError("Wrong format of server string")
        key, value = parts[0].strip(), parts[1].strip()
        if quorum is not None and key.startswith(("group.", "weight.")):
            quorum[key] = value
            continue
        if not key.startswith("server."):
            raise ReconfigError(f"{key} is not a server.N entry")
        if not re.fullmatch(r"[+-]?[0-9]+", key[key.rfind(".") + 1:]):
            raise ParseCrash(f"{key}: the server id is not a number")
        spec = _spec(key, value)
        if need_client and spec.client_port is None:
            raise ReconfigError(
                "Wrong format of server string - each server should have at least 3 ports "
                "specified")
        out[spec.id] = spec
    return out


def parse_membership(data: bytes) -> Membership | None:
    """/zookeeper/config's data back into a Membership (None when empty or invalid)."""
    if not data:
        return None
    servers: dict[int, ServerSpec] = {}
    quorum: dict[str, str] = {}
    version = 0
    try:
        for line in data.decode().split("\n"):
            line = line.strip()
            if not line:
                continue
            key, _, value = line.partition("=")
            if key == "version":
                version = int(value, 16)
            elif key.startswith("server."):
                spec = _spec(key, value)
                servers[spec.id] = spec
            elif key.startswith(("group.", "weight.")):
                quorum[key] = value
        groups, weights = quorum_system(servers, quorum)
    except (ReconfigError, ValueError, UnicodeDecodeError):
        return None
    if not servers:
        return None
    static = frozenset(s for s, spec in servers.items() if spec.client_port is None)
    return Membership(servers, version, static, groups, weights)


def quorum_system(servers: dict[int, ServerSpec], lines: dict[str, str]
                  ) -> tuple[dict[int, tuple[int, ...]], dict[int, int]]:
    """group.N / weight.N lines checked as zoo.cfg's are (ReconfigError if bad)."""
    if not lines:
        return {}, {}
    p = _Parser("<reconfig>")
    p.cfg.servers = dict(servers)
    try:
        p.quorum_system(lines)
    except ConfigError as e:
        raise ReconfigError(str(e)) from None
    return p.cfg.groups, p.cfg.weights


def write_dynamic_config(static_path: str, m: Membership) -> str:
    """Write ``<zoo.cfg>.dynamic.<version>`` and point ``dynamicConfigFile`` in the
    static file at it (its server lines and client port address moved out), as
    ZooKeeper does on every configuration change. Returns the new file's path."""
    path = f"{static_path}.dynamic.{m.version:x}"
    _atomic_write(path, dynamic_file_lines(m))
    try:
        with open(static_path, encoding="latin-1") as f:
            old = f.read().split("\n")
    except OSError:
        return path
    kept = []
    for line in old:
        key = line.split("=", 1)[0].strip()
        if key.startswith("server.") or key == "dynamicConfigFile":
            continue
        if key in ("clientPort", "clientPortAddress") and not m.static_client:
            continue  # the server line carries the client address now
        kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    kept.append(f"dynamicConfigFile={path}")
    _atomic_write(static_path, "\n".join(kept) + "\n")
    return path


def _atomic_write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="latin-1") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
