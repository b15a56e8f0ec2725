"""Importing plugin modules: by module name, by file, or every file of a directory.

Importing a module runs its `register(...)` calls; that is how plugins reach the registry.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from types import ModuleType
from typing import Iterable, List


def _import_file(path: str) -> ModuleType:
    path = os.path.abspath(path)
    stem = os.path.splitext(os.path.basename(path))[0]
    digest = hashlib.sha1(path.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    name = f"_ferrogate_plugins_{digest}_{stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import plugin file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _plugin_files(directory: str) -> List[str]:
    """The plugin files of `directory`: every ``*.py`` except ``_*`` and test files."""
    out = []
    for entry in sorted(os.listdir(directory)):
        if not entry.endswith(".py") or entry.startswith(("_", "test_")):
            continue
        if entry.endswith("_test.py") or entry == "conftest.py":
            continue
        full = os.path.join(directory, entry)
        if os.path.isfile(full):
            out.append(full)
    return out


def load_plugins(paths: Iterable[str] = (), modules: Iterable[str] = ()) -> List[ModuleType]:
    """Import plugin modules: each of `paths` is a ``.py`` file or a directory of them, each of
    `modules` a module name importable from ``sys.path``. Returns the imported modules."""
    loaded: List[ModuleType] = []
    for path in paths:
        if os.path.isdir(path):
            loaded.extend(_import_file(f) for f in _plugin_files(path))
        elif os.path.isfile(path):
            loaded.append(_import_file(path))
        else:
            raise FileNotFoundError(f"no plugin file or directory {path!r}")
    for module in modules:
        loaded.append(importlib.import_module(module))
    return loaded
