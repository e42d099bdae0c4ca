"""records.py and txn_records.py are generated from record_spec.py and txn_spec.py
(cli/gen_records.py): they must be current, and every generated record must encode and
decode exactly as its jute-built twin."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zabby.cli import gen_records
from zabby.consensus import message_records
from zabby.tree import txn_records
from zabby.wire import records
from zabby.wire.jute import RECORD_TYPES, ProtocolError, Record
from zabby.wire.records import NativeRecord

from .wire_strategies import RECORD_CLASSES, record_strategy

# generated module name -> {record name -> its jute-built twin}
SPEC = {f"zabby.{target.parent.name}.{target.stem}":
        {c.__name__: c for c in gen_records.spec_classes(spec)}
        for spec, target, _ in gen_records.TARGETS}
GENERATED = RECORD_CLASSES + [
    c for mod in (txn_records, message_records) for c in vars(mod).values()
    if isinstance(c, type) and c.__module__ == mod.__name__]


def _twin(cls):
    return SPEC[cls.__module__][cls.__name__]


@pytest.mark.parametrize("spec, target, header", gen_records.TARGETS,
                         ids=lambda v: getattr(v, "name", ""))
def test_generated_files_are_what_the_generator_writes(spec, target, header):
    assert target.read_text() == gen_records.generate(spec, header), (
        f"{target.name} is stale: run `make records` (python -m zabby.cli.gen_records)")


def test_check_says_current():
    assert gen_records.main(["--check"]) == 0


def test_every_spec_record_is_generated_and_nothing_else():
    assert {(c.__module__, c.__name__) for c in GENERATED} == {
        (mod, name) for mod, names in SPEC.items() for name in names}
    assert len(GENERATED) == sum(map(len, SPEC.values()))
    assert all(issubclass(c, NativeRecord) and not issubclass(c, Record) for c in GENERATED)
    assert all(issubclass(c, RECORD_TYPES) for c in GENERATED)


def _spec_type(t):
    if isinstance(t, tuple):
        return (t[0], _spec_type(t[1]))
    return _twin(t) if isinstance(t, type) else t


@pytest.mark.parametrize("cls", GENERATED, ids=lambda c: c.__name__)
def test_tables_match_the_spec(cls):
    twin = _twin(cls)
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
        return _twin(type(v))(*(_to_spec(getattr(v, n)) for n, _ in v.FIELDS))
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
@given(st.sampled_from(GENERATED).flatmap(record_strategy), st.data())
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
