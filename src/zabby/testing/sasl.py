"""SASL DIGEST-MD5 over a `RawClient`, for tests that compare servers at the wire level.

    steps = sasl_login(client, "bob", "secret")
    # [("challenge", 0), ("rspauth", 0)] on success; a failure ends with its error code
    # and "closed" when the server hung up after it
"""

from __future__ import annotations

import struct

from zabby.server.digest_md5 import DigestMD5Client, SaslError
from zabby.wire import Op
from zabby.wire.records import SaslToken

from .rawclient import ConnectionClosed, RawClient

__all__ = ["JAAS_LOGIN_MODULE", "jaas_server_section", "sasl_login", "token_kind"]

JAAS_LOGIN_MODULE = "org.apache.zookeeper.server.auth.DigestLoginModule"


def jaas_server_section(users: dict[str, str], name: str = "Server") -> str:
    # quoted names: a user name may hold characters that are no part of a JAAS word
    opts = "\n".join(f'    "user_{u}"="{p}"' for u, p in users.items())
    return f"{name} {{\n  {JAAS_LOGIN_MODULE} required\n{opts};\n}};\n"


def token_kind(raw: bytes) -> str:
    """What a SASL reply body held: null / empty / challenge / rspauth / other."""
    if len(raw) < 4:
        return "nobody"
    n = struct.unpack_from(">i", raw)[0]
    if n < 0:
        return "null"
    tok = raw[4 : 4 + n]
    if not tok:
        return "empty"
    if tok.startswith(b"realm="):
        return "challenge"
    if tok.startswith(b"rspauth="):
        return "rspauth"
    return "other"


def _token(raw: bytes) -> bytes | None:
    n = struct.unpack_from(">i", raw)[0] if len(raw) >= 4 else -1
    return None if n < 0 else raw[4 : 4 + n]


def sasl_login(c: RawClient, user: str, password: str, *, max_steps: int = 3,
               extra: bool = False, timeout: float = 5.0,
               authzid: str | None = None) -> list[str]:
    """Run DIGEST-MD5 on `c`; one line per SASL reply (kind, error code, zxid), then
    "closed" if the server closed the connection after an error.  With `extra`, one
    more (empty) token is sent after a successful exchange."""
    cli = DigestMD5Client(user, password, authzid=authzid)
    token = cli.initial()
    lines: list[str] = []
    last = False
    for _ in range(max_steps):
        try:
            r = c.request(Op.SASL, SaslToken(token), timeout=timeout)
        except ConnectionClosed:
            lines.append("closed")
            return lines
        lines.append(f"sasl -> err={r.err} zxid={r.zxid} token={token_kind(r.raw)}")
        if r.err:
            lines.append("closed" if c.wait_closed(2.0) else "open")
            return lines
        got = _token(r.raw)
        if last or got is None:
            return lines  # no SASL server (or a failed client kept): nothing more
        try:
            token = cli.step(got)
        except SaslError as e:
            lines.append(f"client: {e}")
            return lines
        if cli.complete:
            lines.append("client: complete")
            if not extra:
                return lines
            token, last = b"", True
    return lines
