"""Build hook: compile the request path's modules with mypyc, or install pure Python.

Everything else about the package is declared in pyproject.toml. `pip install -e .`
(what `make test` / `make serve` run) and `pip install .` both come through here:

- mypyc (pinned in pyproject.toml's [build-system].requires) compiles COMPILED below
  into C extensions that sit next to the .py files (in editable mode, in src/zabby/).
- `src/zabby/_build.json` records the sha256 of each module's source as compiled, so
  `zabby/_compiled.py` can tell at import time that a .py was edited after the build
  and load the pure-Python modules instead of a stale .so.
- If mypyc or the C compiler fails (no gcc, no Python headers, a type error), or
  ZABBY_NO_COMPILE=1 is set, the install still succeeds with pure Python and says so.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import sys
import time
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"



def _compiled_list() -> list[str]:
    """COMPILED_MODULES from src/zabby/_compiled.py (the one list), as paths under src/.

    The request path, as the issue-5/14 profiles found it: jute's primitives, the
    request/reply framing and dispatch, the tree's prepare/apply; then (measured one
    module at a time, docs/ARCHITECTURE.md) the znode's stat, ACL checks, watch
    triggers, session touches and the latency summaries; then the client protocol's
    records, which cli/gen_records.py writes out as plain classes (records.py) so that
    they compile into native ones; then the server's classes (core, pipeline, connection)
    and an ensemble member's (ensemble, peers, durability, the Zab peer and its message
    codec). Not jute.py: a record class declared with it is built by a metaclass from code
    made at import time, which mypyc cannot compile (the generated records have a native
    base, records.NativeRecord, instead). docs/ARCHITECTURE.md, "Compiled modules".
    """
    tree = ast.parse((SRC / "zabby" / "_compiled.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "COMPILED_MODULES":
            names = ast.literal_eval(node.value)
            return [n.replace(".", "/") + ".py" for n in names]
    raise RuntimeError("COMPILED_MODULES not found in src/zabby/_compiled.py")


# One mypyc group: the modules call each other natively, so they are used (or not)
# all together (zabby/_compiled.py falls back for all of them).
COMPILED = _compiled_list()
MANIFEST = "zabby/_build.json"


def _say(msg: str) -> None:
    # pip shows a build backend's output only with -v; stderr of a failed step is kept
    print(f"zabby setup: {msg}", file=sys.stderr, flush=True)


def _module_name(rel: str) -> str:
    return rel[: -len(".py")].replace("/", ".")


def _hashes() -> dict[str, str]:
    return {
        _module_name(rel): hashlib.sha256((SRC / rel).read_bytes()).hexdigest()
        for rel in COMPILED
    }


# why there is nothing to compile, for _build.json (zabby --version shows it)
_not_compiled = ""


def _skip(reason: str) -> list:
    global _not_compiled
    _not_compiled = reason
    _say(f"{reason}: installing pure Python")
    return []


def _mypyc_extensions() -> list:
    if os.environ.get("ZABBY_NO_COMPILE", "") not in ("", "0"):
        return _skip("ZABBY_NO_COMPILE is set")
    try:
        from mypyc.build import mypycify
    except ImportError as e:
        return _skip(f"mypyc is not available ({e})")
    old = os.getcwd()
    os.chdir(SRC)  # module names follow the paths given, so give them from src/
    try:
        return mypycify(
            COMPILED + ["--ignore-missing-imports", "--follow-imports=silent"],
            opt_level="3",
            # one C file per module: gcc -O3 on the single file of 26 modules took
            # 117 of the build's 130 s, split 60 of 73 s (the run time did not move
            # measurably: docs/ARCHITECTURE.md, "Compiled modules")
            multi_file=True,
            group_name="zabby",  # the shared library: zabby__mypyc.*.so
            target_dir=str(HERE / "build" / "mypyc"),
        )
    except BaseException as e:  # mypyc exits (SystemExit) on a type error
        return _skip(f"mypyc could not compile the modules ({e!r})")
    finally:
        os.chdir(old)


# Hand-written C, one small extension (issue 14 item 2 allows one where the compiler
# cannot do the job): the txn log's writer thread, which must run without the GIL
# (src/zabby/server/native_log.py; its Python twin is the writer child).
NATIVE = ["zabby._logio"]


def _native_extensions() -> list:
    if os.environ.get("ZABBY_NO_COMPILE", "") not in ("", "0"):
        return []
    from setuptools import Extension

    return [Extension(name, [f"src/{name.replace('.', '/')}.c"], extra_compile_args=["-O2"])
            for name in NATIVE]


def _compile_in_parallel(compiler, jobs: int) -> None:
    """Make `compiler.compile` run one gcc per source file, `jobs` at a time (distutils
    compiles an extension's sources one after another; mypyc's multi_file group is
    one extension of 27 C files)."""
    serial = compiler.compile
    if jobs < 2:
        return

    def compile(sources, output_dir=None, macros=None, include_dirs=None, debug=0,
                extra_preargs=None, extra_postargs=None, depends=None):
        def one(src):
            return serial([src], output_dir, macros, include_dirs, debug, extra_preargs,
                          extra_postargs, depends)

        if len(sources) < 2:
            return serial(sources, output_dir, macros, include_dirs, debug, extra_preargs,
                          extra_postargs, depends)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(jobs) as pool:  # each thread waits on its gcc process
            return [obj for objs in pool.map(one, sources) for obj in objs]

    compiler.compile = compile


class BuildExt(build_ext):
    """build_ext that falls back to pure Python instead of failing the install."""

    def build_extensions(self) -> None:
        _compile_in_parallel(self.compiler, os.cpu_count() or 1)
        super().build_extensions()

    def run(self) -> None:
        # setuptools clears `inplace` while it builds (editable installs set it) and
        # copies the results into src/ afterwards; a failed build never restores it
        inplace = self.inplace
        if inplace:
            self._remove_strays()
        if not self.extensions:
            self._finish(inplace, None, _not_compiled or "nothing to compile")
            return
        hashes = _hashes()
        try:
            super().run()
        except Exception as e:  # no compiler, no headers, a link error...
            self.inplace = inplace
            _say(f"compiling the mypyc modules failed ({e!r}): installing pure Python")
            brief = f"{type(e).__name__}: {e}"
            if len(brief) > 120:
                brief = brief[:117] + "..."
            self._finish(inplace, None, f"compiling failed ({brief})")
            return
        self.inplace = inplace
        _say("compiled with mypyc: " + ", ".join(hashes))
        self._finish(inplace, hashes)

    def _finish(self, inplace: bool, hashes: dict[str, str] | None, failed: str = "") -> None:
        if hashes is None:
            # nothing compiled: an earlier build's extensions would be stale now
            if inplace:
                for old in [*SRC.glob("zabby__mypyc.*"), *self._extension_files()]:
                    old.unlink()
            else:
                for ext in self.extensions:
                    path = Path(self.get_ext_fullpath(ext.name))
                    if path.exists():
                        path.unlink()
            self.extensions = []
        self._write_manifest(hashes, failed)

    def _remove_strays(self) -> None:
        """Delete extensions of modules no longer in COMPILED (an editable install's
        src/ keeps them): Python would still prefer such a module's .so to its .py, and
        it would ask the new group library for an init function it no longer has."""
        keep = {SRC / rel for rel in COMPILED}
        native = {SRC / (n.replace(".", "/") + ".py") for n in NATIVE}
        for p in (SRC / "zabby").rglob("*"):
            stem = p.with_name(p.name.split(".")[0] + ".py")
            if p.suffix in (".so", ".pyd") and stem not in keep and stem not in native:
                _say(f"removing {p.relative_to(SRC)}: no longer compiled")
                p.unlink()

    def _extension_files(self) -> list[Path]:
        out = []
        for rel in COMPILED + [n.replace(".", "/") + ".py" for n in NATIVE]:
            src = SRC / rel
            out += [p for p in src.parent.glob(src.stem + ".*") if p.suffix in (".so", ".pyd")]
        return out

    def get_outputs(self) -> list[str]:
        return [*super().get_outputs(), self._manifest_path()]

    def _root(self) -> Path:
        return SRC if self.inplace else Path(self.build_lib)

    def _manifest_path(self) -> str:
        return str(self._root() / MANIFEST)

    def _write_manifest(self, hashes: dict[str, str] | None, failed: str = "") -> None:
        path = Path(self._manifest_path())
        path.parent.mkdir(parents=True, exist_ok=True)
        if hashes is None:  # no build: nothing compiled to vouch for, only why
            path.write_text(json.dumps({"failed": failed, "modules": {}}, indent=1) + "\n")
            return
        try:
            import mypy.version

            version = mypy.version.__version__
        except ImportError:  # pragma: no cover - mypyc imports it
            version = "?"
        info = {"compiler": f"mypyc {version}", "built": int(time.time()), "modules": hashes}
        path.write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")


# the C extension only with the mypyc group: an install is compiled or pure Python
_MYPYC = _mypyc_extensions()
setup(ext_modules=_MYPYC + (_native_extensions() if _MYPYC else []),
      cmdclass={"build_ext": BuildExt})
