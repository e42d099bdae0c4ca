"""Hypothesis strategies for the wire layer, derived generically from each record's FIELDS."""

from __future__ import annotations

import inspect
from functools import cache

from hypothesis import strategies as st

from zabby.wire import protocol, records
from zabby.wire.jute import RECORD_TYPES, Record
from zabby.wire.protocol import (
    MULTI_OP_BODY,
    MULTI_RESULT_BODY,
    REQUEST_BODY,
    MultiRequest,
    MultiResponse,
)

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
# st.text() never produces lone surrogates (category Cs is excluded by default).
USTRING = st.none() | st.text(max_size=24)
BUFFER = st.none() | st.binary(max_size=48)

# Every concrete record class declared in records.py.
RECORD_CLASSES: list[type[Record]] = sorted(
    (
        cls
        for _, cls in inspect.getmembers(records, inspect.isclass)
        if issubclass(cls, RECORD_TYPES) and cls not in RECORD_TYPES
        and cls.__module__ == records.__name__
    ),
    key=lambda c: c.__name__,
)


@cache
def field_strategy(t) -> st.SearchStrategy:
    if t == "int":
        return INT32
    if t == "long":
        return INT64
    if t == "bool":
        return st.booleans()
    if t == "buffer":
        return BUFFER
    if t == "ustring":
        return USTRING
    if isinstance(t, tuple):
        assert t[0] == "vector", t
        return st.none() | st.lists(field_strategy(t[1]), max_size=4)
    if isinstance(t, type) and issubclass(t, RECORD_TYPES):
        return record_strategy(t)
    raise AssertionError(f"unknown jute field type {t!r}")


@cache
def record_strategy(cls: type[Record]) -> st.SearchStrategy:
    return st.builds(cls, **{name: field_strategy(t) for name, t in cls.FIELDS})


def multi_request_strategy() -> st.SearchStrategy:
    op = st.sampled_from(sorted(MULTI_OP_BODY))
    pair = op.flatmap(lambda o: st.tuples(st.just(o), record_strategy(MULTI_OP_BODY[o])))
    return st.builds(MultiRequest, st.lists(pair, max_size=5))


def multi_response_strategy() -> st.SearchStrategy:
    def result(o):
        body_type = MULTI_RESULT_BODY[o]
        body = st.none() if body_type is None else record_strategy(body_type)
        return st.tuples(st.just(o), INT32, body)

    op = st.sampled_from(sorted(MULTI_RESULT_BODY))
    return st.builds(MultiResponse, st.lists(op.flatmap(result), max_size=5))


def body_strategy(body_type) -> st.SearchStrategy:
    if body_type is MultiRequest:
        return multi_request_strategy()
    if body_type is MultiResponse:
        return multi_response_strategy()
    return record_strategy(body_type)


def request_strategy() -> st.SearchStrategy:
    """(op, body) for every opcode in REQUEST_BODY."""
    op = st.sampled_from(sorted(REQUEST_BODY))
    return op.flatmap(lambda o: st.tuples(st.just(o), body_strategy(REQUEST_BODY[o])))


def encoded(obj) -> bytes:
    out = bytearray()
    obj.encode(out)
    return bytes(out)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    """Split data at the given cut points (any ints; reduced modulo len+1)."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks, prev = [], 0
    for p in points + [len(data)]:
        chunks.append(data[prev:p])
        prev = p
    return chunks


__all__ = [
    "BUFFER",
    "INT32",
    "INT64",
    "RECORD_CLASSES",
    "USTRING",
    "body_strategy",
    "chunked",
    "encoded",
    "field_strategy",
    "multi_request_strategy",
    "multi_response_strategy",
    "protocol",
    "record_strategy",
    "request_strategy",
]
