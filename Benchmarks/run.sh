#!/usr/bin/env bash
# Runs the PageState microbenchmarks (package-benchmark) non-interactively.
# Extra arguments go to `swift package benchmark`, e.g. `./run.sh --target DeltaBenchmarks`,
# `./run.sh --filter 'PageDelta.union.*'`, or `./run.sh baseline update main`.
set -euo pipefail
cd "$(dirname "$0")"

# ordo-one/benchmark 1.38.1 on Linux + Swift 6.3 depends on ordo-one/swift-runtime-interposer, which is not
# mirrored here; point it at the empty stand-in package (see LocalPackages/swift-runtime-interposer).
export RUNTIME_INTERPOSER_LOCAL_PATH="$PWD/LocalPackages/swift-runtime-interposer"

# --disable-sandbox: the plugin runs the benchmark executables and reads/writes .benchmarkBaselines.
# --allow-writing-to-package-directory: needed only by baseline-writing commands; harmless otherwise.
# --no-progress: plain output for logs and CI.
exec swift package --disable-sandbox --allow-writing-to-package-directory benchmark "$@" --no-progress
