"""Is a string a distinguished name Java's ``X500Principal(String)`` accepts?

ZooKeeper's X509AuthenticationProvider.isValid parses an x509 ACL id that way and
answers INVALIDACL when it throws.  This is a checker, not a parser: RDNs separated by
``,`` or ``;`` (``+`` within one), each ``type=value`` with a keyword Java knows or a dotted
OID (optionally ``OID.``), the value quoted, ``#`` + hex of a DER value, or a string whose
backslash escapes are a special character or two hex digits.  The empty string is the
empty name, as in Java.
"""

from __future__ import annotations

import re

__all__ = ["x500_name_valid"]

_KEYWORDS = frozenset({
    "CN", "C", "L", "S", "ST", "O", "OU", "T", "IP", "STREET", "DC", "DNQUALIFIER", "DNQ",
    "SURNAME", "GIVENNAME", "INITIALS", "GENERATION", "EMAIL", "EMAILADDRESS", "UID",
    "SERIALNUMBER",
})
_OID = re.compile(r"(?:[Oo][Ii][Dd]\.)?[0-9]+(?:\.[0-9]+)+")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")
_ESCAPABLE = ',=+<>#;"\\ \n'


def _split(s: str, seps: str) -> list[str] | None:
    """Split at unescaped, unquoted separators; None on a dangling backslash."""
    parts, cur, i, quoted = [], [], 0, False
    while i < len(s):
        ch = s[i]
        if ch == "\\":
            if i + 1 >= len(s):
                return None
            cur.append(s[i : i + 2])
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif ch in seps and not quoted:
            parts.append("".join(cur))
            cur = []
            i += 1
            continue
        cur.append(ch)
        i += 1
    if quoted:
        return None
    parts.append("".join(cur))
    return parts


def _der_ok(data: bytes) -> bool:
    if len(data) < 2:
        return False
    n = data[1]
    pos = 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4 or len(data) < 2 + k:
            return False
        n = int.from_bytes(data[2 : 2 + k], "big")
        pos = 2 + k
    return pos + n == len(data)


def _value_ok(v: str) -> bool:
    v = v.strip(" ")
    if v.startswith("#"):
        h = v[1:]
        return bool(_HEX.fullmatch(h)) and _der_ok(bytes.fromhex(h))
    if v.startswith('"'):
        return len(v) >= 2 and v.endswith('"') and '"' not in v[1:-1].replace('\\"', "")
    i = 0
    while i < len(v):
        if v[i] == "\\":
            nxt = v[i + 1 : i + 2]
            if nxt and nxt in _ESCAPABLE:
                i += 2
                continue
            if re.fullmatch(r"[0-9A-Fa-f]{2}", v[i + 1 : i + 3]):
                i += 3
                continue
            return False
        i += 1
    return True


def x500_name_valid(dn: str) -> bool:
    if dn.strip() == "":
        return True
    rdns = _split(dn, ",;")
    if rdns is None:
        return False
    for rdn in rdns:
        avas = _split(rdn, "+")
        if avas is None:
            return False
        for ava in avas:
            if "=" not in ava:
                return False
            kind, value = ava.split("=", 1)
            kind = kind.strip()
            if kind.upper() not in _KEYWORDS and not _OID.fullmatch(kind):
                return False
            if not _value_ok(value):
                return False
    return True
