"""SASL DIGEST-MD5 (RFC 2831), authentication only (qop "auth"), sans-IO.

ZooKeeper's DIGEST-MD5 uses service ``zookeeper`` and server name / realm
``zk-sasl-md5`` (clients connect with digest-uri ``zookeeper/zk-sasl-md5``).  Both sides
are here: `DigestMD5Server` answers client SASL (and a quorum learner's), `DigestMD5Client`
is for zabby acting as a client (quorum SASL, tests).  Neither does I/O: feed the peer's
token to ``step`` and send back what it returns.

The exchange (no initial response)::

    client: ""                    server: realm="zk-sasl-md5",nonce="..",charset=utf-8,...
    client: username="bob",...,response=<32 hex>
                                  server: rspauth=<32 hex>         (server complete)
    client verifies rspauth                                        (client complete)

A failure raises `SaslError`; its message is safe to log (no password, no digest).
Responses are compared in constant time, and an unknown user costs the same hashing as
a wrong password.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable

__all__ = [
    "REALM",
    "SERVICE",
    "DigestMD5Client",
    "DigestMD5Server",
    "SaslError",
    "parse_directives",
]

SERVICE = "zookeeper"
REALM = "zk-sasl-md5"  # ZooKeeper's fixed DIGEST-MD5 server name, offered as the realm
MAX_CHALLENGE = 2048  # RFC 2831 2.1.1
MAX_RESPONSE = 4096  # RFC 2831 2.1.2


class SaslError(Exception):
    """Authentication failed (bad token, wrong credentials, protocol violation)."""


# ------------------------------------------------------------------ encoding
def _h(data: bytes) -> bytes:
    return hashlib.md5(data, usedforsecurity=False).digest()


def _hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _enc(s: str, utf8: bool) -> bytes:
    """RFC 2831: with charset=utf-8, strings that fit ISO 8859-1 are hashed as such."""
    if utf8:
        try:
            return s.encode("latin-1")
        except UnicodeEncodeError:
            return s.encode("utf-8")
    return s.encode("latin-1", "replace")


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_directives(data: bytes) -> dict[str, str]:
    """``key=value, key="quoted"`` as in RFC 2831 2.1; SaslError when malformed or when a
    directive repeats.  Keys are lower-cased; values decoded as UTF-8."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SaslError("DIGEST-MD5: token is not UTF-8") from e
    out: dict[str, str] = {}
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t\r\n,":
            i += 1
        if i >= n:
            return out
        j = i
        while j < n and text[j] not in "= \t\r\n,":
            j += 1
        key = text[i:j].lower()
        while j < n and text[j] in " \t\r\n":
            j += 1
        if not key or j >= n or text[j] != "=":
            raise SaslError("DIGEST-MD5: malformed directive")
        j += 1
        while j < n and text[j] in " \t\r\n":
            j += 1
        if j < n and text[j] == '"':
            j += 1
            buf = []
            while True:
                if j >= n:
                    raise SaslError("DIGEST-MD5: unterminated quoted string")
                c = text[j]
                if c == "\\" and j + 1 < n:
                    buf.append(text[j + 1])
                    j += 2
                    continue
                if c == '"':
                    j += 1
                    break
                buf.append(c)
                j += 1
            value = "".join(buf)
        else:
            k = j
            while j < n and text[j] not in ", \t\r\n":
                j += 1
            value = text[k:j]
        while j < n and text[j] in " \t\r\n":
            j += 1
        if j < n and text[j] != ",":
            raise SaslError("DIGEST-MD5: malformed directive list")
        if key in out:
            raise SaslError(f"DIGEST-MD5: duplicate directive {key!r}")
        out[key] = value
        i = j


def _response_value(username: str, realm: str, password: str, nonce: str, cnonce: str,
                    nc: str, qop: str, digest_uri: str, authzid: str | None, utf8: bool,
                    a2_prefix: str) -> str:
    """RFC 2831 2.1.2.1 ``response-value`` (a2_prefix "AUTHENTICATE" for the client's
    response, "" for the server's rspauth)."""
    inner = _h(_enc(username, utf8) + b":" + _enc(realm, utf8) + b":" + _enc(password, utf8))
    a1 = inner + b":" + nonce.encode() + b":" + cnonce.encode()
    if authzid:
        a1 += b":" + authzid.encode("utf-8")
    a2 = f"{a2_prefix}:{digest_uri}".encode()
    kd = f"{_hex(a1)}:{nonce}:{nc}:{cnonce}:{qop}:{_hex(a2)}"
    return _hex(kd.encode())


def _nonce() -> str:
    return base64.b64encode(secrets.token_bytes(30)).decode()


# ------------------------------------------------------------------ server
class DigestMD5Server:
    """The server side of one DIGEST-MD5 exchange.

    ``passwords(username)`` returns the user's password, or None for an unknown user.
    ``authorize(authcid, authzid)`` maps the authenticated user to the authorization id
    (default: the authentication id, as ZooKeeper's callback handler does whatever
    authzid the client asked for); it may raise SaslError to refuse.
    """

    def __init__(
        self,
        passwords: Callable[[str], str | None],
        *,
        service: str = SERVICE,
        server_name: str = REALM,
        realm: str = REALM,
        authorize: Callable[[str, str | None], str] | None = None,
        nonce: Callable[[], str] = _nonce,
    ) -> None:
        self._passwords = passwords
        self.service = service
        self.server_name = server_name
        self.realm = realm
        self._authorize = authorize
        self._nonce_factory = nonce
        self._nonce: str | None = None
        self._step = 0
        self.complete = False
        self.authentication_id: str | None = None
        self.authorization_id: str | None = None

    @property
    def failed(self) -> bool:
        """An earlier step failed: every later one fails too."""
        return self._step == -1

    def step(self, token: bytes) -> bytes:
        """Feed the client's token; returns the server's token. SaslError on failure
        (the exchange is then over)."""
        step, self._step = self._step, -1  # any exception leaves the exchange failed
        if step == 0:
            # RFC 2831 has no initial response; like Java's server, ignore one if sent
            self._nonce = self._nonce_factory()
            self._step = 1
            return (
                # qop is left out: its default, "auth", is all that is offered
                f"realm={_quote(self.realm)},nonce={_quote(self._nonce)},"
                "charset=utf-8,algorithm=md5-sess"
            ).encode()
        if step == 1:
            out = self._verify(token)
            self._step = 2
            self.complete = True
            return out
        if step == 2:
            raise SaslError("DIGEST-MD5: authentication already completed")
        raise SaslError("DIGEST-MD5: exchange already failed")

    def _verify(self, token: bytes) -> bytes:
        if len(token) > MAX_RESPONSE:
            raise SaslError("DIGEST-MD5: response longer than 4096 bytes")
        d = parse_directives(token)
        for key in ("username", "nonce", "cnonce", "nc", "digest-uri", "response"):
            if key not in d:
                raise SaslError(f"DIGEST-MD5: response lacks {key}")
        charset = d.get("charset")
        if charset is not None and charset.lower() != "utf-8":
            raise SaslError("DIGEST-MD5: unsupported charset")
        utf8 = charset is not None
        qop = d.get("qop", "auth")
        if qop != "auth":
            raise SaslError("DIGEST-MD5: only qop auth is offered")
        if not hmac.compare_digest(d["nonce"].encode(), (self._nonce or "").encode()):
            raise SaslError("DIGEST-MD5: nonce mismatch")
        if d["nc"] != "00000001":
            raise SaslError("DIGEST-MD5: unexpected nonce count")
        realm = d.get("realm", "")
        if "realm" in d and realm != self.realm:
            raise SaslError("DIGEST-MD5: realm not offered")
        uri = d["digest-uri"]
        serv, _, host = uri.partition("/")
        host = host.split("/", 1)[0]
        if serv.lower() != self.service.lower() or host.lower() != self.server_name.lower():
            raise SaslError("DIGEST-MD5: digest-uri mismatch")
        username = d["username"]
        authzid = d.get("authzid") or None
        password = self._passwords(username)
        known = password is not None
        expected = _response_value(
            username, realm, password if known else secrets.token_hex(16), self._nonce or "",
            d["cnonce"], d["nc"], qop, uri, authzid, utf8, "AUTHENTICATE",
        )
        ok = hmac.compare_digest(expected.encode(), d["response"].lower().encode())
        if not (ok and known):
            # one message for both, so a client cannot probe for user names
            raise SaslError(f"DIGEST-MD5: authentication failed for {username!r}")
        ident = self._authorize(username, authzid) if self._authorize else username
        self.authentication_id = username
        self.authorization_id = ident
        rspauth = _response_value(
            username, realm, password, self._nonce or "", d["cnonce"], d["nc"], qop, uri,
            authzid, utf8, "",
        )
        return f"rspauth={rspauth}".encode()


# ------------------------------------------------------------------ client
class DigestMD5Client:
    """The client side: ``step(b"")`` is not needed; start with ``initial()`` (an empty
    token), then ``step(challenge)`` returns the response, ``step(rspauth)`` verifies the
    server and returns b"" with ``complete`` set."""

    def __init__(self, username: str, password: str, *, service: str = SERVICE,
                 server_name: str = REALM, authzid: str | None = None,
                 cnonce: Callable[[], str] = _nonce) -> None:
        self.username = username
        self._password = password
        self.digest_uri = f"{service}/{server_name}"
        self.authzid = authzid
        self._cnonce_factory = cnonce
        self._expect_rspauth: str | None = None
        self._step = 0
        self.complete = False

    def initial(self) -> bytes:
        return b""

    def step(self, token: bytes) -> bytes:
        step, self._step = self._step, -1
        if step == 0:
            if len(token) > MAX_CHALLENGE:
                raise SaslError("DIGEST-MD5: challenge longer than 2048 bytes")
            d = parse_directives(token)
            nonce = d.get("nonce")
            if not nonce:
                raise SaslError("DIGEST-MD5: challenge lacks nonce")
            qops = [q.strip() for q in d.get("qop", "auth").split(",")]
            if "auth" not in qops:
                raise SaslError("DIGEST-MD5: server does not offer qop auth")
            alg = d.get("algorithm", "")
            if alg.lower() != "md5-sess":
                raise SaslError("DIGEST-MD5: algorithm md5-sess missing")
            realm = d.get("realm", "")
            utf8 = d.get("charset", "").lower() == "utf-8"
            cnonce = self._cnonce_factory()
            nc = "00000001"
            resp = _response_value(self.username, realm, self._password, nonce, cnonce, nc,
                                   "auth", self.digest_uri, self.authzid, utf8, "AUTHENTICATE")
            self._expect_rspauth = _response_value(
                self.username, realm, self._password, nonce, cnonce, nc, "auth",
                self.digest_uri, self.authzid, utf8, "")
            parts = [f"username={_quote(self.username)}"]
            if "realm" in d:
                parts.append(f"realm={_quote(realm)}")
            parts += [f"nonce={_quote(nonce)}", f"cnonce={_quote(cnonce)}", f"nc={nc}",
                      "qop=auth", f"digest-uri={_quote(self.digest_uri)}", f"response={resp}"]
            if utf8:
                parts.append("charset=utf-8")
            if self.authzid:
                parts.append(f"authzid={_quote(self.authzid)}")
            self._step = 1
            return ",".join(parts).encode("utf-8")
        if step == 1:
            d = parse_directives(token)
            got = d.get("rspauth", "")
            if not hmac.compare_digest(got.lower().encode(), (self._expect_rspauth or "").encode()):
                raise SaslError("DIGEST-MD5: server's rspauth does not match")
            self._step = 2
            self.complete = True
            return b""
        raise SaslError("DIGEST-MD5: exchange is over")
