"""zabby.client sits between server and ops (docs/ARCHITECTURE.md): it imports none of
ops, recipes, cli or testing, so the console (ops) and the recipes may use it."""

from __future__ import annotations

import ast
import subprocess
import sys


def test_client_imports_no_upper_layer() -> None:
    code = ("import sys, zabby.client\n"
            "print(sorted({m.split('.')[1] for m in sys.modules if m.startswith('zabby.')}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    loaded = set(ast.literal_eval(out))
    assert not loaded & {"ops", "recipes", "cli", "testing", "bench"}, loaded


def test_unknown_attribute_is_an_attribute_error() -> None:
    """Recipe names are looked up in zabby.recipes on first use; anything else is an
    AttributeError, as usual."""
    import pytest

    from zabby.client import Client, SyncClient

    for cls in (Client, SyncClient):
        zk = cls("127.0.0.1:1")
        with pytest.raises(AttributeError):
            zk.no_such_method  # noqa: B018
        assert not hasattr(zk, "NoSuchRecipe")
