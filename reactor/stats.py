"""Statistics as frozen records, trio-style: what `/stats` reports, from
the locks, the worker pool and the connections, nested in one record.

Owns: the record types and the per-class sums of lock counters. Must not:
read any live object (each part makes its own record) or turn records into
JSON (the protocol does, reactor/protocol/encoding.py `stats_fields`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LockStats:
    """lockstat-style counters of one lock, or of a class of locks (times in ns)."""

    name: str
    cls: str
    acquisitions: int = 0
    contended: int = 0  # acquisitions that had to wait
    wait_total: int = 0
    wait_max: int = 0
    hold_total: int = 0
    hold_max: int = 0


@dataclass(frozen=True)
class PoolStatistics:
    """Who runs commands: worker threads (or, thread per client, the
    connections' threads), how many run a batch now, batches waiting."""

    workers: int
    busy: int
    queued: int


@dataclass(frozen=True)
class ConnectionStatistics:
    """Open client sockets and the I/O model's counters since start."""

    open: int
    accepted: int
    slow_consumers: int
    rejected_full: int
    queued_bytes: int = 0  # waiting in every output queue now
    irc_open: int = 0  # of `open`, those on the IRC port
    irc_accepted: int = 0  # of `accepted`, those on the IRC port


@dataclass(frozen=True)
class FrontStatistics:
    """What an I/O model reports of itself (reactor/frontend.py `Frontend`)."""

    pool: PoolStatistics
    connections: ConnectionStatistics
    locks: tuple[LockStats, ...] = ()  # locks the I/O model owns (per-connection ones)


@dataclass(frozen=True)
class ClusterStatistics:
    """A cluster node's view: its delivery watermark, the bus, the reads
    of others' commits from PostgreSQL (reactor/cluster/node.py)."""

    node: str
    watermark: int
    bus_connected: bool
    published: int
    received: int
    bus_reconnects: int
    polls: int
    catch_up_reads: int
    caught_up: int  # others' messages those reads found


@dataclass(frozen=True)
class ServerStatistics:
    """The whole `/stats` snapshot."""

    locking: str
    model: str
    locks: tuple[LockStats, ...]
    classes: tuple[LockStats, ...]
    pool: PoolStatistics
    connections: ConnectionStatistics
    order_violations: int
    node: str = ""  # the cluster node's name; "" for a server on its own
    cluster: ClusterStatistics | None = None


def class_statistics(stats: tuple[LockStats, ...] | list[LockStats]) -> tuple[LockStats, ...]:
    """Per-class sums (maxima for the max fields) of per-lock statistics."""
    by_cls: dict[str, LockStats] = {}
    for s in stats:
        c = by_cls.get(s.cls) or LockStats(s.cls, s.cls)
        by_cls[s.cls] = LockStats(
            s.cls, s.cls, c.acquisitions + s.acquisitions, c.contended + s.contended,
            c.wait_total + s.wait_total, max(c.wait_max, s.wait_max),
            c.hold_total + s.hold_total, max(c.hold_max, s.hold_max),
        )  # fmt: skip
    return tuple(sorted(by_cls.values(), key=lambda s: s.cls))
