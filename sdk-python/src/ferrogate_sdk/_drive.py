"""Running a chain to completion without a socket (the in-process runner and `testing`)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any, Awaitable, Callable, Coroutine, Optional

from ._http import Fetch

SyncFetch = Callable[[int, Optional[bytes]], Optional[bytes]]

_local = threading.local()


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
    loop: Optional[asyncio.AbstractEventLoop] = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = _local.loop = asyncio.new_event_loop()
    coro: Coroutine[Any, Any, None] = (
        pending if asyncio.iscoroutine(pending) else _await(pending)
    )
    ok = False
    try:
        loop.run_until_complete(coro)
        ok = True
    finally:
        if not ok and loop.is_running():
            loop.stop()
        if not ok:
            _local.loop = None
            with contextlib.suppress(RuntimeError):
                loop.close()
