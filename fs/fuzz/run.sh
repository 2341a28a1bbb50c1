#!/usr/bin/env bash
# Fuzzes every target (or those named) for SECONDS each, one after another.
#
#   fs/fuzz/run.sh [SECONDS] [TARGET...]        (default: 60 s, all targets)
#
# Works on a stable toolchain: cargo-fuzz needs nightly-only flags
# (-Zsanitizer), which RUSTC_BOOTSTRAP=1 unlocks. Set FUZZ_SANITIZER=none
# where the AddressSanitizer runtime is missing (the script also falls back
# to it by itself if an ASan build fails). Crashes land in
# fs/fuzz/artifacts/TARGET/; the script exits non-zero if any target failed.
set -euo pipefail

secs="${1:-60}"
shift || true
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.." # cargo-fuzz runs from the fuzz directory's parent
fuzz_dir="$(basename "$here")"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "run.sh: cargo-fuzz is missing; install it with: cargo install cargo-fuzz --locked" >&2
    exit 2
fi
export RUSTC_BOOTSTRAP=1

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list --fuzz-dir "$fuzz_dir")
fi

# Seed corpora: a valid frame of every message type in every dialect.
cargo run --quiet --manifest-path "$fuzz_dir/Cargo.toml" --example seeds -- "$fuzz_dir/corpus"

sanitizer="${FUZZ_SANITIZER:-address}"
if ! cargo fuzz build --fuzz-dir "$fuzz_dir" -s "$sanitizer" "${targets[@]:0:1}" >/dev/null 2>&1; then
    if [ "$sanitizer" != none ]; then
        echo "run.sh: building with -s $sanitizer failed; falling back to -s none" >&2
        sanitizer=none
    fi
fi

logs="$(mktemp -d)"
failed=0
summary=()
for t in "${targets[@]}"; do
    echo "== $t: ${secs}s, sanitizer $sanitizer"
    status=ok
    if ! cargo fuzz run --fuzz-dir "$fuzz_dir" -s "$sanitizer" "$t" -- \
        -max_total_time="$secs" -print_final_stats=1 >"$logs/$t.log" 2>&1; then
        status=FAILED
        failed=1
        tail -n 40 "$logs/$t.log" >&2
    fi
    done_line="$(grep -E '^Done [0-9]+ runs' "$logs/$t.log" | tail -n 1 || true)"
    summary+=("$t: $status ${done_line:-(no final stats; see $logs/$t.log)}")
done

echo
echo "== summary (logs in $logs)"
printf '%s\n' "${summary[@]}"
exit "$failed"
