"""records.py is generated from record_spec.py (wire/gen_records.py): it must be current,
and every generated record must encode and decode exactly as its jute-built twin."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zabby.wire import gen_records, records
from zabby.wire.jute import RECORD_TYPES, ProtocolError, Record
from zabby.wire.records import NativeRecord

from .wire_strategies import RECORD_CLASSES, record_strategy

SPEC = {c.__name__: c for c in gen_records._spec_classes()}


def test_records_py_is_what_the_generator_writes():
    assert gen_records.TARGET.read_text() == gen_records.generate(), (
        "records.py is stale: run `make records` (python -m zabby.wire.gen_records)")
    assert gen_records.main(["--check"]) == 0


def test_every_spec_record_is_generated_and_nothing_else():
    generated = {c.__name__ for c in RECORD_CLASSES}
    assert generated == set(SPEC)
    assert all(issubclass(c, NativeRecord) and not issubclass(c, Record)
               for c in RECORD_CLASSES)
    assert all(issubclass(c, RECORD_TYPES) for c in RECORD_CLASSES)


def _spec_type(t):
    if isinstance(t, tuple):
        return (t[0], _spec_type(t[1]))
    return SPEC[t.__name__] if isinstance(t, type) else t


@pytest.mark.parametrize("cls", RECORD_CLASSES, ids=lambda c: c.__name__)
def test_tables_match_the_spec(cls):
    twin = SPEC[cls.__name__]
    assert [(n, _spec_type(t)) for n, t in cls.FIELDS] == list(twin.FIELDS)
    assert cls._MIN_SIZE == twin._MIN_SIZE
    # the defaults too: a record built with no arguments encodes alike (or, with a
    # record field left None, fails alike)
    assert _encoded(cls()) == _encoded(twin())


def _encoded(rec):
    try:
        return rec.to_bytes()
    except (ValueError, TypeError, AttributeError, OverflowError) as e:
        return type(e)


def _to_spec(v):
    """The same value with every generated record replaced by its jute-built twin."""
    if isinstance(v, NativeRecord):
        return SPEC[type(v).__name__](*(_to_spec(getattr(v, n)) for n, _ in v.FIELDS))
    if isinstance(v, list):
        return [_to_spec(x) for x in v]
    return v


def _fields(v):
    if isinstance(v, RECORD_TYPES):
        return (type(v).__name__, tuple(_fields(getattr(v, n)) for n, _ in v.FIELDS))
    if isinstance(v, list):
        return [_fields(x) for x in v]
    return v


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(RECORD_CLASSES).flatmap(record_strategy), st.data())
def test_generated_and_jute_records_agree_byte_for_byte(rec, data):
    twin = _to_spec(rec)
    wire = _encoded(rec)
    assert _encoded(twin) == wire  # a value the encoding cannot carry fails alike
    if not isinstance(wire, bytes):
        return
    cls, tcls = type(rec), type(twin)
    back, end = cls.decode_from(wire, 0)
    tback, tend = tcls.decode_from(wire, 0)
    assert end == tend == len(wire)
    assert _fields(back) == _fields(tback)
    assert back == rec.decode(wire) and hash(back) == hash(cls.decode(wire))
    assert repr(back) == repr(tback)
    # every truncation is refused alike (both raise ProtocolError, or both decode)
    cut = data.draw(st.integers(0, max(0, len(wire) - 1)), label="cut")
    outcomes = []
    for c in (cls, tcls):
        try:
            r, p = c.decode_from(wire[:cut], 0)
            outcomes.append((_fields(r), p))
        except ProtocolError:
            outcomes.append("ProtocolError")
    assert outcomes[0] == outcomes[1]


def test_equality_is_by_type_and_fields():
    a = records.Stat(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
    assert a == records.Stat(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
    assert a != records.Stat(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12)
    assert records.PathRequest("/a") != records.PathResponse("/a")  # same fields, other type
    assert {records.Id("world", "anyone"), records.Id("world", "anyone")} == {
        records.Id("world", "anyone")}
    assert repr(records.Id("ip", "1.2.3.4")) == "Id(scheme='ip', id='1.2.3.4')"
