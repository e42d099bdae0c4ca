"""Which of zabby's modules run compiled (mypyc), and the way back to pure Python.

setup.py compiles COMPILED_MODULES with mypyc into C extensions that sit next to
their .py files, and records each source's sha256 in `_build.json`. Python prefers
an extension to a .py of the same name, so two things could go wrong silently, and
`select()` (run once by `zabby/__init__.py`, before any of them is imported) handles
both:

- ZABBY_PURE_PYTHON=1 in the environment: a meta-path finder serves the .py of every
  compiled module, so the whole process runs pure Python.
- A stale build: someone edited a .py after it was compiled (or the extensions have
  no build record). The stale .so would shadow the edit; instead the finder serves
  every compiled module's .py and one RuntimeWarning says so. All of them, not just
  the edited one: the compiled modules call each other natively (early binding), so
  a compiled module would keep calling the stale code of another.

`compiled_modules()` says what is in use; `build_info()` says it in one line (for
`zabby --version` and `zabby serve`'s startup log).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import json
import os
import sys
import warnings
from pathlib import Path

__all__ = ["COMPILED_MODULES", "ENV_PURE", "build_info", "compiled_modules", "select"]

# setup.py reads this tuple (ast.literal_eval): keep it a literal
COMPILED_MODULES = (
    "zabby.wire.primitives",
    "zabby.wire.protocol",
    "zabby.tree.datatree",
    "zabby.tree.znode",
    "zabby.tree.acl",
    "zabby.server.session",
    "zabby.server.metrics",
    "zabby.tree.watches",
    "zabby.wire.records",
    "zabby.tree.txn_records",
    "zabby.consensus.message_records",
    "zabby.storage.snapcodec",
    "zabby.tree.snapshot",
    "zabby.tree.digest",
    "zabby.tree.txn",
    "zabby.storage.logscan",
    "zabby.tree.paths",
    "zabby.server.latency",
    "zabby.server.connection",
    "zabby.server.pipeline",
    "zabby.server.core",
    "zabby.consensus.peer",
    "zabby.server.durability",
    "zabby.server.peers",
    "zabby.server.ensemble",
    "zabby.consensus.messages",
    "zabby.storage.txnlog",
    "zabby.server.native_log",
)
ENV_PURE = "ZABBY_PURE_PYTHON"
_PKG_DIR = Path(__file__).resolve().parent
MANIFEST = _PKG_DIR / "_build.json"

# set by select(): why the pure-Python modules are in use ("" when compiled ones are)
_reason = ""
_compiler = ""
_finder: PureFinder | None = None


class PureFinder:
    """A meta-path finder that loads the given modules from their .py files."""

    def __init__(self, sources: dict[str, Path]) -> None:
        self.sources = sources

    def find_spec(self, fullname, path=None, target=None):
        src = self.sources.get(fullname)
        if src is None:
            return None
        return importlib.util.spec_from_file_location(fullname, src)

    def invalidate_caches(self) -> None:
        pass


def source_path(name: str, pkg_dir: Path = _PKG_DIR) -> Path:
    """zabby.a.b -> <package dir>/a/b.py"""
    return pkg_dir.joinpath(*name.split(".")[1:]).with_suffix(".py")


def extension_path(name: str, pkg_dir: Path = _PKG_DIR) -> Path | None:
    """The compiled module's file next to its source, if there is one."""
    base = source_path(name, pkg_dir).with_suffix("")
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        p = base.with_name(base.name + suffix)
        if p.exists():
            return p
    return None


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stale_modules(
    names=COMPILED_MODULES, pkg_dir: Path = _PKG_DIR, manifest: Path | None = None
) -> tuple[list[str], list[str], str]:
    """(modules with an extension, those of them whose build record does not match
    their source, the compiler named by the record)."""
    built = [n for n in names if extension_path(n, pkg_dir) is not None]
    if not built:
        return [], [], ""
    try:
        info = json.loads((manifest or pkg_dir / "_build.json").read_text())
        hashes = info["modules"]
        compiler = str(info.get("compiler", ""))
    except (OSError, ValueError, KeyError, TypeError):
        return built, list(built), ""
    stale = [n for n in built if hashes.get(n) != file_hash(source_path(n, pkg_dir))]
    return built, stale, compiler


def _build_failure() -> str:
    """Why setup.py installed pure Python, as it recorded it ("" if it did not)."""
    try:
        failed = json.loads(MANIFEST.read_text()).get("failed", "")
    except (OSError, ValueError, AttributeError):
        return ""
    return f"not compiled: {failed}" if failed else ""


def _pure_requested() -> bool:
    return os.environ.get(ENV_PURE, "").strip() not in ("", "0")


def select() -> None:
    """Decide once per process, before the modules are imported, which ones load."""
    global _reason, _compiler, _finder
    if _finder is not None or _compiler:
        return
    if _pure_requested():
        _reason = f"{ENV_PURE}=1"
    else:
        built, stale, compiler = stale_modules()
        if not built:
            _reason = _build_failure() or "not compiled"
            return
        if not stale:
            _compiler = compiler
            return
        _reason = "stale build: " + ", ".join(stale)
        warnings.warn(
            f"zabby: the compiled modules are older than their sources ({', '.join(stale)} "
            f"changed since the build, or it left no record): running all of "
            f"{', '.join(COMPILED_MODULES)} as pure Python. Rebuild with "
            f"`pip install -e .` (or `make test`, which does it).",
            RuntimeWarning,
            stacklevel=3,
        )
    _finder = PureFinder({n: source_path(n) for n in COMPILED_MODULES})
    sys.meta_path.insert(0, _finder)


def compiled_modules() -> list[str]:
    """The modules of COMPILED_MODULES that this process runs compiled (imports them)."""
    out = []
    for name in COMPILED_MODULES:
        mod = importlib.import_module(name)
        if isinstance(getattr(mod, "__loader__", None), importlib.machinery.ExtensionFileLoader):
            out.append(name)
    return out


def build_info() -> str:
    """One line: compiled with what, or pure Python and why."""
    compiled = compiled_modules()
    if compiled and len(compiled) == len(COMPILED_MODULES):
        return f"compiled ({_compiler or 'mypyc'}): {', '.join(compiled)}"
    if compiled:  # not something select() produces; say it rather than hide it
        return f"partly compiled: {', '.join(compiled)}"
    return f"pure Python ({_reason or 'not compiled'})"
