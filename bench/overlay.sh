#!/bin/sh
# overlay.sh: bulk-read throughput over the Yggdrasil overlay, in network
# namespaces a—b—c with one real yggdrasil daemon each (see
# tests/src/netns.rs): iperf3 a→c against 9P reads from a to c — a gridd
# in c over plain TCP (grid cat, diodcat), through a's gridd's /n/c (grid
# cat on a's socket; the row names its transport, TCP or QUIC), and
# bench's overlay_9p (one server core, one pipelined client) over plain
# TCP and over QUIC; then
# the reconnect time after the b—c link returns (to the first answered
# ping, and to the first read of /n/c by a's gridd). Needs root,
# iproute2, yggdrasil, iperf3 and diod's tools. Debug builds, as the
# tests use.
#
#     sudo bench/overlay.sh              # 128 MiB file, 5 s of iperf3
#     OVERLAY_BENCH_MB=512 OVERLAY_BENCH_SECS=10 sudo -E bench/overlay.sh
set -eu
cd "$(dirname "$0")/.."
cargo build --bin gridd --bin grid --bin overlay_9p
cargo test -p grid-tests --test overlay -- --ignored --nocapture --exact \
    --test-threads 1 bench_overlay_throughput bench_overlay_reconnect
