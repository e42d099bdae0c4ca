"""zabby: a coordination service that speaks Apache ZooKeeper's client protocol."""

from ._compiled import build_info, compiled_modules, select

__version__ = "0.1.0"
__all__ = ["__version__", "build_info", "compiled_modules"]

# Before any compiled module is imported: pure Python if ZABBY_PURE_PYTHON=1 or the
# build is older than its sources (see _compiled.py).
select()
