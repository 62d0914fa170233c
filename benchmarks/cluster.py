"""The benchmark's cluster cells: the chat server on SQLite, then as one and
as two cluster nodes on one PostgreSQL and one Redis, and what a message
costs in each part.

Owns: the cluster designs (`cluster-sqlite`: the plain reactor-global
server, the baseline; `cluster-pg1`: one node on PostgreSQL + Redis;
`cluster-pg2`: two nodes on both, the load generator's clients spread over
the two, client i on node i mod 2), a fresh PostgreSQL database for each
run (created before, dropped after, WITH (FORCE)), the nodes' processes,
and one run of a cell: every node on the server CPUs, the load generator on
the others (benchmarks/matrix.py's plan), and over the measured window the
CPU of the nodes, of the bench database's PostgreSQL backends with
PostgreSQL's own processes, and of redis-server (read from /proc; those
services are not ours to pin, so they run on any CPU), the commits that
numbered messages (`cluster:order` acquisitions in each node's /stats, with
the lock's hold and wait per commit), all
the bench database's transactions (`xact_commit` in pg_stat_database) and
Redis publishes (/stats `cluster.published`, summed over the nodes).
Must not: format results (benchmarks/cluster_results.py), touch a database
it did not create, change a setting of PostgreSQL or Redis, or measure the
designs of benchmarks/servers.py (benchmarks/matrix.py does).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks.matrix import Cell, Workload, summary_cell
from benchmarks.servers import by_name as server_design
from benchmarks.storm import LoginStorm
from harness import Client, ServerProcess
from loadgen.run import run

PG = "postgresql://postgres@127.0.0.1/"  # + a database name
PG_ADMIN = PG + "postgres"  # where databases are created and pg_stat_* read
REDIS = ("127.0.0.1", 6379)
BUS = f"redis://{REDIS[0]}:{REDIS[1]}/0"
DB_PREFIX = "chat_bench_"
BASE = "reactor-global"  # every node runs this design's command, its store swapped
BASELINE = "cluster-sqlite"
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ClusterDesign:
    """`nodes` chat servers on one store: SQLite (one node: the plain server) or
    PostgreSQL with a Redis bus."""

    name: str
    nodes: int
    store: str  # "sqlite" or "postgresql"

    def runs(self, work: Workload) -> bool:
        """Chat workloads only: idle memory is not what a cluster changes."""
        return work.kind != "idle"

    def argv(self, workdir: Path, node: int, db: str | None) -> list[str]:
        """Node `node`'s command: reactor-global's, on database `db` and the bus."""
        argv = server_design(BASE).argv(workdir)
        if self.store == "sqlite":
            return argv
        assert db is not None  # a PostgreSQL design runs on a fresh database
        argv[argv.index("--db") + 1] = PG + db
        return [*argv, "--bus", BUS, "--node", f"n{node}"]

    def run_cell(self, work: Workload, server_cpus, load_cpus, log=print) -> Cell:
        """Start the nodes on a fresh store, drive them with `work`, stop them; one `Cell`."""
        return run_cell(self, work, server_cpus, load_cpus, log)


def designs() -> list[ClusterDesign]:
    """The cluster cells, baseline first."""
    return [
        ClusterDesign(BASELINE, 1, "sqlite"),
        ClusterDesign("cluster-pg1", 1, "postgresql"),
        ClusterDesign("cluster-pg2", 2, "postgresql"),
    ]


def by_name(name: str) -> ClusterDesign | None:
    """The cluster design called `name`, or None."""
    return next((d for d in designs() if d.name == name), None)


def services_down() -> str | None:
    """Why the cluster cells cannot run here (one line), or None: PostgreSQL
    and Redis both answer."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'reactor-chat[cluster]')"
    try:
        psycopg.connect(PG_ADMIN, connect_timeout=3).close()
    except psycopg.Error as exc:
        why = " ".join(str(exc).split())  # one line
        return f"PostgreSQL does not answer at {PG_ADMIN}: {why[:160]}"
    try:
        with socket.create_connection(REDIS, timeout=3) as s:
            s.sendall(b"PING\r\n")
            if not s.recv(64).startswith(b"+PONG"):
                return f"Redis at {REDIS[0]}:{REDIS[1]} does not answer PING"
    except OSError as exc:
        return f"Redis does not answer at {REDIS[0]}:{REDIS[1]}: {exc}"
    return None


@contextlib.contextmanager
def fresh_database() -> Iterator[tuple[str, Any]]:
    """A new, empty database (its name) and an autocommit connection to
    `postgres` to watch it with; the database is dropped at the end."""
    import psycopg

    name = f"{DB_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
    admin = psycopg.connect(PG_ADMIN, autocommit=True)
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield name, admin
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


# --- what the parts used, read at the window's start and end ------------------------


def _stat(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command's name ([] once it has gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()
    except OSError:
        return []


def _cpu(pid: int) -> float | None:
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / _TICK if fields else None  # utime + stime


def _redis_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() == "redis-server":
                    pids.append(int(entry))
        except (OSError, ValueError):
            pass
    return pids


def _pg_pids(admin: Any, db: str) -> list[int]:
    """The bench database's backends, PostgreSQL's own processes and the postmaster
    (not the backends of other databases, ours on `postgres` included)."""
    rows = admin.execute(
        "SELECT pid, backend_type FROM pg_stat_activity"
        " WHERE datname = %s OR backend_type <> 'client backend'",
        (db,),
    ).fetchall()
    pids = {pid for pid, _ in rows}
    for pid, kind in rows:
        if kind != "client backend" and (fields := _stat(pid)):  # a child of the postmaster
            pids.add(int(fields[1]))  # its parent
            break
    return sorted(pids)


@dataclass
class _Sample:
    t: float
    server_cpu: float
    pg_cpu: dict[int, float]
    redis_cpu: dict[int, float]
    commits: int = 0  # cluster:order acquisitions, every node
    contended: int = 0  # of which waited
    hold_us: int = 0  # cluster:order held in all, µs
    wait_us: int = 0  # waited for in all, µs
    published: int = 0  # cluster.published, every node
    xacts: int = 0  # xact_commit of the bench database


def _delta(a: dict[int, float], b: dict[int, float]) -> float:
    """CPU used between samples a and b by the processes b saw (0 at a if a did not)."""
    return sum(cpu - a.get(pid, 0.0) for pid, cpu in b.items())


class _Watch:
    """Reads what every part has used so far: the nodes' CPU first (the
    window's clock), then PostgreSQL's and Redis's, then each node's /stats
    (one round trip each) and pg_stat_database."""

    def __init__(self, nodes: list[ServerProcess], admin: Any, db: str | None) -> None:
        self.nodes, self.admin, self.db = nodes, admin, db
        self.probes: list[Client] = []
        if db is not None:  # a node's /stats wants a logged-in user
            for j, node in enumerate(nodes):
                c = Client(node.addr, timeout=30.0)
                self.probes.append(c)
                c.ok("/mode json")
                c.ok(f"/login benchstats{j}")
        self.pg_seen: list[int] = []

    def sample(self) -> _Sample:
        """Everything, now."""
        s = _Sample(time.monotonic(), sum(n.cpu_seconds() for n in self.nodes), {}, {})
        if self.db is not None:
            self.pg_seen = sorted({*self.pg_seen, *_pg_pids(self.admin, self.db)})
            s.pg_cpu = {p: c for p in self.pg_seen if (c := _cpu(p)) is not None}
        s.redis_cpu = {p: c for p in _redis_pids() if (c := _cpu(p)) is not None}
        for probe in self.probes:
            stats = probe.ok("/stats")
            order = [x for x in stats.get("locks", []) if x.get("name") == "cluster:order"]
            s.commits += sum(x["acquisitions"] for x in order)
            s.contended += sum(x["contended"] for x in order)
            s.hold_us += sum(x["hold_total_us"] for x in order)
            s.wait_us += sum(x["wait_total_us"] for x in order)
            s.published += (stats.get("cluster") or {}).get("published", 0)
        if self.db is not None:
            self.admin.execute("SELECT pg_stat_clear_snapshot()")
            row = self.admin.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (self.db,)
            ).fetchone()
            s.xacts = row[0] if row else 0
        return s

    def close(self) -> None:
        """Log the probes out."""
        for probe in self.probes:
            with contextlib.suppress(OSError):
                probe.close()


def run_cell(
    design: ClusterDesign, work: Workload, server_cpus, load_cpus, log: Callable = print
) -> Cell:
    """Start `design`'s nodes on a fresh store, drive them with `work` (its
    clients spread over the nodes), stop them, drop the database; one `Cell`."""
    pg = design.store == "postgresql"
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chat-bench-")))
        db, admin = stack.enter_context(fresh_database()) if pg else (None, None)
        nodes: list[ServerProcess] = []
        watch: _Watch | None = None
        try:
            for j in range(design.nodes):
                node = ServerProcess(argv=design.argv(tmp, j, db), cpus=server_cpus,
                                     keep_log=False, name=f"{design.name}/n{j}")  # fmt: skip
                nodes.append(node.start())
            watch = _Watch(nodes, admin, db)
            ports = [n.port for n in nodes]
            procs = len(load_cpus) if load_cpus else 0
            spec = replace(work.spec, port=ports[0], extra_ports=tuple(ports[1:]),
                           cpus=load_cpus, procs=procs)  # fmt: skip
            storm = LoginStorm(nodes[0].addr, work.logins_per_s, "storm")
            marks: dict[str, _Sample] = {}

            def on_start() -> None:
                marks["0"] = watch.sample()
                if work.logins_per_s:
                    storm.start()

            def on_end() -> None:
                marks["1"] = watch.sample()
                if work.logins_per_s:
                    storm.stop()

            summary = run(spec, on_start=on_start, on_end=on_end)
        finally:
            if watch is not None:
                watch.close()
            watch_ok = True
            for node in nodes:
                code = node.stop(timeout=60) if node.proc.poll() is None else node.proc.returncode
                if code != 0 or node.errors():
                    watch_ok = False
                    log(f"  ! {node.name} exited {code}: {''.join(node.errors()[:5])}")
    cell = summary_cell(design.name, work, summary, storm.answers)
    cell.nodes = design.nodes
    a, b = marks["0"], marks["1"]
    wall = max(1e-9, b.t - a.t)
    cell.server_cpu_pct = 100 * (b.server_cpu - a.server_cpu) / wall
    cell.redis_cpu_pct = 100 * _delta(a.redis_cpu, b.redis_cpu) / wall
    if pg:
        cell.pg_cpu_pct = 100 * _delta(a.pg_cpu, b.pg_cpu) / wall
        cell.pg_commits_per_s = (b.commits - a.commits) / wall
        cell.pg_xacts_per_s = (b.xacts - a.xacts) / wall
        cell.redis_publishes_per_s = (b.published - a.published) / wall
        if b.commits > a.commits:
            commits = b.commits - a.commits
            cell.order_hold_us = (b.hold_us - a.hold_us) / commits
            cell.order_wait_us = (b.wait_us - a.wait_us) / commits
            cell.order_contended_pct = 100 * (b.contended - a.contended) / commits
    if not watch_ok:
        cell.errors.setdefault("server_exit", 1)
    return cell
