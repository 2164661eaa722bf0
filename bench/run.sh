#!/usr/bin/env bash
# Reproduces every figure in docs/benchmarks.md:
#   1. the criterion micro-benchmarks of the hot paths;
#   2. the load driver against release builds of steward on loopback
#      (SQLite and PostgreSQL, plain HTTP and Steward's own TLS listener,
#      an empty database and one with 1,000,000 tokens and 100,000 clients),
#      the server pinned to CPU 0 and the driver to CPU 1.
#
# Usage: bench/run.sh [--quick] [extra steward-loadgen bench flags…]
#   --quick   3 s runs and criterion's short mode, to check the harness works.
# Environment:
#   STEWARD_BENCH_POSTGRES_URL  PostgreSQL server for the postgres setups
#                               (default postgres://postgres@127.0.0.1:5432/test;
#                               a fresh steward_bench database is created and dropped).
#   BENCH_OUT                   directory for results (default target/bench-results).
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
if [[ "${1:-}" == "--quick" ]]; then quick=1; shift; fi
out="${BENCH_OUT:-target/bench-results}"
mkdir -p "$out"
pg="${STEWARD_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"

echo "== machine"
{ uname -srm; nproc; grep -m1 'model name' /proc/cpuinfo; uptime; } | tee "$out/machine.txt"

echo "== micro-benchmarks (criterion)"
crit=(--)
if (( quick )); then crit=(-- --warm-up-time 1 --measurement-time 2); fi
for spec in "steward-core hot_paths" "steward-egress classify" "steward-cimd client_id" \
            "steward-cimd resolve" "steward-jose jwt" "steward-server client_secret" \
            "steward-governance decision"; do
  read -r pkg name <<< "$spec"
  cargo bench -p "$pkg" --bench "$name" "${crit[@]}" 2>&1 | tee "$out/criterion-$name.txt" \
    | grep -E 'time:' -B1 | grep -v -e '^--$' -e 'Analyzing' || true
done

echo "== load (release build)"
cargo build --release -p steward -p steward-loadgen
load=(--duration 10 --warmup 2)
if (( quick )); then load=(--duration 3 --warmup 1 --history-tokens 100000 --history-clients 10000); fi
target/release/steward-loadgen bench --steward target/release/steward --postgres-url "$pg" \
  "${load[@]}" --json-out "$out/load.json" "$@" | tee "$out/load.md"
echo "== done; results in $out (load.md, load.json, criterion-*.txt)"
