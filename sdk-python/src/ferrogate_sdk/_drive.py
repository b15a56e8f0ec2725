"""Running a chain to completion without a socket (the in-process runner and `testing`)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any, Awaitable, Callable, Coroutine, Optional

from ._http import Fetch

SyncFetch = Callable[[int, Optional[bytes]], Optional[bytes]]

_local = threading.local()


class _LoopHolder:
    """Owns a thread's loop and closes it when the thread's locals go away (thread exit)."""

    __slots__ = ("loop",)

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            if not self.loop.is_running():
                self.loop.close()


def async_fetch(fetch: Optional[SyncFetch]) -> Fetch:
    """An awaitable fetch around a blocking one (``None``: the gateway has nothing)."""

    async def afetch(kind: int, name: Optional[bytes]) -> Optional[bytes]:
        return None if fetch is None else fetch(kind, name)

    return afetch


async def _await(pending: Awaitable[None]) -> None:
    await pending


def run(pending: Awaitable[None]) -> None:
    """Finish an asynchronous chain on this thread's own event loop (one per thread, created on
    first use, never given signal handlers). A loop left unusable by an exception thrown into the
    thread (a timeout) is replaced."""
    holder: Optional[_LoopHolder] = getattr(_local, "holder", None)
    if holder is None or holder.loop.is_closed():
        holder = _local.holder = _LoopHolder()
    loop = holder.loop
    coro: Coroutine[Any, Any, None] = pending if asyncio.iscoroutine(pending) else _await(pending)
    ok = False
    try:
        loop.run_until_complete(coro)
        ok = True
    finally:
        if not ok:  # an exception may have left the loop unusable: the next call makes another
            _local.holder = None
