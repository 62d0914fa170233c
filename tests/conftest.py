"""Fixtures: real servers on free loopback ports, under both locking
strategies and the three I/O models (the reactor and its pool, the inline
loop, a thread per client)."""

from __future__ import annotations

import os

import pytest

from harness import ServerProcess

LOCKINGS = ["global", "fine"]
MODELS = ["reactor", "threaded", "inline"]
#: `make test` runs a test that takes both a model and a locking strategy
#: under every model with `global`, and `fine` with the reactor (locking
#: is the chat side's, the same code under every model); `make test-all`
#: runs that, then the other pairs alone (CHAT_MATRIX=rest). A slow test
#: that takes a locking strategy but no model (the soak) runs with `global`
#: in `make test`, with `fine` in the rest.
QUICK_PAIRS = {("reactor", "global"), ("reactor", "fine"), ("threaded", "global"),
               ("inline", "global")}  # fmt: skip


def pytest_collection_modifyitems(config, items) -> None:
    """Leave out the model × locking pairs outside QUICK_PAIRS; with
    CHAT_MATRIX=rest, keep only those pairs instead."""
    rest = os.environ.get("CHAT_MATRIX") == "rest"
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        pair = (params.get("model"), params.get("locking"))
        quick = None in pair or pair in QUICK_PAIRS
        if pair == (None, "fine") and item.get_closest_marker("slow") is not None:
            quick = False
        (keep if quick != rest else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session", params=LOCKINGS)
def locking(request) -> str:
    return request.param


@pytest.fixture(scope="session", params=MODELS)
def model(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def server(locking, model, tmp_path_factory):
    """A shared server per locking strategy (rate limit off, so tests may
    pipeline). Tests use fresh names, so they do not see each other."""
    db = tmp_path_factory.mktemp(f"shared-{locking}-{model}") / "chat.db"
    srv = ServerProcess(db, "--locking", locking, "--model", model, "--rate-limit", "0").start()
    yield srv
    assert srv.stop() == 0
    assert "Traceback" not in srv.log_text(), srv.log_text()


@pytest.fixture
def start_server(locking, model, tmp_path):
    """Start a dedicated server with extra options; stopped at test end."""
    started = []

    def start(*args: str, db=None, fd_limit=None, memory_limit=None) -> ServerProcess:
        path = db or tmp_path / "chat.db"
        srv = ServerProcess(
            path, "--locking", locking, "--model", model, *args, fd_limit=fd_limit,
            memory_limit=memory_limit,
        ).start()  # fmt: skip
        started.append(srv)
        return srv

    yield start
    for srv in started:
        if srv.proc.poll() is None:
            srv.stop()
        assert "Traceback" not in srv.log_text(), srv.log_text()
