"""Source patterns that type-check but break once mypyc compiles a module.

mypyc gives each local name one C type per function: the type of its first binding.
`except A as e: ...` followed by `except B as e: ...` in one function passes mypy, but
when compiled the second handler raises TypeError ("A object expected; got B") instead
of handling B: a SASL refusal on the quorum port (peers.py) did exactly that once
peers.py was compiled. The test suite finds such a handler only if it runs it, so this
checks every compiled module's source for the pattern.
"""

from __future__ import annotations

import ast

from zabby import _compiled


def _handlers_rebinding_a_name(tree: ast.AST) -> list[str]:
    found = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        first: dict[str, str] = {}
        for node in ast.walk(fn):
            if isinstance(node, ast.ExceptHandler) and node.name and node.type is not None:
                caught = ast.unparse(node.type)
                seen = first.setdefault(node.name, caught)
                if seen != caught:
                    found.append(f"{fn.name} line {node.lineno}: `{node.name}` is a {seen} "
                                 f"first, then a {caught}")
    return found


def test_no_compiled_function_binds_one_name_to_two_exception_types():
    bad = {}
    for name in _compiled.COMPILED_MODULES:
        path = _compiled.source_path(name)
        found = _handlers_rebinding_a_name(ast.parse(path.read_text(), str(path)))
        if found:
            bad[name] = found
    assert not bad, f"rename the later handlers' names: {bad}"


def test_the_check_finds_the_pattern():
    src = ("def f():\n"
           "    try:\n        pass\n    except KeyError as e:\n        pass\n"
           "    try:\n        pass\n    except OSError as e:\n        pass\n")
    assert _handlers_rebinding_a_name(ast.parse(src)) == [
        "f line 8: `e` is a KeyError first, then a OSError"]
    same = src.replace("OSError", "KeyError")
    assert _handlers_rebinding_a_name(ast.parse(same)) == []
