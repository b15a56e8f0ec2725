#!/usr/bin/env bash
# Vet and race-test the Go SDK and, when present, the officialtest module (golden vectors decoded
# with APISIX's own generated code; a separate module so its dependency never reaches users).
# Works from any working directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
modules=("$here")
if [[ -f "$here/internal/a6/officialtest/go.mod" ]]; then
  modules+=("$here/internal/a6/officialtest")
fi

for dir in "${modules[@]}"; do
  label="sdk-go${dir#"$here"}"
  echo "== $label: go vet ./..."
  (cd "$dir" && go vet ./...)
  echo "== $label: go test -race ./..."
  (cd "$dir" && go test -race ./...)
done
