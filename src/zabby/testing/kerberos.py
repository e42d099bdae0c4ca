"""A throw-away Kerberos realm on loopback (MIT krb5kdc from Debian's ``krb5-kdc`` and
``krb5-admin-server``), for tests of GSSAPI between clients, servers and ensemble members.

    with MiniKdc(tmp_path) as kdc:
        server_keytab = kdc.add_principal("zookeeper/localhost")
        client_keytab = kdc.add_principal("client")
        kdc.krb5_conf     # give it as -Djava.security.krb5.conf=... to JVMs and zabby

The KDC listens on one free TCP/UDP port of 127.0.0.1, has its own database, config and
log under the directory, and runs in its own process group; ``stop`` kills it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from .servers import free_port

__all__ = ["MiniKdc", "find_kdc"]

_TOOLS = ("krb5kdc", "kdb5_util", "kadmin.local")
_SBIN = ("/usr/sbin", "/sbin")


def _tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in _SBIN:
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return None


def find_kdc() -> str | None:
    """Why a MiniKdc cannot run here, or None when it can."""
    missing = [t for t in _TOOLS if _tool(t) is None]
    if missing:
        return (f"{', '.join(missing)} missing (apt-get install krb5-kdc krb5-admin-server)")
    return None


class MiniKdc:
    def __init__(self, directory: str | os.PathLike[str], realm: str = "ZABBY.TEST") -> None:
        why = find_kdc()
        if why is not None:
            raise RuntimeError(f"cannot start a KDC: {why}")
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.realm = realm
        self.port = free_port()
        self.krb5_conf = str(self.dir / "krb5.conf")
        self.kdc_conf = str(self.dir / "kdc.conf")
        self.proc: subprocess.Popen[bytes] | None = None
        self._write_config()

    @property
    def env(self) -> dict[str, str]:
        """Environment for the MIT tools and libraries (kinit, klist, python gssapi)."""
        return dict(os.environ, KRB5_CONFIG=self.krb5_conf, KRB5_KDC_PROFILE=self.kdc_conf)

    def _write_config(self) -> None:
        d = self.dir
        Path(self.krb5_conf).write_text(
            "[libdefaults]\n"
            f"    default_realm = {self.realm}\n"
            "    dns_lookup_realm = false\n    dns_lookup_kdc = false\n"
            "    rdns = false\n    udp_preference_limit = 1\n    ticket_lifetime = 1h\n"
            "[realms]\n"
            f"    {self.realm} = {{\n        kdc = 127.0.0.1:{self.port}\n    }}\n"
            "[domain_realm]\n"
            f"    localhost = {self.realm}\n"
        )
        Path(self.kdc_conf).write_text(
            "[kdcdefaults]\n"
            f"    kdc_ports = {self.port}\n    kdc_tcp_ports = {self.port}\n"
            "[realms]\n"
            f"    {self.realm} = {{\n"
            f"        database_name = {d}/principal\n"
            f"        key_stash_file = {d}/stash\n"
            f"        acl_file = {d}/kadm5.acl\n"
            "        supported_enctypes = aes256-cts-hmac-sha1-96:normal "
            "aes128-cts-hmac-sha1-96:normal\n"
            "        max_life = 1h\n"
            "    }\n"
            "[logging]\n"
            f"    kdc = FILE:{d}/kdc.log\n"
        )

    def _run(self, *args: str) -> None:
        p = subprocess.run(list(args), env=self.env, capture_output=True, text=True,
                           timeout=60, stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {p.stdout}{p.stderr}")

    def _kadmin(self, query: str) -> None:
        self._run(_tool("kadmin.local") or "kadmin.local", "-r", self.realm, "-q", query)

    def start(self) -> MiniKdc:
        self._run(_tool("kdb5_util") or "kdb5_util", "create", "-s", "-r", self.realm,
                  "-P", "zabby-test-master-key")
        log = open(self.dir / "krb5kdc.out", "ab")
        try:
            self.proc = subprocess.Popen(
                [_tool("krb5kdc") or "krb5kdc", "-n", "-r", self.realm], env=self.env,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("krb5kdc did not start: " + (
                        self.dir / "krb5kdc.out").read_text(errors="replace")) from None
                time.sleep(0.05)

    def add_principal(self, name: str, keytab: str | os.PathLike[str] | None = None) -> str:
        """Create ``name@REALM`` with a random key; export it to a keytab (path returned)."""
        principal = name if "@" in name else f"{name}@{self.realm}"
        path = str(keytab or self.dir / (name.replace("/", "_") + ".keytab"))
        self._kadmin(f"addprinc -randkey {principal}")
        self._kadmin(f"ktadd -k {path} {principal}")
        return path

    def rekey(self, name: str) -> None:
        """Give the principal a new key (old keytabs stop working for new tickets)."""
        principal = name if "@" in name else f"{name}@{self.realm}"
        self._kadmin(f"cpw -randkey {principal}")

    def stop(self) -> None:
        p, self.proc = self.proc, None
        if p is None:
            return
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(10)

    def __enter__(self) -> MiniKdc:
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def gssapi_login(c, client_keytab: str, client: str, service: str, *, mutual: bool = True,
                 extra: bool = False, garbage_first: bool = False, timeout: float = 10.0,
                 ccache: str | None = None) -> list[str]:
    """SASL GSSAPI on a `RawClient` with the python ``gssapi`` package as the initiator
    (KRB5_CONFIG must name the realm's krb5.conf).  One line per SASL reply: error code,
    zxid and "token"/"null"/"empty", then "closed" after an error; "client: complete"
    once the security layer is agreed.  `extra` sends one more token after that."""
    import struct as _struct

    import gssapi

    from zabby.wire import Op
    from zabby.wire.records import SaslToken

    from .rawclient import ConnectionClosed

    def kind(raw: bytes) -> tuple[str, bytes | None]:
        n = _struct.unpack_from(">i", raw)[0] if len(raw) >= 4 else -1
        if n < 0:
            return "null", None
        return ("token" if n else "empty"), raw[4 : 4 + n]

    # (a zero flag set would be taken as "the defaults", which ask for mutual authentication)
    flags = (gssapi.RequirementFlag.mutual_authentication if mutual
             else gssapi.RequirementFlag.integrity)
    creds = gssapi.Credentials(
        name=gssapi.Name(client, gssapi.NameType.kerberos_principal), usage="initiate",
        store={"client_keytab": client_keytab,
               "ccache": ccache or f"MEMORY:zabby-{os.getpid()}-{time.monotonic_ns()}"})
    ctx = gssapi.SecurityContext(name=gssapi.Name(service, gssapi.NameType.kerberos_principal),
                                 creds=creds, usage="initiate", flags=flags)
    token = b"\x60\x00garbage" if garbage_first else ctx.step()
    lines: list[str] = []
    done = answered = False
    for _ in range(6):
        try:
            r = c.request(Op.SASL, SaslToken(token or b""), timeout=timeout)
        except ConnectionClosed:
            lines.append("closed")
            return lines
        k, got = kind(r.raw)
        lines.append(f"sasl -> err={r.err} zxid={r.zxid} token={k}")
        if r.err:
            lines.append("closed" if c.wait_closed(2.0) else "open")
            return lines
        if done or garbage_first:
            return lines
        if not ctx.complete:
            if not got:
                lines.append("client: no context token")
                return lines
            try:
                token = ctx.step(got)
            except Exception as e:  # noqa: BLE001 - recorded
                lines.append(f"client: bad context token ({type(e).__name__})")
                return lines
            continue
        if got is None:
            if not answered:
                lines.append("client: no security layer offer")
                return lines
            lines.append("client: complete")
            if not extra:
                return lines
            token, done = b"", True
            continue
        if not got:
            token = b""
            continue
        try:
            offer = ctx.unwrap(got).message
        except Exception as e:  # noqa: BLE001 - recorded
            lines.append(f"client: cannot unwrap ({type(e).__name__})")
            return lines
        lines.append(f"client: offer {offer.hex()}")
        token = ctx.wrap(bytes([1]) + offer[1:4] + client.encode(), False).message
        answered = True
    return lines
