"""Chat latency of a logged-in user while a flood of failed logins runs.

    .venv/bin/python -m benchmarks.scripts.login_flood --seconds 15 --flooders 8

Starts a server on a free loopback port (pinned to CPU 0 when there are two
or more), logs `alice` in, then `--flooders` threads (on the other CPUs)
open connection after connection, each sending random bytes mixed with
command words and `/login` of unknown names, for `--seconds`. Meanwhile
alice sends `/ping` after `/ping`, one at a time, and the script reports her
round-trip times (p50, p99, max), how the flood was answered, and both
sides' CPU. `--server-args` passes options to the server (default
`--rate-limit 0`, so only the password lane and the per-address limits
protect it); `--root` runs another checkout's server, for a before/after
comparison in one sitting.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

WORDS = [b"/login", b"/register", b"/ping", b"/send", b"/help", b"/users", b"/group"]


def start_server(root: Path, db: Path, args: list[str], cpus: set[int] | None) -> tuple:
    """`python -m reactor` from `root`; returns (process, port)."""

    def pin() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)

    proc = subprocess.Popen(
        [sys.executable, "-m", "reactor", "--port", "0", "--db", str(db), *args],
        cwd=root, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        preexec_fn=pin if cpus else None,
    )  # fmt: skip
    log = proc.stderr
    assert log is not None
    for line in log:
        if m := re.search(r"listening on [\d.]+:(\d+)", line):
            # Keep reading the log, so the server never blocks on a full pipe.
            threading.Thread(target=lambda: [None for _ in log], daemon=True).start()
            return proc, int(m.group(1))
    raise RuntimeError("the server did not start")


def flood(port: int, until: float, seed: int, answers: Counter[str], lock: threading.Lock) -> None:
    """Connection after connection: junk, command words, failed logins."""
    rng = random.Random(seed)
    while time.monotonic() < until:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                lines = []
                for _ in range(5):
                    junk = bytes(rng.randrange(32, 127) for _ in range(rng.randrange(1, 40)))
                    lines.append(rng.choice(WORDS) + b" " + junk)
                    lines.append(
                        b"/login nobody%d pw%d" % (rng.randrange(10**6), rng.randrange(99))
                    )
                s.sendall(b"\n".join(lines) + b"\n")
                s.shutdown(socket.SHUT_WR)
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
        except OSError as exc:
            data = b""
            with lock:
                answers[f"socket error: {type(exc).__name__}"] += 1
        text = data.decode(errors="replace")
        with lock:
            for code in re.findall(r"Error \[(\w+)\]", text):
                answers[code] += 1
            for reason in re.findall(r"Goodbye \((\w+)\)", text):
                answers[f"bye {reason}"] += 1


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process `pid` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    i = max(0, min(len(sorted_values) - 1, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[i]


def main(argv: list[str] | None = None) -> int:
    """Run the flood and print alice's latencies."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=15.0, help="how long the flood lasts")
    p.add_argument("--flooders", type=int, default=8, help="flooding threads")
    p.add_argument("--server-args", default="--rate-limit 0", help="options for the server")
    p.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2],
                   help="checkout whose server to run")  # fmt: skip
    args = p.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus, load_cpus = ({cpus[0]}, set(cpus[1:])) if len(cpus) > 1 else (None, None)
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_server(
            args.root, Path(tmp) / "chat.db", shlex.split(args.server_args), server_cpus
        )
        try:
            if load_cpus:
                os.sched_setaffinity(0, load_cpus)
            alice = socket.create_connection(("127.0.0.1", port), timeout=60)
            f = alice.makefile("rb")
            f.readline()
            alice.sendall(b"/register alice pw\n/login alice pw\n")
            f.readline(), f.readline()
            answers: Counter[str] = Counter()
            lock = threading.Lock()
            until = time.monotonic() + args.seconds
            floods = [
                threading.Thread(target=flood, args=(port, until, i, answers, lock), daemon=True)
                for i in range(args.flooders)
            ]
            cpu0, own0 = cpu_seconds(proc.pid), time.process_time()
            for t in floods:
                t.start()
            rtts = []
            while time.monotonic() < until:
                t0 = time.perf_counter()
                alice.sendall(b"/ping\n")
                f.readline()
                rtts.append(time.perf_counter() - t0)
                time.sleep(0.02)  # a person, not a benchmark: 50 pings a second at most
            for t in floods:
                t.join()
            cpu = cpu_seconds(proc.pid) - cpu0
            own = time.process_time() - own0
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    rtts.sort()
    ms = [x * 1000 for x in rtts]
    print(f"server: {args.root} {args.server_args}; flood: {args.flooders} threads, "
          f"{args.seconds:.0f} s")  # fmt: skip
    print(f"alice's /ping: n={len(ms)} p50={percentile(ms, 50):.1f} ms "
          f"p99={percentile(ms, 99):.1f} ms max={ms[-1]:.1f} ms")  # fmt: skip
    print("flood answered: " + ", ".join(f"{k} {v}" for k, v in answers.most_common()))
    print(f"CPU: server {cpu:.1f} s, this process (flood + alice) {own:.1f} s "
          f"of {args.seconds:.0f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
