"""The plain-int constants in `zabby.wire.constants` (what the request path compares,
folded into the compiled code by mypyc) must equal the enum members they stand for:
a wrong one would answer with a wrong error code or apply the wrong op."""

from __future__ import annotations

import pytest

from zabby.wire import constants
from zabby.wire.constants import CreateMode, Err, Op, Perm

_ENUMS = {"OP_": Op, "ERR_": Err, "PERM_": Perm, "CM_": CreateMode}
_PLAIN = sorted(
    name for name in vars(constants) if any(name.startswith(p) for p in _ENUMS)
)


def test_there_are_plain_constants_for_every_kind():
    assert {p for p in _ENUMS if any(n.startswith(p) for n in _PLAIN)} == set(_ENUMS)


@pytest.mark.parametrize("name", _PLAIN)
def test_each_plain_constant_is_its_member_value(name):
    prefix = next(p for p in _ENUMS if name.startswith(p))
    value = getattr(constants, name)
    assert type(value) is int  # a plain int, not the member (mypyc folds only literals)
    assert value == _ENUMS[prefix][name[len(prefix):]].value
