#!/usr/bin/env bash
# Python SDK checks: installs the package and the test tools, then ruff, mypy --strict and pytest
# (golden vectors, core, in-process entry point, the socket runner end to end, the examples).
# Runs from any working directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
pip=(python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore)
"${pip[@]}" -r requirements-test.txt
"${pip[@]}" .
# The installed distribution is importable outside the source tree and ships py.typed.
(cd / && python3 - <<'PY'
import importlib.metadata as md
import ferrogate_sdk
files = [str(f) for f in md.files("ferrogate-sdk") or []]
assert any(f.endswith("ferrogate_sdk/py.typed") for f in files), "py.typed not installed"
assert any(f.endswith("ferrogate_sdk/_a6/A6/HTTPReqCall/Req.py") for f in files), "_a6 missing"
PY
)
python3 -m ruff check src tests benches ../examples/python
python3 -m ruff format --check src tests benches ../examples/python
python3 -m mypy
python3 -m pytest -q
