"""``zk.Lock(...)``, ``zk.Election(...)``...: the recipe factories as client methods.

:class:`RecipeMethods` (for ``Client``) and :class:`SyncRecipeMethods` (for
``SyncClient``) are mixins the client classes inherit. This module imports nothing
at load time (the recipe classes are looked up when a factory is called), so
``zabby.client`` can inherit them without an import cycle.

zabby.client keeps to its layer (it imports no upper layer at load time, which a test
checks), so it can instead look the factories up on first use, with no import at
load time::

    def __getattr__(self, name):  # in Client (sync=False) and SyncClient (sync=True)
        from zabby.recipes.methods import recipe_method
        return recipe_method(self, name, sync=False)
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["RECIPE_NAMES", "RecipeMethods", "SyncRecipeMethods", "recipe_method"]

# kazoo's factory names -> our class names (kazoo's NonBlockingLease is our Lease)
RECIPE_NAMES: dict[str, str] = {
    "Barrier": "Barrier", "ChildrenWatch": "ChildrenWatch", "Config": "Config",
    "CountDownLatch": "CountDownLatch", "Counter": "Counter", "DataWatch": "DataWatch",
    "DoubleBarrier": "DoubleBarrier", "Election": "Election", "LeaderLatch": "LeaderLatch",
    "Lease": "Lease", "NonBlockingLease": "Lease", "MultiNonBlockingLease": "MultiLease",
    "Lock": "Lock", "LockingQueue": "LockingQueue", "Party": "Party", "Queue": "Queue",
    "ReadLock": "ReadLock", "Semaphore": "Semaphore", "SetPartitioner": "SetPartitioner",
    "ShallowParty": "ShallowParty", "TreeCache": "TreeCache", "Workflow": "Workflow",
    "WriteLock": "WriteLock",
}


def _recipe(cls_name: str) -> Any:
    return getattr(importlib.import_module("zabby.recipes"), cls_name)


def _factory(name: str, cls_name: str, sync: bool) -> Any:
    if sync:
        def make(self: Any, *args: Any, **kwargs: Any) -> Any:
            return _recipe("SyncRecipe")(self, _recipe(cls_name), *args, **kwargs)
        make.__doc__ = (f"A blocking :class:`zabby.recipes.{cls_name}` on this client "
                        "(its coroutines become blocking calls).")
    else:
        def make(self: Any, *args: Any, **kwargs: Any) -> Any:
            return _recipe(cls_name)(self, *args, **kwargs)
        make.__doc__ = f"A :class:`zabby.recipes.{cls_name}` on this client."
    make.__name__ = make.__qualname__ = name
    return make


class RecipeMethods:
    """Mixin for :class:`zabby.client.Client`: ``zk.Lock(path, identifier)``, ..."""


class SyncRecipeMethods:
    """Mixin for :class:`zabby.client.SyncClient`: the same names, blocking recipes."""


for _name, _cls in RECIPE_NAMES.items():
    setattr(RecipeMethods, _name, _factory(_name, _cls, sync=False))
    setattr(SyncRecipeMethods, _name, _factory(_name, _cls, sync=True))


def recipe_method(client: Any, name: str, sync: bool) -> Any:
    """``client.<name>`` for a recipe name (``Lock``, ``Election``, ...), bound to
    ``client``; AttributeError for any other name (for a client's ``__getattr__``)."""
    if name not in RECIPE_NAMES:
        raise AttributeError(f"{type(client).__name__!r} object has no attribute {name!r}")
    methods = SyncRecipeMethods if sync else RecipeMethods
    return getattr(methods, name).__get__(client, type(client))
