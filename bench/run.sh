#!/bin/sh
# Builds gridd and the benchmark in release and runs it; prints one
# markdown table on stdout (progress on stderr). Flags go to ninep-bench:
#   bench/run.sh                                   # 1 GiB, 20000 ops, 3 runs
#   bench/run.sh --size 64M --ops 2000 --runs 1    # quick smoke run
#   bench/run.sh --help
# Needs diod for the comparison rows (apt-get install diod), or --only raw,ours.
set -eu
cd "$(dirname "$0")/.."
cargo build --release -p grid-bench -p gridd >&2
bin="${CARGO_TARGET_DIR:-target}/release"
exec "$bin/ninep-bench" --gridd "$bin/gridd" "$@"
