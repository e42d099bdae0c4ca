"""Jute, ZooKeeper's binary serialisation, sans-IO.

A record class declares its fields once (`FIELDS`) and gets generated `encode`
and `decode` methods: straight-line code with precompiled `struct`s, so the hot
path pays no per-field interpretation.

Field types: ``int`` (4 bytes), ``long`` (8), ``bool`` (1), ``buffer`` (int length
+ bytes, -1 = None), ``ustring`` (int length + UTF-8, -1 = None), a record class,
or ``("vector", T)`` (int count + items, -1 = None) with T any of these.

The primitives the generated code calls live in `primitives` (compiled with mypyc
when the build could; see setup.py) and are re-exported here.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any, ClassVar

from .primitives import (
    _B,
    _I,
    _Q,
    EncodedStrings,
    ProtocolError,
    _read_vector,
    _write_bool,
    _write_int,
    _write_long,
    _write_ustring_vector,
    _write_vector,
    encoded_strings,
    fields_equal,
    fields_hash,
    fields_repr,
    read_bool,
    read_buffer,
    read_int,
    read_long,
    read_ustring,
    write_buffer,
    write_ustring,
)

# the fixed-width structs, taken from here by protocol.py and wire/keeper.py
from .primitives import INT as INT
from .primitives import LONG as LONG

__all__ = ["EncodedStrings", "ProtocolError", "Record", "encoded_strings", "vector"]


def vector(item: Any) -> tuple[str, Any]:
    return ("vector", item)


def _min_size(t) -> int:
    """Fewest bytes one encoded value of field type `t` can take."""
    if isinstance(t, str):
        return {"int": 4, "long": 8, "bool": 1, "buffer": 4, "ustring": 4}[t]
    if isinstance(t, tuple):
        return 4
    return t._MIN_SIZE


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

    if TYPE_CHECKING:
        # What the generated code gives each subclass, told to the type checker (and so
        # to mypyc, which compiles code that uses records): an __init__ taking the
        # fields, and the fields as attributes. Nothing here exists at run time.
        def __init__(self, *args: Any, **kwargs: Any) -> None: ...

        def __getattr__(self, name: str) -> Any: ...

        def __setattr__(self, name: str, value: Any) -> None: ...

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
        return fields_equal(self, other)

    def __hash__(self) -> int:
        return fields_hash(self)

    def __repr__(self) -> str:
        return fields_repr(self)


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


# the records of the client protocol are generated classes (cli/gen_records.py) with a
# base of their own; a value is a record when it is either kind
from .records import NativeRecord  # noqa: E402 - records.py does not import jute

RECORD_TYPES = (Record, NativeRecord)
