"""Jute, ZooKeeper's binary serialisation, sans-IO.

A record class declares its fields once (`FIELDS`) and gets generated `encode`
and `decode` methods: straight-line code with precompiled `struct`s, so the hot
path pays no per-field interpretation.

Field types: ``int`` (4 bytes), ``long`` (8), ``bool`` (1), ``buffer`` (int length
+ bytes, -1 = None), ``ustring`` (int length + UTF-8, -1 = None), a record class,
or ``("vector", T)`` (int count + items, -1 = None) with T any of these.
"""

from __future__ import annotations

import struct
from itertools import chain
from typing import Any, ClassVar

__all__ = ["EncodedStrings", "ProtocolError", "Record", "encoded_strings", "vector"]


class ProtocolError(ValueError):
    """Bytes that are not a valid encoding of what was expected."""


_I = struct.Struct(">i")
_Q = struct.Struct(">q")
_B = struct.Struct(">?")
INT = _I
LONG = _Q

# Largest length prefix we will ever honour for a buffer/string/vector; callers
# bound whole frames by jute.maxbuffer before decoding, this only guards against
# absurd counts within a frame.
_MAX_LEN = 1 << 30


def vector(item: Any) -> tuple[str, Any]:
    return ("vector", item)


# ---------------------------------------------------------------- primitives
# Each reader takes (buf, pos) and returns (value, newpos); buf is bytes or
# memoryview. Truncation or a bad length raises ProtocolError.


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


def read_buffer(buf, pos: int) -> tuple[bytes | None, int]:
    if pos + 4 > len(buf):
        raise ProtocolError("truncated int")
    n = _I.unpack_from(buf, pos)[0]
    pos += 4
    if n < 0:
        if n == -1:
            return None, pos
        raise ProtocolError(f"negative length {n}")
    end = pos + n
    if end > len(buf):
        raise ProtocolError("truncated buffer")
    return bytes(buf[pos:end]), end


def read_ustring(buf, pos: int) -> tuple[str | None, int]:
    if pos + 4 > len(buf):
        raise ProtocolError("truncated int")
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


def _min_size(t) -> int:
    """Fewest bytes one encoded value of field type `t` can take."""
    if isinstance(t, str):
        return {"int": 4, "long": 8, "bool": 1, "buffer": 4, "ustring": 4}[t]
    if isinstance(t, tuple):
        return 4
    return t._MIN_SIZE


def _read_vector(buf, pos: int, read_item, item_size: int = 1) -> tuple[list | None, int]:
    n, pos = read_int(buf, pos)
    if n < 0:
        if n == -1:
            return None, pos
        # Java's BinaryInputArchive makes an index that is done at once: any other
        # negative count reads as an empty vector (a create then fails INVALIDACL).
        return [], pos
    if n > _MAX_LEN or n * item_size > len(buf) - pos:
        # every item takes at least item_size bytes: a count the rest of the frame
        # cannot hold fails here, before any list is grown or item read
        raise ProtocolError(f"vector length {n} exceeds frame")
    items = []
    append = items.append
    for _ in range(n):
        v, pos = read_item(buf, pos)
        append(v)
    return items, pos


def _write_vector(out: bytearray, items, write_item) -> None:
    if items is None:
        out += b"\xff\xff\xff\xff"
        return
    out += _I.pack(len(items))
    for it in items:
        write_item(out, it)


def _immutable(self, *args, **kwargs):
    raise TypeError("an EncodedStrings list is immutable")


class EncodedStrings(list):
    """A list of strings that carries its own vector<ustring> encoding, made
    once (`encoded_strings`): a big directory's listing, answered again and
    again while the directory does not change, is then copied, not encoded."""

    __slots__ = ("encoded",)

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _immutable
    append = extend = insert = pop = remove = clear = sort = reverse = _immutable


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


_PRIM_READ = {
    "int": read_int,
    "long": read_long,
    "bool": read_bool,
    "buffer": read_buffer,
    "ustring": read_ustring,
}
_PRIM_WRITE = {
    "int": _write_int,
    "long": _write_long,
    "bool": _write_bool,
    "buffer": write_buffer,
    "ustring": write_ustring,
}


def _reader_for(t):
    if isinstance(t, str):
        return _PRIM_READ[t]
    if isinstance(t, tuple):
        inner = _reader_for(t[1])
        size = max(1, _min_size(t[1]))
        return lambda buf, pos: _read_vector(buf, pos, inner, size)
    return t.decode_from


def _writer_for(t):
    if isinstance(t, str):
        return _PRIM_WRITE[t]
    if isinstance(t, tuple):
        if t[1] == "ustring":
            return _write_ustring_vector
        inner = _writer_for(t[1])
        return lambda out, items: _write_vector(out, items, inner)
    return lambda out, rec: rec.encode(out)


def _default_for(t):
    if t in ("int", "long"):
        return 0
    if t == "bool":
        return False
    return None


class _RecordMeta(type):
    """Gives each record class real __slots__ from its FIELDS, then its codecs."""

    def __new__(mcs, name, bases, ns, **kw):
        if "FIELDS" in ns and "__slots__" not in ns:
            ns["__slots__"] = tuple(n for n, _ in ns["FIELDS"])
        cls = super().__new__(mcs, name, bases, ns, **kw)
        if "FIELDS" in ns and bases:
            _build(cls)
        return cls


class Record(metaclass=_RecordMeta):
    """Base of every jute record. Subclasses set FIELDS = ((name, type), ...)."""

    __slots__ = ()
    FIELDS: ClassVar[tuple[tuple[str, Any], ...]] = ()
    _MIN_SIZE: ClassVar[int] = 0  # fewest bytes an encoding takes (set per subclass)

    # generated per subclass: __init__, encode, decode_from
    def encode(self, out: bytearray) -> None:  # pragma: no cover - replaced
        raise NotImplementedError

    @classmethod
    def decode_from(cls, buf, pos: int):  # pragma: no cover - replaced
        raise NotImplementedError

    @classmethod
    def decode(cls, buf) -> Any:
        """Decode a whole buffer; trailing bytes are ignored (as Java's archive does)."""
        rec, _ = cls.decode_from(buf, 0)
        return rec

    def to_bytes(self) -> bytes:
        out = bytearray()
        self.encode(out)
        return bytes(out)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n, _ in self.FIELDS)

    def __hash__(self) -> int:
        return hash(tuple(_hashable(getattr(self, n)) for n, _ in self.FIELDS))

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n, _ in self.FIELDS)
        return f"{type(self).__name__}({inner})"


def _hashable(v):
    return tuple(v) if isinstance(v, list) else v


def _build(cls) -> None:
    fields = cls.FIELDS
    cls._MIN_SIZE = sum(_min_size(t) for _, t in fields)
    names = [n for n, _ in fields]
    ns: dict[str, Any] = {
        "_I": _I, "_Q": _Q, "_B": _B, "ProtocolError": ProtocolError,
        "write_buffer": write_buffer, "write_ustring": write_ustring,
        "read_buffer": read_buffer, "read_ustring": read_ustring,
        "read_bool": read_bool,
    }
    # __init__
    params = ", ".join(f"{n}={_default_for(t)!r}" for n, t in fields)
    body = "\n".join(f"    self.{n} = {n}" for n in names) or "    pass"
    src = [f"def __init__(self, {params}):\n{body}\n" if params else f"def __init__(self):\n{body}\n"]
    # encode: coalesce fixed-width runs into one struct.pack
    enc = ["def encode(self, out):"]
    dec = ["def decode_from(cls, buf, pos):", "    n = len(buf)"]
    run: list[tuple[str, str]] = []
    counter = [0]

    def flush():
        if not run:
            return
        fmt = ">" + "".join(code for _, code in run)
        sname = f"_S{counter[0]}"
        counter[0] += 1
        ns[sname] = struct.Struct(fmt)
        size = ns[sname].size
        # bools are packed as 0/1 ints
        args = ", ".join(
            f"(1 if self.{nm} else 0)" if code == "B" else f"self.{nm}" for nm, code in run
        )
        enc.append(f"    out += {sname}.pack({args})")
        dec.append(f"    if pos + {size} > n: raise ProtocolError('truncated {cls.__name__}')")
        targets = ", ".join(f"v_{nm}" for nm, _ in run)
        dec.append(f"    {targets}, = {sname}.unpack_from(buf, pos)")
        for nm, code in run:
            if code == "B":
                dec.append(f"    v_{nm} = v_{nm} != 0")
        dec.append(f"    pos += {size}")
        run.clear()

    for name, t in fields:
        if t == "int":
            run.append((name, "i"))
        elif t == "long":
            run.append((name, "q"))
        elif t == "bool":
            run.append((name, "B"))
        else:
            flush()
            wname, rname = f"_w_{name}", f"_r_{name}"
            ns[wname] = _writer_for(t)
            ns[rname] = _reader_for(t)
            enc.append(f"    {wname}(out, self.{name})")
            dec.append(f"    v_{name}, pos = {rname}(buf, pos)")
    flush()
    if len(enc) == 1:
        enc.append("    pass")
    dec.append(f"    return cls({', '.join('v_' + nm for nm in names)}), pos")
    src.append("\n".join(enc) + "\n")
    src.append("\n".join(dec) + "\n")
    exec("\n".join(src), ns)  # noqa: S102 - generated from our own field tables
    cls.__init__ = ns["__init__"]
    cls.encode = ns["encode"]
    cls.decode_from = classmethod(ns["decode_from"])
