"""Drawings of the lock graphs of visualizer/graphs.py on matplotlib Axes.

Owns: how a lock-order or wait-for graph looks (layout on a circle, node
shapes, colours, edge styles, labels, legends) and the small multiples of
wait-for graphs over time. Must not: build or question a graph
(visualizer/graphs.py does), read files, pick a matplotlib backend, create
figures or call `plt.show()`: each draw function draws on the Axes (or
Figure) it is given and returns it, so it runs headless under Agg.

Cycle edges are red *and* dashed (lock order) or red and thicker
(wait-for), so black-and-white prints still show them.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

import networkx as nx
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from visualizer.graphs import NoHolder, Unheld, deadlock_cycles, lock_order_graph, wait_for_graph
from visualizer.load import Trace
from visualizer.units import duration

CYCLE_COLOR = "#d62728"
EDGE_COLOR = "#555555"
THREAD_COLOR = "#dbe7f3"
LOCK_COLOR = "#f6e7c8"
IDLE_COLOR = "#f2f2f2"
# Curve edges, so A -> B and B -> A are two arcs, not one line; the
# lock-order graph is denser in two-way pairs, so it curves more.
ARC = "arc3,rad=0.15"
ORDER_ARC = "arc3,rad=0.25"
# Lock-order edge widths, from the rarest pair to the most frequent one.
MIN_WIDTH, MAX_WIDTH = 1.0, 6.0
# Nodes are laid out on the unit circle; the view leaves room for labels.
VIEW = 1.5

_Layout = dict[Hashable, tuple[float, float]]  # node -> (x, y)
_Sizes = dict[Hashable, float]  # node -> marker area, pt²
_Edge = tuple[Hashable, Hashable]


# -- the lock-order graph ---------------------------------------------------


def draw_lock_order(ax: Axes, trace: Trace) -> Axes:
    """Draw the lock-order graph of `trace` on `ax` and return `ax`.

    Classes are circles; edge width grows with the count; labels read
    "count × /first command"; edges on a cycle are red and dashed. A trace
    without nesting gets a message instead of an empty picture.
    """
    g = lock_order_graph(trace)
    ax.set_axis_off()
    if g.number_of_edges() == 0:
        return _message(ax, "no lock nesting in this trace", "lock order")
    pos = _circle(list(g.nodes))
    sizes = {n: _node_size(n, 10) for n in g}
    _nodes(ax, pos, list(g), "o", LOCK_COLOR, sizes, 10)
    top = max(c for _, _, c in g.edges(data="count")) or 1
    for on_cycle in (False, True):
        edges = [(a, b) for a, b, c in g.edges(data="cycle") if c == on_cycle]
        widths = [MIN_WIDTH + (MAX_WIDTH - MIN_WIDTH) * g[a][b]["count"] / top for a, b in edges]
        style = "dashed" if on_cycle else "solid"
        color = CYCLE_COLOR if on_cycle else EDGE_COLOR
        _edges(ax, g, pos, edges, sizes, "o", ORDER_ARC, color=color, style=style, width=widths)
    for two_way in (False, True):  # two-way pairs: each label nearer its own tail
        labels = {(a, b): _order_label(g[a][b]) for a, b in g.edges if g.has_edge(b, a) == two_way}
        _edge_labels(ax, g, pos, labels, sizes, 8, ORDER_ARC, 0.62 if two_way else 0.5)
    cycles = g.graph["cycles"]
    title = f"lock order: {_count(len(cycles), 'cycle')}"
    if 0 < len(cycles) <= 2:
        title += "\n" + "\n".join(" → ".join([*c, c[0]]) for c in cycles)
    ax.set_title(title, color=CYCLE_COLOR if cycles else "black")
    ax.legend(
        handles=[
            Line2D([], [], color=EDGE_COLOR, lw=2, label="B taken while holding A"),
            Line2D([], [], color=CYCLE_COLOR, lw=2, ls="--", label="on a cycle: can deadlock"),
        ],
        loc="lower center",
        fontsize=8,
        frameon=False,
        ncol=2,
        bbox_to_anchor=(0.5, -0.08),
    )
    return _frame(ax)


def _order_label(attrs: dict[str, Any]) -> str:
    cmd = "/" + attrs["cmds"][0] if attrs["cmds"] else "?"
    if attrs["count"] == 0:
        return f"server saw: {cmd}"
    return f"{attrs['count']} × {cmd}"


# -- the wait-for graph -----------------------------------------------------


def draw_wait_for(ax: Axes, trace: Trace, at: int) -> Axes:
    """Draw the wait-for graph of `trace` at `at` (ns) on `ax`, return `ax`.

    Threads are boxes, locks circles; "holds" edges (lock -> thread) are
    solid, "waits for" edges (thread -> lock) dashed, deadlock edges red
    and thicker. The title gives the time in ms and any deadlock cycle; a
    box at the bottom says why a lock waited for shows no holder (free at
    that instant, or its holder not in the trace).
    """
    g = wait_for_graph(trace, at)
    _draw_wait_for(ax, g, _wait_for_layout(g), [], 9, detail=True)
    if g.number_of_nodes():
        ax.legend(handles=_wait_for_handles(), loc="lower center", fontsize=7,
                  frameon=False, ncol=3, bbox_to_anchor=(0.5, -0.1))  # fmt: skip
    return ax


def wait_for_snapshots(fig: Figure, trace: Trace, times: Sequence[int]) -> list[Axes]:
    """Small multiples: the wait-for graph at each of `times` (ns), one Axes
    each, in `fig`, all with the same node positions (nodes idle at an
    instant are drawn faded). Returns the Axes, in the order of `times`.
    Raises ValueError when `times` is empty."""
    if not times:
        raise ValueError("wait_for_snapshots needs at least one time to draw")
    graphs = [wait_for_graph(trace, t) for t in times]
    union = nx.DiGraph()
    rank = {t: i for i, t in enumerate(trace.thread_order())}
    kinds = {n: k for g in graphs for n, k in g.nodes(data="kind")}
    union.add_nodes_from(sorted(kinds, key=lambda n: (kinds[n] != "thread", rank.get(n, 0), n)))
    nx.set_node_attributes(union, kinds, "kind")
    for g in graphs:
        union.add_edges_from(g.edges)
    pos = _wait_for_layout(union)
    cols = min(len(times), 3)
    axes = list(fig.subplots(math.ceil(len(times) / cols), cols, squeeze=False).ravel())
    for extra in axes[len(times) :]:
        fig.delaxes(extra)
    axes = axes[: len(times)]
    for ax, g in zip(axes, graphs, strict=True):
        idle = [n for n in union if n not in g]
        _draw_wait_for(ax, g, pos, idle, 7, detail=False, kinds=kinds)
    fig.legend(handles=_wait_for_handles(), loc="lower center", fontsize=8, frameon=False, ncol=5)
    return axes


def _draw_wait_for(ax: Axes, g: nx.DiGraph, pos: _Layout, idle: list[Hashable], fontsize: int,
                   detail: bool, kinds: dict[Hashable, str] | None = None) -> Axes:  # fmt: skip
    at = g.graph["at"]
    ax.set_axis_off()
    cycles = g.graph["cycles"]
    title = f"wait-for at {_ms(at)} ms"
    if cycles:
        title += ": deadlock"
        if detail:
            title += "\n" + "\n".join(" → ".join([*c, c[0]]) for c in cycles)
    if not g.number_of_nodes() and not idle:
        return _message(ax, "no lock held or awaited", title)
    kinds = kinds or {}
    sizes = {n: _node_size(n, fontsize) for n in [*g, *idle]}
    for kind, shape, fill in (("thread", "s", THREAD_COLOR), ("lock", "o", LOCK_COLOR)):
        live = [n for n in g if g.nodes[n]["kind"] == kind]
        _nodes(ax, pos, live, shape, fill, sizes, fontsize)
        faded = [n for n in idle if kinds.get(n) == kind]
        _nodes(ax, pos, faded, shape, IDLE_COLOR, sizes, fontsize, faded=True)
    for kind, shape, style in (("holds", "s", "solid"), ("waits", "o", "dashed")):
        for on_cycle in (False, True):
            edges = [(a, b) for a, b, d in g.edges(data=True)
                     if d["kind"] == kind and d["cycle"] == on_cycle]  # fmt: skip
            color, width = (CYCLE_COLOR, 2.5) if on_cycle else (EDGE_COLOR, 1.3)
            _edges(ax, g, pos, edges, sizes, shape, ARC, color=color, style=style, width=width)
    labels = {
        (a, b): "holds" if d["kind"] == "holds" else f"waits {_ms(at - d['since'])} ms"
        for a, b, d in g.edges(data=True)
    }
    _edge_labels(ax, g, pos, labels, sizes, fontsize - 1, ARC, 0.5)
    if not g.number_of_nodes():
        ax.text(0.5, 0.02, "no lock held or awaited", ha="center", va="bottom",
                fontsize=fontsize, transform=ax.transAxes)  # fmt: skip
    notes = [_no_holder_text(n, at, detail) for n in g.graph.get("unheld", ())]
    if notes:
        ax.text(0.5, 0.02, "\n".join(notes), ha="center", va="bottom", fontsize=fontsize - 1,
                transform=ax.transAxes, bbox={"boxstyle": "round,pad=0.3", "fc": "white",
                                              "ec": "#999999", "ls": "--"})  # fmt: skip
    ax.set_title(title, fontsize=fontsize + 2, color=CYCLE_COLOR if cycles else "black")
    return _frame(ax)


def _no_holder_text(note: NoHolder, at: int, detail: bool) -> str:
    """What the picture says of a lock waited for that nobody holds."""
    if note.why is Unheld.NOT_SAMPLED:
        text = f"{note.lock}: holder unknown: not sampled"
        return text + " (--trace-sample kept only some tasks)" if detail else text
    if note.why is Unheld.DROPPED:
        text = f"{note.lock}: holder unknown"
        return text + ": the trace dropped events (buffer full)" if detail else text
    text = f"{note.lock}: no holder: free at this instant"
    if not detail:
        return text
    parts = []
    if note.released is not None:
        parts.append(f"released by {note.released[0]} {duration(at - note.released[1])} before")
    if note.taken is not None:
        parts.append(f"next taken by {note.taken[0]} {duration(note.taken[1] - at)} after")
    return text + (f"\n({'; '.join(parts)})" if parts else "")


def _wait_for_layout(g: nx.DiGraph) -> _Layout:
    """Cycles first, in their order, so a deadlock is drawn as a ring; then
    each thread followed by its locks."""
    placed: dict[Hashable, None] = {}
    for cycle in deadlock_cycles(g):
        placed.update(dict.fromkeys(cycle))
    for n, kind in g.nodes(data="kind"):
        if kind == "thread":
            placed.update(dict.fromkeys([n, *g.predecessors(n), *g.successors(n)]))
    placed.update(dict.fromkeys(g))
    return _circle(list(placed))


def _wait_for_handles() -> list[Line2D]:
    return [
        Line2D([], [], ls="", marker="s", ms=9, mfc=THREAD_COLOR, mec="black", label="thread"),
        Line2D([], [], ls="", marker="o", ms=9, mfc=LOCK_COLOR, mec="black", label="lock"),
        Line2D([], [], color=EDGE_COLOR, lw=1.3, label="holds (lock → thread)"),
        Line2D([], [], color=EDGE_COLOR, lw=1.3, ls="--", label="waits for (thread → lock)"),
        Line2D([], [], color=CYCLE_COLOR, lw=2.5, label="deadlock cycle"),
    ]


# -- drawing helpers --------------------------------------------------------


def _circle(nodes: Sequence[Hashable]) -> _Layout:
    """Positions on the unit circle, clockwise from the left (one node: the
    centre), so two nodes sit side by side and four make a diamond."""
    if len(nodes) == 1:
        return {nodes[0]: (0.0, 0.0)}
    step = 2 * math.pi / max(len(nodes), 1)
    return {n: (math.cos(math.pi - i * step), math.sin(math.pi - i * step))
            for i, n in enumerate(nodes)}  # fmt: skip


def _node_size(label: Hashable, fontsize: int) -> float:
    """Marker area (pt²) whose width fits `label` at `fontsize`."""
    side = 0.6 * fontsize * len(str(label)) + 1.2 * fontsize
    return side * side


def _nodes(ax: Axes, pos: _Layout, nodes: list[Hashable], shape: str, fill: str,
           sizes: _Sizes, fontsize: int, faded: bool = False) -> None:  # fmt: skip
    if not nodes:
        return
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    nx.draw_networkx_nodes(g, pos, nodelist=nodes, node_shape=shape, node_color=fill,
                           node_size=[sizes[n] for n in nodes], edgecolors="#999999" if faded
                           else "black", linewidths=1.0, ax=ax)  # fmt: skip
    nx.draw_networkx_labels(g, pos, labels={n: str(n) for n in nodes}, font_size=fontsize,
                            font_color="#999999" if faded else "black", ax=ax)  # fmt: skip


def _edges(ax: Axes, g: nx.DiGraph, pos: _Layout, edges: list[_Edge], sizes: _Sizes,
           target_shape: str, arc: str, **style: Any) -> None:  # fmt: skip
    if not edges:
        return
    nodes = list(g)
    nx.draw_networkx_edges(g, pos, edgelist=edges, edge_color=style["color"],
                           style=style["style"], width=style["width"], arrows=True,
                           arrowsize=14, connectionstyle=arc, nodelist=nodes,
                           node_size=[sizes[n] for n in nodes], node_shape=target_shape,
                           ax=ax)  # fmt: skip


def _edge_labels(ax: Axes, g: nx.DiGraph, pos: _Layout, labels: dict[_Edge, str],
                 sizes: _Sizes, fontsize: int, arc: str, label_pos: float) -> None:  # fmt: skip
    if not labels:
        return
    nodes = list(g)
    nx.draw_networkx_edge_labels(g, pos, edge_labels=labels, font_size=fontsize, rotate=False,
                                 label_pos=label_pos, connectionstyle=arc, nodelist=nodes,
                                 node_size=[sizes[n] for n in nodes],
                                 bbox={"boxstyle": "round,pad=0.15", "fc": "white",
                                       "ec": "none", "alpha": 0.85}, ax=ax)  # fmt: skip


def _frame(ax: Axes) -> Axes:
    ax.set_xlim(-VIEW, VIEW)
    ax.set_ylim(-VIEW, VIEW)
    ax.set_aspect("equal")
    return ax


def _message(ax: Axes, text: str, title: str) -> Axes:
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, transform=ax.transAxes)
    ax.set_title(title)
    return ax


def _ms(ns: float) -> str:
    return f"{ns / 1e6:.4g}"


def _count(n: int, noun: str) -> str:
    return f"no {noun}" if n == 0 else f"{n} {noun}{'s' if n > 1 else ''}"
