#!/usr/bin/env python3
"""gridd start-up time and idle memory.

Starts the release gridd N times (half on a fresh state directory, half
on one a previous start created), measures the time from spawn until its
unix socket accepts a connection, waits, and reads VmRSS and VmHWM.
Prints a markdown table. Targets (issue 3): under 50 ms to serving,
under 15 MiB idle.

    cargo build --release -p gridd && bench/startup.py [RUNS]
"""
import os, socket, statistics, subprocess, sys, tempfile, time

GRIDD = os.path.join(os.path.dirname(__file__), "..", "target", "release", "gridd")


def start(state):
    sock = os.path.join(state, "gridd.sock")
    t0 = time.perf_counter()
    p = subprocess.Popen([GRIDD, "--state", state], stderr=subprocess.DEVNULL)
    deadline = t0 + 10
    while True:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock)
            s.close()
            break
        except OSError:
            if time.perf_counter() > deadline:
                p.kill()
                sys.exit("gridd did not start serving in 10 s")
            time.sleep(0.0002)
    return p, (time.perf_counter() - t0) * 1000


def mem(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) / 1024
    return out


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    fresh, warm, rss, hwm = [], [], [], []
    for i in range(runs):
        with tempfile.TemporaryDirectory() as state:
            p, ms = start(state)
            fresh.append(ms)
            p.terminate(); p.wait()
            p, ms = start(state)
            warm.append(ms)
            time.sleep(1)
            m = mem(p.pid)
            rss.append(m["VmRSS"]); hwm.append(m["VmHWM"])
            p.terminate(); p.wait()
    med = statistics.median
    print(f"gridd start-up and idle memory, {runs} runs (median / max)\n")
    print("| measure | median | max | target |")
    print("|---|---|---|---|")
    print(f"| first start to serving (creates key, config) | {med(fresh):.1f} ms | {max(fresh):.1f} ms | < 50 ms |")
    print(f"| restart to serving | {med(warm):.1f} ms | {max(warm):.1f} ms | < 50 ms |")
    print(f"| idle RSS | {med(rss):.1f} MiB | {max(rss):.1f} MiB | < 15 MiB |")
    print(f"| peak RSS (VmHWM) | {med(hwm):.1f} MiB | {max(hwm):.1f} MiB | |")


if __name__ == "__main__":
    main()
