"""`server` sits below `ops`: nothing under zabby/server imports zabby.ops, so the
request path does not depend on how its figures are shown (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import zabby.server

SERVER_DIR = Path(zabby.server.__file__).parent


def _imports(path: Path) -> list[str]:
    """Every module an `import` or `from ... import` in the file names, made absolute."""
    package = "zabby.server" + "".join(
        "." + p for p in path.relative_to(SERVER_DIR).parent.parts
    )
    here = package  # the package relative imports resolve against
    out: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append(mod)
            out += [f"{mod}.{a.name}" for a in node.names]
    return out


def test_server_modules_import_nothing_from_ops() -> None:
    files = sorted(SERVER_DIR.rglob("*.py"))
    assert files
    bad = [
        f"{f.relative_to(SERVER_DIR)}: {m}"
        for f in files
        for m in _imports(f)
        if m == "zabby.ops" or m.startswith("zabby.ops.")
    ]
    assert bad == []


def test_import_resolution_sees_ops() -> None:
    """The check above would catch a relative import of ops (``from ..ops import x``)."""
    mods = _imports(SERVER_DIR / "core.py")
    assert "zabby.server.connection" in mods
    assert "zabby.tree" in mods


def test_importing_the_server_does_not_import_ops() -> None:
    code = (
        "import sys, zabby.server.core, zabby.server.app, zabby.server.ensemble\n"
        "print(sorted(m for m in sys.modules if m.startswith('zabby.ops')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
