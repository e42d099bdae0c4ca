"""ACL schemes and checks, as ZooKeeper 3.8's server does them.

Schemes known to a default ZooKeeper server: `world` (id "anyone"), `auth`
(expanded at create/setACL time to the session's authenticated ids), `digest`
("user:base64(sha1(user:password))") and `ip` (IPv4 address or CIDR; ZooKeeper
3.8.0's IP provider has no IPv6 support, so IPv6 ACLs are invalid and an IPv6
client never matches). An authenticated id with scheme `super` passes every check.
"""

from __future__ import annotations

import base64
import hashlib
import re
import weakref
from typing import Final

from mypy_extensions import mypyc_attr

from ..wire.constants import Err, Perm
from ..wire.primitives import VectorCache
from ..wire.records import ACL, Id
from .x500 import x500_name_valid

__all__ = [
    "ACLError",
    "ACLList",
    "OPEN_ACL_UNSAFE",
    "acl_cache_size",
    "READ_ACL_UNSAFE",
    "check_perm",
    "digest_id",
    "fixup_acl",
    "intern_acl",
    "ip_matches",
    "ip_valid",
    "redact_acl",
]

# Authentication providers registered by default and whether their ids count as
# "authenticated" for the `auth` ACL scheme (ServerAuthenticationProvider.isAuthenticated).
# A server registers more (x509, sasl) with `DataTree.acl_providers`.
DEFAULT_PROVIDERS: dict[str, bool] = {"digest": True, "ip": False}
# Providers zabby knows; their ids are compared exactly (x509: the subject DN, sasl: the
# authorization id), as X509AuthenticationProvider and SASLAuthenticationProvider do.
KNOWN_PROVIDERS: dict[str, bool] = {"digest": True, "ip": False, "x509": True, "sasl": True}


class ACLError(Exception):
    """An ACL could not be accepted; `err` is the ZooKeeper error code."""

    def __init__(self, err: int) -> None:
        super().__init__(err)
        self.err = err


# --------------------------------------------------------------- interning
@mypyc_attr(native_class=False)  # a list subclass: mypyc keeps it a Python class
class ACLList(VectorCache):
    """An interned ACL list, shared by every znode with an equal ACL.

    A list subclass because it must be weakly referenced (a tuple subclass
    cannot be): the intern table forgets a list once no znode, pending change
    or snapshot holds it, so its memory comes back when the last node using it
    goes. Treat it as immutable; the mutators raise. It compares equal to any
    list or tuple with equal items, and hashes like the tuple of its items. It
    keeps its encoding once written (VectorCache).
    """

    __slots__ = ("__weakref__",)
    _what = "an interned ACL list"

    def __eq__(self, other):
        if isinstance(other, tuple):
            other = list(other)
        return list.__eq__(self, other)

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self):  # type: ignore[override]
        return hash(tuple(self))


# (perms, scheme, id) triples -> a weak reference to the interned list. A plain dict
# of weak references whose callbacks forget them, rather than a WeakValueDictionary:
# its get() is interpreted code, run by every create (1M of them in a log replay).
_ACL_CACHE: Final[dict[tuple, weakref.ref]] = {}


def intern_acl(acl) -> ACLList:
    """A shared, immutable tuple for an ACL list: equal lists share one object
    while any holder keeps it alive. Linear in the list's length."""
    if type(acl) is ACLList:
        return acl  # only ever made below, so already the one shared list of its key
    key = _acl_key(acl)
    ref = _ACL_CACHE.get(key)
    got = ref() if ref is not None else None
    if got is None:
        if type(acl) is ACLList:
            got = acl
        else:
            got = ACLList([ACL(p, Id(s, i)) for p, s, i in key])
        _ACL_CACHE[key] = weakref.ref(got, _forgetter(key))
    return got


def _forgetter(key: tuple):
    def forget(ref: weakref.ref) -> None:
        # only if the entry is still this list's (a new list of the same ACL may have
        # been interned after this one became unreachable and before this callback)
        if _ACL_CACHE.get(key) is ref:
            del _ACL_CACHE[key]
    return forget


def _acl_key(acl: list[ACL] | tuple[ACL, ...]) -> tuple:
    return tuple([(a.perms, a.id.scheme, a.id.id) for a in acl])


def acl_cache_size() -> int:
    """How many distinct ACL lists are interned (for tests and gauges)."""
    return len(_ACL_CACHE)


OPEN_ACL_UNSAFE = intern_acl([ACL(int(Perm.ALL), Id("world", "anyone"))])
READ_ACL_UNSAFE = intern_acl([ACL(int(Perm.READ), Id("world", "anyone"))])


# ------------------------------------------------------------------ digest
def digest_id(user_colon_password: str) -> str:
    """The id `addauth digest user:password` authenticates as (and ACLs name)."""
    user = user_colon_password.split(":", 1)[0]
    h = hashlib.sha1(user_colon_password.encode("utf-8", "surrogatepass")).digest()
    return user + ":" + base64.b64encode(h).decode("ascii")


def _java_split(s: str, sep: str) -> list[str]:
    """Java's String.split(sep) with limit 0: trailing empty strings dropped."""
    if s == "":
        return [""]
    parts = s.split(sep)
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def _digest_valid(ident: str) -> bool:
    return len(_java_split(ident, ":")) == 2


# ---------------------------------------------------------------------- ip
def _java_parse_int(s: str) -> int | None:
    """Integer.parseInt: optional sign, decimal digits (any Unicode Nd), 32-bit."""
    if not s:
        return None
    body = s[1:] if s[0] in "+-" else s
    if not body or not body.isdecimal():
        return None
    v = int(s)
    if v < -(1 << 31) or v > (1 << 31) - 1:
        return None
    return v


def _v4_bytes(addr: str) -> list[int] | None:
    parts = addr.split(".")  # Java split(regex, -1) keeps empties too
    if len(parts) != 4:
        return None
    out = []
    for p in parts:
        v = _java_parse_int(p)
        if v is None or not 0 <= v <= 255:
            return None
        out.append(v)
    return out


def _mask(b: list[int], bits: int) -> None:
    start = bits // 8
    start_mask = ~((1 << (8 - bits % 8)) - 1) & 0xFF
    while start < len(b):
        b[start] &= start_mask
        start_mask = 0
        start += 1


def _ip_expr(expr: str) -> tuple[list[int], int] | None:
    parts = expr.split("/", 1)
    addr = _v4_bytes(parts[0])
    if addr is None:
        return None
    bits = len(addr) * 8
    if len(parts) == 2:
        b = _java_parse_int(parts[1])
        if b is None or b < 0 or b > len(addr) * 8:
            return None
        bits = b
    return addr, bits


def ip_valid(expr: str) -> bool:
    return _ip_expr(expr) is not None


def ip_matches(client_ip: str, acl_expr: str) -> bool:
    """Does the client's address match an `ip` ACL id (address or address/bits)?"""
    parsed = _ip_expr(acl_expr)
    if parsed is None:
        return False
    acl_addr, bits = parsed
    remote = _v4_bytes(client_ip)
    if remote is None:
        return False
    _mask(acl_addr, bits)
    _mask(remote, bits)
    return remote == acl_addr


# ------------------------------------------------------------------ checks
def check_perm(acl, perm: int, auth_ids) -> bool:
    """ZooKeeperServer.checkACL: may a session with `auth_ids` do `perm` here?

    O(len(acl) + len(auth_ids)): the session's digest ids go into a set and its
    ip ids are deduplicated before the walk, so a long ACL checked by a session
    with many ids stays linear.
    """
    if not acl:
        return True
    aid: Id
    for aid in auth_ids:
        if aid.scheme == "super":
            return True
    perm = int(perm)  # plain int: IntFlag's & costs an enum construction per ACL entry
    a: ACL
    digests: set | None = None
    ips: list | None = None
    exact: set | None = None  # x509 / sasl ids, compared exactly
    for a in acl:
        if a.perms & perm:
            ident = a.id
            scheme = ident.scheme
            if scheme == "world":
                if ident.id == "anyone":
                    return True
            elif scheme == "digest":
                if digests is None:
                    digests = {aid.id for aid in auth_ids if aid.scheme == "digest"}
                if ident.id in digests:
                    return True
            elif scheme == "ip":
                if ips is None:
                    ips = list(dict.fromkeys(
                        aid.id for aid in auth_ids if aid.scheme == "ip" and aid.id is not None))
                for addr in ips:
                    if ip_matches(addr, ident.id):
                        return True
            elif scheme == "x509" or scheme == "sasl":
                if exact is None:
                    exact = {(aid.scheme, aid.id) for aid in auth_ids
                             if aid.scheme == "x509" or aid.scheme == "sasl"}
                if (scheme, ident.id) in exact:
                    return True
    return False


def _dedup_key(a) -> tuple:
    """A hashable key equal exactly when two ACL records are equal (ACL.equals)."""
    ident = a.id
    if ident is None:
        return (a.perms, False, None, None)
    return (a.perms, True, ident.scheme, ident.id)


# perms -> the interned [world:anyone with perms] (ACL perms are five bits; other
# values are left to intern_acl)
_WORLD_ANYONE: dict[int, ACLList] = {}


def _world_anyone(perms: int) -> ACLList:
    got = _WORLD_ANYONE.get(perms)
    if got is None:
        got = intern_acl([ACL(perms, Id("world", "anyone"))])
        if 0 <= perms < 32:
            _WORLD_ANYONE[perms] = got
    return got


def fixup_acl(acl, auth_ids, providers: dict[str, bool] = DEFAULT_PROVIDERS,
              max_entries: int | None = None) -> list[ACL]:
    """Validate an ACL from a create/setACL and expand `auth` ids.

    `providers` are the registered authentication schemes (scheme -> whether its ids
    count for the `auth` scheme); an ACL naming another scheme is INVALIDACL.

    Raises ACLError(INVALIDACL), or ACLError(MARSHALLINGERROR) where ZooKeeper
    hits a NullPointerException (a null id string). Linear in the list: the
    duplicate check (ZooKeeper's removeDuplicates keeps the first of equal
    entries, in order) uses a dict instead of a list scan. `max_entries` bounds
    what `auth` expansion may produce (MARSHALLINGERROR beyond it).
    """
    if acl is not None and len(acl) == 1:
        # the usual ACL, one world:anyone entry (OPEN_ACL_UNSAFE): its shared list
        a = acl[0]
        ident = a.id
        if ident is not None and ident.scheme == "world" and ident.id == "anyone":
            return _world_anyone(a.perms)
    seen: dict[tuple, ACL] = {}
    for a in acl or ():
        k = _dedup_key(a)
        if k not in seen:
            seen[k] = a
    uniq = seen.values()
    if not uniq:
        raise ACLError(Err.INVALIDACL)
    out: list[ACL] = []
    authed: list[tuple[str, str | None]] | None = None  # (an id may be None: checked at run time compiled)
    for a in uniq:
        ident = a.id
        if ident is None or ident.scheme is None:
            raise ACLError(Err.INVALIDACL)
        scheme = ident.scheme
        if scheme == "world":
            if ident.id is None:
                raise ACLError(Err.MARSHALLINGERROR)
            if ident.id == "anyone":
                out.append(a)
                continue
            raise ACLError(Err.INVALIDACL)  # no "world" provider for other ids
        if scheme == "auth":
            if authed is None:
                authed = [(aid.scheme, aid.id) for aid in auth_ids if providers.get(aid.scheme)]
            if not authed:
                raise ACLError(Err.INVALIDACL)
            if max_entries is not None and len(out) + len(authed) > max_entries:
                # n "auth" entries times k authenticated ids: an ACL no txn of
                # jute.maxbuffer can hold (ZooKeeper would log a txn it cannot
                # read back); refused like an over-long buffer
                raise ACLError(Err.MARSHALLINGERROR)
            perms = a.perms
            out.extend([ACL(perms, Id(sch, ident_id)) for sch, ident_id in authed])
            continue
        if scheme not in providers:
            raise ACLError(Err.INVALIDACL)
        if ident.id is None:
            raise ACLError(Err.MARSHALLINGERROR)
        if scheme == "digest":
            ok = _digest_valid(ident.id)
        elif scheme == "ip":
            ok = ip_valid(ident.id)
        elif scheme == "x509":
            ok = x500_name_valid(ident.id)  # X509AuthenticationProvider.isValid
        else:
            ok = True  # sasl: any name
        if not ok:
            raise ACLError(Err.INVALIDACL)
        out.append(a)
    return out


# Java's "." does not match these line terminators.
_REDACT: Final = re.compile(":[^\n\r\u0085\u2028\u2029]*")


def redact_acl(acl) -> list[ACL]:
    """getACL without ADMIN: digest ids shown as "user:x" (replaceAll(":.*", ":x"))."""
    out = []
    for a in acl:
        if a.id.scheme == "digest" and a.id.id is not None:
            out.append(ACL(a.perms, Id("digest", _REDACT.sub(":x", a.id.id))))
        else:
            out.append(a)
    return out
