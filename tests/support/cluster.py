"""A real cluster for tests: a fresh PostgreSQL database and Redis channel
prefix per cluster (the prefix follows the database's name), nodes as real
server processes, and a TCP proxy that can cut a node off PostgreSQL.

Services come from CHAT_TEST_PG (a URL of a database we may create others
from, default postgresql://postgres@127.0.0.1:5432/postgres) and
CHAT_TEST_REDIS (default redis://127.0.0.1:6379/0). `services_problem()`
says in one line why they cannot be used, or None.
"""

from __future__ import annotations

import itertools
import os
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import suppress

from harness import Client, ServerProcess

PG = os.environ.get("CHAT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("CHAT_TEST_REDIS", "redis://127.0.0.1:6379/0")
#: The order lock's key (reactor/cluster/pgschema.py ORDER_KEY).
ORDER_KEY = 0x63686174_0001
_dbs = itertools.count(1)


def services_problem() -> str | None:
    """Why the cluster tests cannot run here (one line), or None."""
    try:
        import psycopg
        import redis
    except ImportError as exc:
        return f"the cluster extra is not installed ({exc.name}): pip install '.[cluster]'"
    try:
        psycopg.connect(PG, connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"no PostgreSQL at {PG} ({str(exc).strip().splitlines()[0]})"
    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        return f"no Redis at {REDIS} ({exc})"
    return None


def url_of(db: str, base: str = PG) -> str:
    """`base` with its database name replaced by `db`."""
    head, _, _ = base.rpartition("/")
    return f"{head}/{db}"


class Cluster:
    """A fresh database and the nodes started on it; `close()` stops the
    nodes and drops the database."""

    def __init__(self, tmp: str | os.PathLike[str]) -> None:
        import psycopg

        self.db = f"reactor_test_{os.getpid()}_{next(_dbs)}"
        with psycopg.connect(PG, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {self.db}")
        self.url = url_of(self.db)
        self.tmp = tmp
        self.nodes: dict[str, ServerProcess] = {}

    def node(self, name: str, *args: str, store: str | None = None) -> ServerProcess:
        """Start node `name` (options `args`; `store`: another URL of the
        database, through a proxy) and return it once it listens."""
        argv = [
            sys.executable, "-m", "reactor", "--port", "0", "--store", store or self.url,
            "--bus", REDIS, "--node", name, "--rate-limit", "0", *args,
        ]  # fmt: skip
        node = ServerProcess(argv=argv, name=f"node {name}").start()
        self.nodes[name] = node
        return node

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        """Run `query` on the cluster's database; its rows (if any)."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as db:
            cur = db.execute(query, params)
            return cur.fetchall() if cur.description else []

    def close(self) -> None:
        """Stop every node still running, then drop the database."""
        import psycopg

        for node in self.nodes.values():
            if node.proc.poll() is None:
                node.stop()
        with psycopg.connect(PG, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")


class Alternating:
    """Looks like one server to a test written for one (`client()`,
    `addr`, `log_text()`), but each new client goes to the next node."""

    def __init__(self, *nodes: ServerProcess) -> None:
        self.nodes = nodes
        self._next = itertools.cycle(nodes)
        self.addr = nodes[0].addr

    def client(self, **kw) -> Client:
        """A client of the next node."""
        return next(self._next).client(**kw)

    def log_text(self) -> str:
        """Every node's log."""
        return "".join(n.log_text() for n in self.nodes)


class Proxy:
    """A TCP forwarder on a free loopback port to `target`; `cut()` drops
    every connection and refuses new ones until `restore()`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        # Guards _open and _cut: the accept thread adds, cut() empties.
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._cut = False
        threading.Thread(target=self._accept, daemon=True, name="proxy").start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                if self._cut:
                    client.close()
                    continue
                upstream = socket.create_connection(self.target)
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """PostgreSQL is unreachable: every connection drops, new ones are closed."""
        with self._lock:
            self._cut = True
            for s in self._open:
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._open = []

    def restore(self) -> None:
        """PostgreSQL is back."""
        with self._lock:
            self._cut = False

    def close(self) -> None:
        """Stop forwarding."""
        self.cut()
        self._server.close()


def pg_address() -> tuple[str, int]:
    """Host and port of the test PostgreSQL."""
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(PG)
    return str(info.get("host", "127.0.0.1")), int(info.get("port", 5432))


def kill_redis_clients(prefix: str = "reactor-chat:") -> int:
    """CLIENT KILL every Redis connection whose name starts with `prefix`
    (the nodes name theirs reactor-chat:<node>); how many."""
    import redis

    r = redis.Redis.from_url(REDIS)
    killed = 0
    for c in r.client_list():
        if str(c.get("name", "")).startswith(prefix):
            with suppress(redis.RedisError):
                killed += int(r.client_kill_filter(_id=c["id"]))
    r.close()
    return killed


def drain(clients: Iterator[Client] | list[Client]) -> None:
    """Close every client (again is fine)."""
    for c in clients:
        c.close()
