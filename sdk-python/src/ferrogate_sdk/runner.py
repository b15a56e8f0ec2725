"""The socket runner: ``python -m ferrogate_sdk.runner [PLUGINS...]``.

Also installed as the console script ``ferrogate-python-runner``.

Plugins come from the command line and the environment:

* positional arguments: a directory (every ``*.py`` in it except ``_*`` and ``test_*``), a
  ``.py`` file, or a module name;
* ``--dir DIR`` / ``--module NAME`` (repeatable), the same explicitly;
* ``FERROGATE_PLUGIN_PATHS`` (directories or files separated by ``os.pathsep``) and
  ``FERROGATE_PLUGIN_MODULES`` (module names separated by commas).

The gateway sets ``APISIX_LISTEN_ADDRESS=unix:/path.sock`` (required) and
``APISIX_CONF_EXPIRE_TIME`` (seconds, default 3600). The socket is replaced on start and removed
on SIGTERM or SIGINT. Logs go to stderr (``-v`` for debug, ``-q`` for warnings only).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import List, Optional, Sequence

from ._loader import load_plugins
from ._plugin import default_registry
from ._server import serve, socket_path


def _parse(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m ferrogate_sdk.runner",
        description="Serve Python plugins to Ferrogate or APISIX over the ext-plugin protocol.",
    )
    p.add_argument("plugins", nargs="*", help="plugin directory, .py file or module name")
    p.add_argument("--dir", action="append", default=[], help="plugin directory or file")
    p.add_argument("--module", action="append", default=[], help="plugin module name")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    return p.parse_args(argv)


def _split(args: argparse.Namespace) -> tuple[List[str], List[str]]:
    paths: List[str] = list(args.dir)
    modules: List[str] = list(args.module)
    for item in args.plugins:
        if os.path.exists(item) or item.endswith(".py") or os.sep in item:
            paths.append(item)
        else:
            modules.append(item)
    env_paths = os.environ.get("FERROGATE_PLUGIN_PATHS", "")
    paths.extend(p for p in env_paths.split(os.pathsep) if p)
    env_modules = os.environ.get("FERROGATE_PLUGIN_MODULES", "")
    modules.extend(m.strip() for m in env_modules.split(",") if m.strip())
    return paths, modules


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parse(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    log = logging.getLogger("ferrogate_sdk.runner")
    try:
        path = socket_path(os.environ.get("APISIX_LISTEN_ADDRESS", ""))
        expire = float(os.environ.get("APISIX_CONF_EXPIRE_TIME") or 3600)
        if expire <= 0:
            raise ValueError("APISIX_CONF_EXPIRE_TIME must be positive")
    except ValueError as e:
        log.error("%s", e)
        return 2
    paths, modules = _split(args)
    try:
        load_plugins(paths, modules)
    except Exception:
        log.exception("loading the plugins failed")
        return 1
    if not len(default_registry):
        log.warning("no plugin registered")
    log.info("plugins: %s", ", ".join(default_registry.names()))

    async def run() -> None:
        loop = asyncio.get_running_loop()
        stop = loop.create_future()

        def on_signal(signum: int) -> None:
            log.info("signal %d: stopping", signum)
            if not stop.done():
                stop.set_result(None)

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)
        await serve(path, stop, conf_expire=expire)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
