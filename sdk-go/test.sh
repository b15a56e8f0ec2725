#!/usr/bin/env bash
# Vet and race-test every Go module of the SDK: the SDK itself, the officialtest module (golden
# vectors decoded with APISIX's own generated code), the e2e module (the conformance runner as a
# real process on a Unix socket) and the examples (examples/go). The extra modules are separate
# so that their dependencies never reach SDK users. Works from any working directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
modules=("$here")
for extra in "$here/internal/a6/officialtest" "$here/e2e" "$here/../examples/go"; do
  if [[ -f "$extra/go.mod" ]]; then
    modules+=("$(cd "$extra" && pwd)")
  fi
done

root="$(cd "$here/.." && pwd)"
for dir in "${modules[@]}"; do
  label="${dir#"$root"/}"
  echo "== $label: go vet ./..."
  (cd "$dir" && go vet ./...)
  echo "== $label: go test -race ./..."
  (cd "$dir" && go test -race ./...)
done
