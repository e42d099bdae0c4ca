"""Coordination recipes on :class:`zabby.client.Client` (and, blocking, on SyncClient).

Every recipe is an asyncio class taking the client first, with kazoo's names and
arguments; ``zk.Lock(path, ident)`` etc. make them from a client (the mixins in
:mod:`zabby.recipes.methods`, which the client classes inherit). Each module's
docstring states the recipe's guarantee and what it does on connection loss and on
session expiry.

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
from .methods import RECIPE_NAMES, RecipeMethods, SyncRecipeMethods, recipe_method
from .partitioner import PartitionState, SetPartitioner
from .party import Party, ShallowParty
from .queue import LockingQueue, Queue
from .watchers import ChildrenWatch, DataWatch
from .workflow import Task, TaskLost, Workflow

__all__ = [
    "RECIPE_NAMES", "Barrier", "CancelledError", "ChildrenWatch", "Config",
    "CountDownLatch", "Counter", "DataWatch", "DoubleBarrier", "Election", "LeaderLatch", "Lease", "Lock",
    "LockTimeout", "LockingQueue", "MultiLease", "NodeData", "PartitionState", "Party",
    "Queue", "ReadLock", "RecipeMethods", "Semaphore", "SetPartitioner", "ShallowParty",
    "SyncRecipe", "SyncRecipeMethods", "Task", "TaskLost", "TreeCache", "TreeEvent",
    "Workflow", "WriteLock", "recipe_method", "sync_recipe",
]

def sync_recipe(sync_client: Any, cls: type, *args: Any, **kwargs: Any) -> SyncRecipe:
    """``sync_recipe(zk, Lock, "/path", "me")``: a blocking recipe on a SyncClient."""
    return SyncRecipe(sync_client, cls, *args, **kwargs)
