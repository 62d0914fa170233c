"""visualizer/graphs.py and graphdraw.py: lock-order and wait-for graphs of
synthetic traces, checked against answers computed by hand, and their
drawings under Agg."""

from __future__ import annotations

from itertools import pairwise

import matplotlib

matplotlib.use("Agg")

import matplotlib.image
import networkx as nx
import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch

from tests.support.tracegen import TraceBuilder
from visualizer.graphdraw import (
    CYCLE_COLOR,
    draw_lock_order,
    draw_wait_for,
    wait_for_snapshots,
)
from visualizer.graphs import (
    deadlock_cycles,
    lock_order_graph,
    order_cycles,
    wait_for_graph,
)
from visualizer.load import Trace, load_trace


def nested(b: TraceBuilder, task: int, cmd: str, thread: str, t0: int, *locks: str) -> None:
    """Task `task` takes `locks` one inside the other: lock i is acquired at
    t0 + 10(i+1) and released at t0 + 100 - 10i, so each later lock is
    taken while all the earlier ones are held."""
    b.task(task, cmd, thread, queued=t0, start=t0 + 1, end=t0 + 110)
    for i, lock in enumerate(locks):
        at = t0 + 10 * (i + 1)
        b.lock(thread, lock, task=task, wait=at, acquired=at, released=t0 + 100 - 10 * i)


def load(b: TraceBuilder, tmp_path) -> Trace:
    return load_trace(b.write(tmp_path / "t.jsonl"))


def edges(g: nx.DiGraph, *names: str) -> dict:
    """Each edge with the attributes `names`, for one-line comparisons."""
    return {(a, b): tuple(d[n] for n in names) for a, b, d in g.edges(data=True)}


def circular(cycle: list[str], *made_by: tuple[str, str]) -> dict:
    """The server's order_violation report for `cycle` (first = last), each
    edge first made by (thread, cmd) in `made_by`."""
    return {
        "kind": "circular",
        "cycle": cycle,
        "edges": [
            {"from": a, "to": b, "thread": t, "cmd": c}
            for (a, b), (t, c) in zip(pairwise(cycle), made_by, strict=True)
        ],
    }


def arrows(ax) -> list[FancyArrowPatch]:
    return [p for p in ax.patches if isinstance(p, FancyArrowPatch)]


def red(patch: FancyArrowPatch) -> bool:
    return patch.get_edgecolor() == to_rgba(CYCLE_COLOR)


def saved_png(fig: Figure, path) -> tuple[int, ...]:
    """Save `fig`, read it back, and return the image's shape."""
    fig.savefig(path, dpi=60)
    assert path.stat().st_size > 0
    image = matplotlib.image.imread(path)
    assert image.std() > 0  # not a blank canvas
    return image.shape


# -- the lock-order graph ---------------------------------------------------


@pytest.fixture
def inversion(tmp_path) -> Trace:
    """/users takes storage then sessions (twice), /login sessions then
    storage (once), and a commit takes delivery then storage."""
    b = TraceBuilder(locking="inverted")
    nested(b, 1, "users", "worker-0", 0, "storage", "sessions")
    nested(b, 2, "users", "worker-0", 200, "storage", "sessions")
    nested(b, 3, "login", "worker-1", 0, "sessions", "storage")
    nested(b, 4, "commit", "worker-1", 200, "delivery", "storage")
    return load(b, tmp_path)


def test_lock_order_graph_counts_edges_and_cmds(tmp_path):
    b = TraceBuilder()
    nested(b, 1, "send", "worker-0", 0, "delivery", "storage", "sessions")
    nested(b, 2, "send", "worker-1", 0, "delivery", "storage")
    nested(b, 3, "sendgroup", "worker-0", 200, "delivery", "storage")
    g = lock_order_graph(load(b, tmp_path))
    assert sorted(g.nodes) == ["delivery", "sessions", "storage"]
    assert edges(g, "count", "weight", "cmds", "cycle") == {
        ("delivery", "storage"): (3, 3, ("send", "sendgroup"), False),
        ("delivery", "sessions"): (1, 1, ("send",), False),
        ("storage", "sessions"): (1, 1, ("send",), False),
    }
    assert order_cycles(g) == [] == g.graph["cycles"]


def test_lock_order_graph_locks_taken_one_after_another_make_no_edge(tmp_path):
    b = TraceBuilder()
    b.task(1, "send", "worker-0", queued=0, start=1, end=50)
    b.lock("worker-0", "storage", task=1, wait=10, acquired=10, released=20)
    b.lock("worker-0", "sessions", task=1, wait=20, acquired=20, released=30)
    g = lock_order_graph(load(b, tmp_path))
    assert sorted(g.nodes) == ["sessions", "storage"]
    assert g.number_of_edges() == 0


def test_lock_order_graph_same_class_nesting_makes_no_edge(tmp_path):
    b = TraceBuilder()
    nested(b, 1, "sendgroup", "worker-0", 0, "group:a", "group:b", "storage")
    g = lock_order_graph(load(b, tmp_path))
    assert sorted(g.nodes) == ["group", "storage"]
    assert list(g.edges) == [("group", "storage")]
    assert nx.number_of_selfloops(g) == 0


def test_order_cycles_two_class_inversion_is_one_cycle(inversion):
    g = lock_order_graph(inversion)
    assert order_cycles(g) == [["sessions", "storage"]] == g.graph["cycles"]
    assert edges(g, "count", "cmds", "cycle") == {
        ("storage", "sessions"): (2, ("users",), True),
        ("sessions", "storage"): (1, ("login",), True),
        ("delivery", "storage"): (1, ("commit",), False),
    }


def test_order_cycles_three_classes_make_one_cycle(tmp_path):
    b = TraceBuilder()
    nested(b, 1, "sendgroup", "worker-0", 0, "groups", "sessions")
    nested(b, 2, "login", "worker-1", 0, "sessions", "storage")
    nested(b, 3, "users", "worker-0", 200, "storage", "groups")
    g = lock_order_graph(load(b, tmp_path))
    assert order_cycles(g) == [["groups", "sessions", "storage"]]
    assert edges(g, "cycle") == {
        ("groups", "sessions"): (True,),
        ("sessions", "storage"): (True,),
        ("storage", "groups"): (True,),
    }


def test_order_cycles_lists_each_cycle_once_in_a_fixed_order():
    one = nx.DiGraph([("c", "a"), ("a", "b"), ("b", "c"), ("b", "a")])
    other = nx.DiGraph([("b", "a"), ("b", "c"), ("a", "b"), ("c", "a")])
    assert order_cycles(one) == [["a", "b"], ["a", "b", "c"]] == order_cycles(other)


def test_lock_order_graph_merges_server_reports(tmp_path):
    """The trace kept only /users (sampled); the server saw /login too."""
    b = TraceBuilder(locking="inverted", sample=0.5)
    nested(b, 1, "users", "worker-3", 0, "storage", "sessions")
    report = circular(
        ["storage", "sessions", "storage"], ("worker-3", "users"), ("worker-0", "login")
    )
    b.event(150, "worker-0", "order_violation", **report)
    recursive = {"kind": "recursive", "lock": "storage", "cmd": "login"}
    b.event(160, "worker-0", "order_violation", **recursive)  # its thread: the event's
    g = lock_order_graph(load(b, tmp_path))
    assert edges(g, "count", "cmds", "reported", "cycle") == {
        ("storage", "sessions"): (1, ("users",), (("worker-3", "users"),), True),
        ("sessions", "storage"): (0, ("login",), (("worker-0", "login"),), True),
    }
    assert order_cycles(g) == [["sessions", "storage"]]
    assert g.graph["violations"] == [["storage", "sessions", "storage"]]
    assert nx.number_of_selfloops(g) == 0  # a recursive report is no order edge


def test_lock_order_graph_shows_a_reported_cycle_without_nesting(tmp_path):
    b = TraceBuilder(sample=0.1)
    b.task(1, "send", "worker-0", queued=0, start=1, end=50)
    b.lock("worker-0", "storage", task=1, wait=10, acquired=10, released=20)
    report = circular(
        ["groups", "sessions", "storage", "groups"],
        ("worker-0", "sendgroup"), ("worker-1", "login"), ("worker-2", "users"),
    )  # fmt: skip
    b.event(60, "worker-0", "order_violation", **report)
    g = lock_order_graph(load(b, tmp_path))
    assert order_cycles(g) == [["groups", "sessions", "storage"]]
    assert edges(g, "count", "cmds") == {
        ("groups", "sessions"): (0, ("sendgroup",)),
        ("sessions", "storage"): (0, ("login",)),
        ("storage", "groups"): (0, ("users",)),
    }


# -- the wait-for graph -----------------------------------------------------


@pytest.fixture
def deadlock(tmp_path) -> Trace:
    """worker-1 (/users) holds storage from 100 and waits for sessions from
    300; worker-2 (/login) holds sessions from 200 and waits for storage
    from 400. Neither wait ends: the trace stops in the deadlock."""
    b = TraceBuilder(locking="inverted")
    b.task(1, "users", "worker-1", queued=0, start=50)
    b.lock("worker-1", "storage", task=1, wait=100, acquired=100)
    b.lock("worker-1", "sessions", task=1, wait=300)
    b.task(2, "login", "worker-2", queued=0, start=60)
    b.lock("worker-2", "sessions", task=2, wait=200, acquired=200)
    b.lock("worker-2", "storage", task=2, wait=400)
    return load(b, tmp_path)


HOLD_1 = {("storage", "worker-1"): ("holds",)}
HOLD_BOTH = {**HOLD_1, ("sessions", "worker-2"): ("holds",)}
WAIT_1 = {("worker-1", "sessions"): ("waits",)}
WAIT_2 = {("worker-2", "storage"): ("waits",)}
CYCLE = [["worker-1", "sessions", "worker-2", "storage"]]


@pytest.mark.parametrize(
    ("at", "expected", "cycles"),
    [
        (50, {}, []),
        (150, HOLD_1, []),
        (250, HOLD_BOTH, []),
        (350, {**HOLD_BOTH, **WAIT_1}, []),  # just before the deadlock
        (400, {**HOLD_BOTH, **WAIT_1, **WAIT_2}, CYCLE),
        (10_000, {**HOLD_BOTH, **WAIT_1, **WAIT_2}, CYCLE),
    ],
)
def test_wait_for_graph_finds_the_deadlock_once_it_forms(deadlock, at, expected, cycles):
    g = wait_for_graph(deadlock, at)
    assert edges(g, "kind") == expected
    assert deadlock_cycles(g) == cycles == g.graph["cycles"]
    assert all(d["cycle"] == bool(cycles) for _, _, d in g.edges(data=True))


def test_wait_for_graph_labels_nodes_and_edges(deadlock):
    g = wait_for_graph(deadlock, 400)
    assert dict(g.nodes(data="kind")) == {
        "worker-1": "thread", "worker-2": "thread", "sessions": "lock", "storage": "lock",
    }  # fmt: skip
    assert edges(g, "since", "task", "cmd") == {
        ("storage", "worker-1"): (100, 1, "users"),
        ("worker-1", "sessions"): (300, 1, "users"),
        ("sessions", "worker-2"): (200, 2, "login"),
        ("worker-2", "storage"): (400, 2, "login"),
    }


@pytest.mark.parametrize(
    ("at", "expected"),
    [(9, ()), (10, ("waits",)), (19, ("waits",)), (20, ("holds",)), (29, ("holds",)), (30, ())],
)
def test_wait_for_graph_span_bounds_are_half_open(tmp_path, at, expected):
    b = TraceBuilder()
    b.task(1, "send", "worker-0", queued=0, start=1, end=40)
    b.lock("worker-0", "storage", task=1, wait=10, acquired=20, released=30)
    kinds = [k for _, _, k in wait_for_graph(load(b, tmp_path), at).edges(data="kind")]
    assert tuple(kinds) == expected


@pytest.mark.parametrize(("first_task_ends", "still_waiting_at_45"), [(True, False), (False, True)])
def test_wait_for_graph_ends_a_timed_out_wait(tmp_path, first_task_ends, still_waiting_at_45):
    """A wait that gave up (lock_timeout at 20) ends at the latest with its
    task (end 30) or at the thread's next lock_wait (50)."""
    b = TraceBuilder(locking="inverted")
    b.task(1, "users", "worker-0", queued=0, start=1, end=30 if first_task_ends else None)
    b.lock("worker-0", "sessions", task=1, wait=10, timeout=20)
    b.task(2, "send", "worker-0", queued=0, start=40, end=100)
    b.lock("worker-0", "storage", task=2, wait=50, acquired=50, released=90)
    trace = load(b, tmp_path)
    assert edges(wait_for_graph(trace, 15), "kind") == {("worker-0", "sessions"): ("waits",)}
    waiting = ("worker-0", "sessions") in wait_for_graph(trace, 45).edges
    assert waiting == still_waiting_at_45
    assert edges(wait_for_graph(trace, 60), "kind") == {("storage", "worker-0"): ("holds",)}


# -- drawings -----------------------------------------------------------------


def test_draw_lock_order_marks_the_cycle_red_and_dashed(inversion, tmp_path):
    fig = Figure(figsize=(5, 5))
    ax = fig.add_subplot()
    assert draw_lock_order(ax, inversion) is ax
    on_cycle = [p for p in arrows(ax) if red(p)]
    assert len(arrows(ax)) == 3 and len(on_cycle) == 2
    assert {p.get_linestyle() for p in on_cycle} == {"dashed"}
    assert [p.get_linestyle() for p in arrows(ax) if not red(p)] == ["solid"]
    assert ax.get_title().startswith("lock order: 1 cycle")
    texts = {t.get_text() for t in ax.texts}
    assert {"2 × /users", "1 × /login", "1 × /commit", "storage", "sessions"} <= texts
    assert len(saved_png(fig, tmp_path / "order.png")) == 3


def test_draw_lock_order_labels_an_edge_only_the_server_saw(tmp_path):
    b = TraceBuilder(sample=0.5)
    nested(b, 1, "users", "worker-3", 0, "storage", "sessions")
    report = circular(
        ["storage", "sessions", "storage"], ("worker-3", "users"), ("worker-0", "login")
    )
    b.event(150, "worker-0", "order_violation", **report)
    ax = draw_lock_order(Figure().add_subplot(), load(b, tmp_path))
    assert {"1 × /users", "server saw: /login"} <= {t.get_text() for t in ax.texts}


def test_draw_lock_order_says_when_there_is_no_nesting(tmp_path):
    b = TraceBuilder()
    b.task(1, "send", "worker-0", queued=0, start=1, end=50)
    b.lock("worker-0", "storage", task=1, wait=10, acquired=10, released=20)
    fig = Figure()
    ax = fig.add_subplot()
    assert draw_lock_order(ax, load(b, tmp_path)) is ax
    assert [t.get_text() for t in ax.texts] == ["no lock nesting in this trace"]
    assert arrows(ax) == []
    saved_png(fig, tmp_path / "empty.png")


def test_draw_wait_for_marks_the_deadlock(deadlock, tmp_path):
    fig = Figure(figsize=(5, 5))
    ax = fig.add_subplot()
    assert draw_wait_for(ax, deadlock, 400) is ax
    assert ax.get_title().startswith("wait-for at 0.0004 ms: deadlock")
    assert len(arrows(ax)) == 4 and all(red(p) for p in arrows(ax))
    styles = sorted(p.get_linestyle() for p in arrows(ax))
    assert styles == ["dashed", "dashed", "solid", "solid"]  # waits dashed, holds solid
    assert {"worker-1", "storage", "holds", "waits 0.0001 ms"} <= {t.get_text() for t in ax.texts}
    assert len(saved_png(fig, tmp_path / "wait-for.png")) == 3


def test_draw_wait_for_before_the_deadlock_has_no_red(deadlock):
    ax = draw_wait_for(Figure().add_subplot(), deadlock, 350)
    assert "deadlock" not in ax.get_title()
    assert len(arrows(ax)) == 3 and not any(red(p) for p in arrows(ax))
    empty = draw_wait_for(Figure().add_subplot(), deadlock, 50)
    assert [t.get_text() for t in empty.texts] == ["no lock held or awaited"]


def test_wait_for_snapshots_draws_one_axes_per_time(deadlock, tmp_path):
    fig = Figure(figsize=(10, 7))
    times = [50, 150, 350, 400]
    axes = wait_for_snapshots(fig, deadlock, times)
    assert len(axes) == 4 and fig.axes == axes  # a 2 x 3 grid, the spare two removed
    titles = [ax.get_title() for ax in axes]
    assert titles[0] == "wait-for at 5e-05 ms"
    assert ["deadlock" in t for t in titles] == [False, False, False, True]
    assert [len(arrows(ax)) for ax in axes] == [0, 1, 3, 4]
    assert len(saved_png(fig, tmp_path / "snapshots.png")) == 3


def test_wait_for_snapshots_rejects_no_times(deadlock):
    with pytest.raises(ValueError, match="at least one time"):
        wait_for_snapshots(Figure(), deadlock, [])
