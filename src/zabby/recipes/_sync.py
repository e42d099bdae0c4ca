"""Recipes from blocking code: a recipe object driven on a SyncClient's loop thread.

``SyncRecipe`` wraps an asyncio recipe: each coroutine method becomes a blocking call
run on the SyncClient's loop; plain attributes read through; ``with`` runs the
recipe's ``async with``. User callbacks (DataWatch functions, Election's leader
function, listeners, ``on_state``) run on a thread of the recipe's own, never on the
loop, so they may make blocking client calls.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["SyncRecipe"]


def _is_callback(v: Any) -> bool:
    return callable(v) and not isinstance(v, (type, bytes, str)) and not hasattr(v, "_sync")


class SyncRecipe:
    """The blocking face of one recipe object (``zk.Lock(...)`` on a SyncClient)."""

    def __init__(self, sync_client: Any, cls: type, *args: Any, **kwargs: Any) -> None:
        object.__setattr__(self, "_zk", sync_client)
        object.__setattr__(self, "_executor", None)
        args = tuple(self._cb(a) for a in args)
        kwargs = {k: self._cb(v) for k, v in kwargs.items()}

        async def make() -> Any:
            return cls(sync_client.client, *args, **kwargs)
        recipe = self._run(make())
        object.__setattr__(self, "_r", recipe)
        if getattr(recipe, "_func", None) is not None and hasattr(recipe, "wait_started"):
            self._run(recipe.wait_started())  # kazoo calls the function before returning
        if getattr(recipe, "_obtain_on_create", False):
            self._run(recipe.obtain())  # kazoo's leases try when made: ``if lease:``

    # -------------------------------------------------------------- plumbing
    def _run(self, coro: Any) -> Any:
        loop = self._zk.loop
        if loop is None or not loop.is_running():
            coro.close()
            raise RuntimeError("the SyncClient is not started")
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    def _cb(self, fn: Any) -> Any:
        """A user's blocking callback as a coroutine function that runs it off-loop."""
        if not _is_callback(fn):
            return fn
        if self._executor is None:
            object.__setattr__(self, "_executor", concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="zabby-recipe"))
        executor = self._executor

        @functools.wraps(fn)
        async def wrapper(*args: Any) -> Any:
            return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)
        return wrapper

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._r, name)
        if inspect.iscoroutinefunction(attr):
            @functools.wraps(attr)
            def blocking(*args: Any, **kwargs: Any) -> Any:
                args = tuple(self._cb(a) for a in args)
                kwargs = {k: self._cb(v) for k, v in kwargs.items()}
                return self._run(attr(*args, **kwargs))
            return blocking
        if callable(attr) and name in ("listen", "add_listener", "listen_fault"):
            return lambda fn: self._zk.loop.call_soon_threadsafe(attr, self._cb(fn))
        return attr

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._r, name, value)

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Decorator use (``@zk.DataWatch(path)``): start watching with ``func``."""
        wrapped = self._cb(func)

        async def start() -> None:
            self._r(wrapped)
            await self._r.wait_started()
        self._run(start())
        return func

    def __enter__(self) -> SyncRecipe:
        self._run(self._r.__aenter__())
        return self

    def __exit__(self, *exc: object) -> None:
        self._run(self._r.__aexit__(*exc))

    def __iter__(self) -> Any:
        if hasattr(self._r, "members"):
            return iter(self._run(self._r.members()))
        return iter(self._r)

    def __len__(self) -> int:
        if hasattr(self._r, "members"):
            return len(self._run(self._r.members()))
        if hasattr(self._r, "length"):
            return self._run(self._r.length())
        raise TypeError(f"{type(self._r).__name__} has no length")

    def __bool__(self) -> bool:
        return bool(self._r)

    # kazoo's Counter: ``counter.value`` and ``counter += 1``
    @property
    def value(self) -> Any:
        v = self._r.value
        return self._run(v()) if inspect.iscoroutinefunction(v) else v

    def __iadd__(self, delta: Any) -> SyncRecipe:
        self._run(self._r.add(delta))
        return self

    def __isub__(self, delta: Any) -> SyncRecipe:
        self._run(self._r.add(-delta))
        return self

    def __repr__(self) -> str:
        return f"<sync {self._r!r}>"
