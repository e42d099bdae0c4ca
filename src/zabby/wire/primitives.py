"""Jute's primitives, sans-IO: the readers and writers every record's generated code
calls, and `EncodedStrings`. setup.py compiles this module with mypyc (jute.py's
record machinery builds classes with a metaclass and generated code, which mypyc
cannot compile, so it stays Python and calls these).

Each reader takes (buf, pos) and returns (value, newpos); buf is bytes or memoryview.
Truncation or a bad length raises ProtocolError.
"""

from __future__ import annotations

import struct
from itertools import chain
from typing import Any, Final

from mypy_extensions import mypyc_attr


class ProtocolError(ValueError):
    """Bytes that are not a valid encoding of what was expected."""


_I: Final = struct.Struct(">i")
_Q: Final = struct.Struct(">q")
_B = struct.Struct(">?")
INT: Final = _I
LONG = _Q

# Largest length prefix we will ever honour for a buffer/string/vector; callers
# bound whole frames by jute.maxbuffer before decoding, this only guards against
# absurd counts within a frame.
_MAX_LEN: Final = 1 << 30


def read_int(buf, pos: int) -> tuple[int, int]:
    end = pos + 4
    if end > len(buf):
        raise ProtocolError("truncated int")
    return _I.unpack_from(buf, pos)[0], end


def read_long(buf, pos: int) -> tuple[int, int]:
    end = pos + 8
    if end > len(buf):
        raise ProtocolError("truncated long")
    return _Q.unpack_from(buf, pos)[0], end


def read_bool(buf, pos: int) -> tuple[bool, int]:
    if pos >= len(buf):
        raise ProtocolError("truncated bool")
    return buf[pos] != 0, pos + 1


def _length(buf: bytes, pos: int) -> int:
    """The signed big-endian int at buf[pos:pos+4] (the caller checked the bounds),
    from four native byte reads: no struct call, no tuple."""
    n = (buf[pos] << 24) | (buf[pos + 1] << 16) | (buf[pos + 2] << 8) | buf[pos + 3]
    return n - 0x100000000 if n & 0x80000000 else n


def read_buffer(buf, pos: int) -> tuple[bytes | None, int]:
    if pos + 4 > len(buf):
        raise ProtocolError("truncated int")
    if isinstance(buf, bytes):  # the common case, typed: the compiled build reads it natively
        n = _length(buf, pos)
    else:
        n = _I.unpack_from(buf, pos)[0]
    pos += 4
    if n < 0:
        if n == -1:
            return None, pos
        raise ProtocolError(f"negative length {n}")
    end = pos + n
    if end > len(buf):
        raise ProtocolError("truncated buffer")
    if isinstance(buf, bytes):
        return buf[pos:end], end
    return bytes(buf[pos:end]), end


def read_ustring(buf, pos: int) -> tuple[str | None, int]:
    if pos + 4 > len(buf):
        raise ProtocolError("truncated int")
    if isinstance(buf, bytes):
        n = _length(buf, pos)
    else:
        n = _I.unpack_from(buf, pos)[0]
    pos += 4
    if n < 0:
        if n == -1:
            return None, pos
        raise ProtocolError(f"negative length {n}")
    end = pos + n
    if end > len(buf):
        raise ProtocolError("truncated string")
    # Java decodes malformed UTF-8 with replacement characters; so do we.
    if isinstance(buf, bytes):
        return buf[pos:end].decode("utf-8", "replace"), end
    return bytes(buf[pos:end]).decode("utf-8", "replace"), end


def write_buffer(out: bytearray, value: bytes | None) -> None:
    if value is None:
        out += b"\xff\xff\xff\xff"
    else:
        out += _I.pack(len(value))
        out += value


def write_ustring(out: bytearray, value: str | None) -> None:
    if value is None:
        out += b"\xff\xff\xff\xff"
    else:
        b = value.encode("utf-8", "surrogatepass")
        out += _I.pack(len(b))
        out += b


def _vector_count(buf, pos: int, item_size: int = 1) -> tuple[int, int]:
    """A vector's item count and the position after it: -1 for a null vector; 0 for
    any other negative count (Java's BinaryInputArchive makes an index that is done
    at once: it reads as an empty vector, and a create then fails INVALIDACL).
    Every item takes at least item_size bytes: a count the rest of the frame cannot
    hold fails here, before any list is grown or item read."""
    n, pos = read_int(buf, pos)
    if n < 0:
        return (-1 if n == -1 else 0), pos
    if n > _MAX_LEN or n * item_size > len(buf) - pos:
        raise ProtocolError(f"vector length {n} exceeds frame")
    return n, pos


def _read_vector(buf, pos: int, read_item, item_size: int = 1) -> tuple[list | None, int]:
    n, pos = _vector_count(buf, pos, item_size)
    if n < 0:
        return None, pos
    items: list[Any] = []
    append = items.append
    for _ in range(n):
        v, pos = read_item(buf, pos)
        append(v)
    return items, pos


def _write_vector(out: bytearray, items, write_item) -> None:
    if items is None:
        out += b"\xff\xff\xff\xff"
        return
    if type(items) is not list and isinstance(items, VectorCache):
        out += items.vector_bytes(write_item)
        return
    out += _I.pack(len(items))
    for it in items:
        write_item(out, it)


@mypyc_attr(native_class=False)  # a list subclass: mypyc keeps it a Python class
class ImmutableList(list):
    """A list nobody may change once it is made (an interned ACL list, a directory
    listing with its encoding): every mutator raises TypeError naming `_what`."""

    __slots__ = ()
    _what = "list"

    def _refuse(self, *args, **kwargs):
        raise TypeError(f"{self._what} is immutable")


# every mutator refuses (set after the class body: compiled, mypyc takes neither a
# chained assignment nor an alias of a method there)
for _name in ("__setitem__", "__delitem__", "__iadd__", "__imul__", "append", "extend",
              "insert", "pop", "remove", "clear", "sort", "reverse"):
    setattr(ImmutableList, _name, ImmutableList._refuse)
del _name


@mypyc_attr(native_class=False)  # a list subclass: mypyc keeps it a Python class
class VectorCache(ImmutableList):
    """An immutable list that carries its vector encoding, `encoded`: made once,
    when the list is first written (an interned ACL list, written into the txn of
    every create that names it) or when it is made (`EncodedStrings`)."""

    __slots__ = ("encoded",)
    encoded: bytes
    _what = "an immutable list"

    def vector_bytes(self, write_item) -> bytes:
        """The list as a jute vector, its items written by `write_item` (always the
        same writer for one list: its items' record type)."""
        try:
            return self.encoded
        except AttributeError:
            out = bytearray(_I.pack(len(self)))
            for it in self:
                write_item(out, it)
            enc = self.encoded = bytes(out)
            return enc


@mypyc_attr(native_class=False)  # a list subclass: mypyc keeps it a Python class
class EncodedStrings(VectorCache):
    """A list of strings whose vector<ustring> encoding is made with it
    (`encoded_strings`): a big directory's listing, answered again and again while
    the directory does not change, is then copied, not encoded."""

    __slots__ = ()
    _what = "an EncodedStrings list"


def encoded_strings(items: list) -> EncodedStrings:
    out = bytearray()
    _write_ustring_vector(out, items)  # a plain list: encoded item by item
    es = EncodedStrings(items)
    es.encoded = bytes(out)
    return es


def _write_ustring_vector(out: bytearray, items) -> None:
    """vector<ustring> in C-level passes (getChildren of 200k names, watch lists)."""
    if type(items) is EncodedStrings:
        out += items.encoded
        return
    if items is None:
        out += b"\xff\xff\xff\xff"
        return
    out += _I.pack(len(items))
    if not items:
        return
    if None in items:
        for it in items:
            write_ustring(out, it)
        return
    try:
        encs = list(map(str.encode, items))
    except UnicodeEncodeError:  # a lone surrogate: Java writes it as CESU-ish bytes
        encs = [s.encode("utf-8", "surrogatepass") for s in items]
    lens = list(map(_I.pack, map(len, encs)))
    out += b"".join(chain.from_iterable(zip(lens, encs, strict=True)))


def _write_int(out: bytearray, v: int) -> None:
    out += _I.pack(v)


def _write_long(out: bytearray, v: int) -> None:
    out += _Q.pack(v)


def _write_bool(out: bytearray, v: bool) -> None:
    out += b"\x01" if v else b"\x00"


# What every record class does with its FIELDS table: jute's metaclass-built records
# (jute.Record) and the generated native ones (records.NativeRecord) both call these.
def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def fields_equal(a: Any, b: Any) -> bool:
    """a and b (of one record type) agree on every field."""
    return all(getattr(a, n) == getattr(b, n) for n, _ in a.FIELDS)


def fields_hash(a: Any) -> int:
    return hash(tuple(_hashable(getattr(a, n)) for n, _ in a.FIELDS))


def fields_repr(a: Any) -> str:
    inner = ", ".join(f"{n}={getattr(a, n)!r}" for n, _ in a.FIELDS)
    return f"{type(a).__name__}({inner})"
