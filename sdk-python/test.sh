#!/usr/bin/env bash
# Python SDK tests: golden vectors of the runner protocol, decoded and re-encoded with the
# generated FlatBuffers bindings. Runs from any working directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
python3 -m pip install -q -r requirements-test.txt
python3 -m pytest -q
