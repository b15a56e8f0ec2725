#!/usr/bin/env bash
# Builds the Java SDK and runs every module's tests, from any working directory: the protocol's
# golden vectors, the API and runner unit tests, the examples (../examples/java), and the
# end-to-end tests on a real Unix socket, including the packaged conformance runner jar started
# as a subprocess (hence `verify`: the jars are built before module `tests` runs). Maven fetches
# its plugins and dependencies from Maven Central on first use.
# `-q` hides Surefire's summary, so a plain "java: N passed, N failed, N skipped" line is printed
# from the Surefire reports afterwards.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
reports=(*/target/surefire-reports ../examples/java/target/surefire-reports)
rm -rf -- "${reports[@]}"
rc=0
mvn -q -B -Dstyle.color=never verify "$@" || rc=$?
tests=0 failed=0 skipped=0
for report in */target/surefire-reports/TEST-*.xml ../examples/java/target/surefire-reports/TEST-*.xml; do
    [ -e "$report" ] || continue
    suite=$(grep -o '<testsuite [^>]*>' "$report" | sed -n 1p)
    attr() { sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p" <<<"$suite"; }
    tests=$((tests + $(attr tests)))
    failed=$((failed + $(attr failures) + $(attr errors)))
    skipped=$((skipped + $(attr skipped)))
done
printf "\n"  # Maven leaves colour resets without a newline behind it, even with -q -B
echo "java: $((tests - failed - skipped)) passed, $failed failed, $skipped skipped"
exit "$rc"
