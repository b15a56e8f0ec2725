"""Loading plugins from directories, files and module names, and from the environment."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ferrogate_sdk import default_registry, load_plugins

SDK = Path(__file__).resolve().parents[1]


def _plugin(path: Path, name: str) -> None:
    path.write_text(
        textwrap.dedent(f"""
            from ferrogate_sdk import Plugin, register

            @register
            class P(Plugin[str]):
                name = {name!r}
        """)
    )


def test_directory_file_and_module(tmp_path, monkeypatch):
    d = tmp_path / "plugins"
    d.mkdir()
    _plugin(d / "one.py", "loader-one")
    _plugin(d / "_private.py", "loader-private")
    _plugin(d / "test_one.py", "loader-test")
    _plugin(d / "one_test.py", "loader-test2")
    (d / "notes.txt").write_text("not python")
    single = tmp_path / "single.py"
    _plugin(single, "loader-single")
    mods = tmp_path / "mods"
    mods.mkdir()
    _plugin(mods / "loader_mod_x.py", "loader-module")
    monkeypatch.syspath_prepend(str(mods))

    loaded = load_plugins([str(d), str(single)], ["loader_mod_x"])
    assert len(loaded) == 3
    for name in ("loader-one", "loader-single", "loader-module"):
        assert name in default_registry
    for name in ("loader-private", "loader-test", "loader-test2"):
        assert name not in default_registry
    # Loading the same file again does not import (nor register) it twice.
    load_plugins([str(single)])

    with pytest.raises(FileNotFoundError):
        load_plugins([str(tmp_path / "missing")])


def test_runner_takes_plugins_from_the_environment(tmp_path):
    d = tmp_path / "envplugins"
    d.mkdir()
    _plugin(d / "a.py", "env-a")
    mods = tmp_path / "mods"
    mods.mkdir()
    _plugin(mods / "env_mod_b.py", "env-b")
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(SDK / "src"), str(mods)]),
        APISIX_LISTEN_ADDRESS="unix:" + str(tmp_path / "r.sock"),
        FERROGATE_PLUGIN_PATHS=str(d),
        FERROGATE_PLUGIN_MODULES="env_mod_b",
    )
    p = subprocess.Popen(
        [sys.executable, "-m", "ferrogate_sdk.runner"],
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        assert p.stderr is not None
        line = b""
        while b"plugins:" not in line:
            line = p.stderr.readline()
            assert line, "runner exited"
        assert b"env-a" in line and b"env-b" in line
    finally:
        p.terminate()
        p.wait(10)
        assert p.stderr is not None
        p.stderr.close()
