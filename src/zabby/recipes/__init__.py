"""Coordination recipes on :class:`zabby.client.Client` (and, blocking, on SyncClient).

Every recipe is an asyncio class taking the client first, with kazoo's names and
arguments; ``zk.Lock(path, ident)`` etc. make them from a client (see
:class:`RecipeMethods`). Each module's docstring states the recipe's guarantee and
what it does on connection loss and on session expiry.

    async with zk.Lock("/locks/db", "worker-1"):
        ...
"""

from __future__ import annotations

from typing import Any

from ._sync import SyncRecipe
from ._util import CancelledError, LockTimeout
from .barrier import Barrier, CountDownLatch, DoubleBarrier
from .cache import NodeData, TreeCache, TreeEvent
from .config import Config
from .counter import Counter
from .election import Election, LeaderLatch
from .lease import Lease, MultiLease
from .lock import Lock, ReadLock, Semaphore, WriteLock
from .partitioner import PartitionState, SetPartitioner
from .party import Party, ShallowParty
from .queue import LockingQueue, Queue
from .watchers import ChildrenWatch, DataWatch
from .workflow import Task, TaskLost, Workflow

__all__ = [
    "Barrier", "CancelledError", "ChildrenWatch", "Config", "CountDownLatch", "Counter",
    "DataWatch", "DoubleBarrier", "Election", "LeaderLatch", "Lease", "Lock",
    "LockTimeout", "LockingQueue", "MultiLease", "NodeData", "PartitionState", "Party",
    "Queue", "ReadLock", "RecipeMethods", "Semaphore", "SetPartitioner", "ShallowParty",
    "SyncRecipe", "SyncRecipeMethods", "Task", "TaskLost", "TreeCache", "TreeEvent",
    "Workflow", "WriteLock", "sync_recipe",
]

# kazoo's factory names -> our classes (kazoo's NonBlockingLease = our Lease)
RECIPES: dict[str, type] = {
    "Barrier": Barrier, "ChildrenWatch": ChildrenWatch, "Config": Config,
    "CountDownLatch": CountDownLatch, "Counter": Counter, "DataWatch": DataWatch,
    "DoubleBarrier": DoubleBarrier, "Election": Election, "LeaderLatch": LeaderLatch,
    "Lease": Lease, "NonBlockingLease": Lease, "MultiNonBlockingLease": MultiLease,
    "Lock": Lock, "LockingQueue": LockingQueue, "Party": Party, "Queue": Queue,
    "ReadLock": ReadLock, "Semaphore": Semaphore, "SetPartitioner": SetPartitioner,
    "ShallowParty": ShallowParty, "TreeCache": TreeCache, "Workflow": Workflow,
    "WriteLock": WriteLock,
}


def _factory(name: str, cls: type, sync: bool) -> Any:
    if sync:
        def make(self: Any, *args: Any, **kwargs: Any) -> Any:
            return SyncRecipe(self, cls, *args, **kwargs)
        make.__doc__ = f"A blocking :class:`zabby.recipes.{cls.__name__}` on this client."
    else:
        def make(self: Any, *args: Any, **kwargs: Any) -> Any:
            return cls(self, *args, **kwargs)
        make.__doc__ = f"A :class:`zabby.recipes.{cls.__name__}` on this client."
    make.__name__ = make.__qualname__ = name
    return make


class RecipeMethods:
    """Mixin for :class:`zabby.client.Client`: ``zk.Lock(...)``, ``zk.Election(...)``..."""


class SyncRecipeMethods:
    """Mixin for :class:`zabby.client.SyncClient`: the same names, blocking recipes."""


for _name, _cls in RECIPES.items():
    setattr(RecipeMethods, _name, _factory(_name, _cls, sync=False))
    setattr(SyncRecipeMethods, _name, _factory(_name, _cls, sync=True))


def sync_recipe(sync_client: Any, cls: type, *args: Any, **kwargs: Any) -> SyncRecipe:
    """``sync_recipe(zk, Lock, "/path", "me")``: a blocking recipe on a SyncClient."""
    return SyncRecipe(sync_client, cls, *args, **kwargs)
