"""The slow consumer (`chat-demo slow-consumer`, notebook 04): a reader that
stops reading is flooded until the server drops it, then it logs in again
and gets every message replayed; and what its trace shows of that.

Owns: the scripted run (json-mode harness clients, the reader with a
small receive buffer) and what it saw (`SlowConsumerRun`); the reader's
output buffer over time read from the trace (`BufferGrowth`); the charts no
other package draws (that buffer against `--max-outbuf`, the ids sent, read
and replayed). Must not: start a server other than through
classroom/live.py, read traces other than with visualizer/load.py, save
files other than the run's database and trace (the scenario in
classroom/demos_io.py saves the charts), or wait without a deadline.

    run = run_slow_consumer(folder)   # flood a reader that never reads
    growth = buffer_growth(run)       # its output buffer, from the trace
    growth_chart(ax, growth)
"""

from __future__ import annotations

import bisect
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from matplotlib.axes import Axes

from classroom.live import LiveServer, fresh_paths, stop_cleanly
from harness import Client
from visualizer.load import load_trace

KIB, MS = 1024, 1e6
#: How long a scripted client waits for one line before it gives up.
REPLY_SECONDS = 10.0
#: The server's log line for a slow consumer (reactor/net/loop.py `_slow_consumer`).
_DROP_LINE = re.compile(r"(\S+) is not reading \((\d+) bytes queued\): dropped as slow consumer")


def _scripted(address: tuple[str, int], rcvbuf: int | None = None) -> Client:
    """A json-mode client whose every read waits REPLY_SECONDS at most;
    `rcvbuf` (SO_RCVBUF) is set before connecting, so the window it
    advertises stays small."""
    return Client(address, timeout=REPLY_SECONDS, rcvbuf=rcvbuf)


def _replies(client: Client, line: str, n: int) -> list[dict]:
    """Send `line` `n` times in one write; the `n` replies, in order."""
    client.send(*[line] * n)
    return [client.reply() for _ in range(n)]


@dataclass(frozen=True)
class SlowConsumerRun:
    """What `run_slow_consumer` saw. Ids are message ids, in arrival order."""

    trace: Path
    max_outbuf: int
    sent: tuple[int, ...]  # ids the server gave the sender's /send, in order
    sent_before_drop: int  # how many of them were sent before the drop was seen
    read_before_drop: tuple[int, ...]  # found in the reader's socket after the drop
    bye: str | None  # the reason of the last line of that connection
    unread: int  # `unread` of the login reply when the reader came back
    replayed: tuple[int, ...]  # the messages after that reply
    line_bytes: dict[int, int]  # id -> bytes of its json line (from the replay)
    drop_log: str  # the server's log line about the drop
    queued_at_drop: int  # bytes queued for the reader then (from that line)
    counters: dict  # /stats "connections" afterwards

    @property
    def lost(self) -> list[int]:
        """Sent but neither read nor replayed (must be empty)."""
        return sorted(set(self.sent) - set(self.read_before_drop) - set(self.replayed))

    @property
    def in_order(self) -> bool:
        """The replay came in id order."""
        return list(self.replayed) == sorted(self.replayed)

    def lines(self) -> tuple[str, str, str]:
        """Three lines for a person."""
        read, total = len(self.read_before_drop), sum(self.line_bytes.values())
        return (
            f"reader dropped with bye {self.bye}: {self.queued_at_drop:,} bytes queued for it"
            f" (--max-outbuf {self.max_outbuf:,}) after {self.sent_before_drop} messages"
            f" ({total / KIB / KIB:.1f} MiB in all)",
            f"it had read {read} of them; {len(self.sent) - self.sent_before_drop} more were"
            f" sent while it was away; its next login said unread {self.unread}",
            f"replayed {len(self.replayed)} in id order: {self.in_order}; lost {len(self.lost)};"
            f" read and replayed again {len(set(self.read_before_drop) & set(self.replayed))}"
            " (never acked)",
        )


def run_slow_consumer(
    folder: str | Path, max_outbuf: int = 65536, text_bytes: int = 3000, after: int = 20,
    rcvbuf: int = 4096, batch: int = 10, limit: int = 20000,
) -> SlowConsumerRun:  # fmt: skip
    """Start a server (`--max-outbuf max_outbuf --trace-io`); a reader with a
    `rcvbuf`-byte receive buffer logs in (json mode) and stops reading; a
    sender floods it with `/send reader <text_bytes bytes>` in batches of
    `batch` until the server logs the drop. The reader then reads what its
    socket holds up to the `bye`; the sender sends `after` more messages;
    the reader logs in again and reads the replay. Writes
    `slow-consumer.jsonl` and `.db` into `folder`.
    Raises RuntimeError if `limit` messages did not get the reader dropped,
    or if the server does not stop cleanly."""
    db, trace = fresh_paths(Path(folder), "slow-consumer")
    srv = LiveServer(db, "--max-outbuf", str(max_outbuf), "--trace-io", trace=trace).start()
    try:
        reader = _scripted(srv.addr, rcvbuf=rcvbuf)
        reader.call("/login reader")
        sender = _scripted(srv.addr)
        sender.call("/login sender")
        line = f"/send reader {'x' * text_bytes}"
        sent: list[int] = []
        while not (drop := _DROP_LINE.search(srv.log_text())):
            if len(sent) >= limit:
                raise RuntimeError(f"{limit} messages and the reader was never dropped")
            sent += [r["id"] for r in _replies(sender, line, batch)]
        before = len(sent)
        old = [json.loads(x) for x in reader.until_closed() if x.startswith("{")]
        sent += [r["id"] for r in _replies(sender, line, after)]
        counters = sender.call("/stats")["connections"]
        again = _scripted(srv.addr)
        unread = again.call("/login reader")["unread"]
        replay = [again.readline() for _ in range(unread)]
        again.close()
        sender.close()
    except BaseException:
        srv.stop()  # keep the first error, not the exit code it causes
        raise
    stop_cleanly(srv)
    replayed = [json.loads(x) for x in replay]
    return SlowConsumerRun(
        trace, max_outbuf, tuple(sent), before,
        tuple(e["id"] for e in old if e["type"] == "message"),
        old[-1].get("reason") if old and old[-1]["type"] == "bye" else None,
        unread, tuple(m["id"] for m in replayed),
        {m["id"]: len(x.encode()) for m, x in zip(replayed, replay, strict=True)},
        drop.group(0), int(drop.group(2)), counters,
    )  # fmt: skip


@dataclass(frozen=True)
class BufferGrowth:
    """The reader's connection over time (ms since the first message to it):
    bytes the server had for it and bytes it wrote to its socket, cumulative."""

    times_ms: tuple[float, ...]
    addressed: tuple[int, ...]  # its own replies, then every message to it
    written: tuple[int, ...]  # io_write events of its connection
    drop_ms: float | None  # when the server gave up on it
    max_outbuf: int

    @property
    def backlog(self) -> list[int | None]:
        """Bytes in the server's output buffer (addressed − written) up to the
        drop; None after (the buffer was cut; the rest lives in the database)."""
        return [
            a - w if self.drop_ms is None or t <= self.drop_ms else None
            for t, a, w in zip(self.times_ms, self.addressed, self.written, strict=True)
        ]


def buffer_growth(run: SlowConsumerRun) -> BufferGrowth:
    """Read `run`'s trace: the reader's connection is the first to log in;
    each message enters its buffer when the commit after its `/send` (same
    worker) ends, or at the reader's first `io_write` after that commit
    began if that comes sooner, sized by its replayed line; written bytes
    are the reader's `io_write` events. The drop: when the messages after the last one the
    reader got add up to the bytes the server's log line says it queued."""
    trace = load_trace(run.trace)
    tasks = trace.tasks.values()
    reader = min((t for t in tasks if t.cmd == "login"), key=lambda t: t.queued or 0).conn
    writes = sorted(
        (t, n) for t, kind, conn, n in trace.io if kind == "io_write" and conn == reader
    )
    write_ts = [t for t, _ in writes]
    sends = sorted((t for t in tasks if t.cmd == "send" and t.end), key=lambda t: t.start)
    commits: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for t in tasks:
        if t.cmd == "commit" and t.end is not None:
            commits[t.thread].append((t.start, t.end))
    for spans in commits.values():
        spans.sort()
    appended = []  # (ns, bytes, id)
    for task, mid in zip(sends, run.sent, strict=False):
        spans = commits[task.thread]
        i = bisect.bisect_left(spans, (task.end, 0))
        start, end = spans[i] if i < len(spans) else (task.end, task.end)
        # The reactor may append and write before the worker ends its commit task.
        k = bisect.bisect_left(write_ts, start)
        at = write_ts[k] if k < len(write_ts) and write_ts[k] < end else end
        appended.append((at, run.line_bytes.get(mid, 0), mid))
    if not appended:
        raise ValueError(f"{run.trace}: no /send to the reader in the trace")
    zero = appended[0][0]
    last_read = max(run.read_before_drop, default=0)
    drop, queued = None, 0
    for t, n, mid in appended:
        if mid == last_read or (mid > last_read and queued + n <= run.queued_at_drop):
            drop, queued = t, queued + (n if mid > last_read else 0)
    later = [(t, 1, 0, n) for t, n in writes if t >= zero]  # at one ts: append, then write
    events = sorted([(t, 0, n, 0) for t, n, _ in appended] + later)
    base = sum(n for t, n in writes if t < zero)  # its own replies, written before
    times, addressed, written = [], [], []
    a = w = base
    for t, _, da, dw in events:
        a, w = a + da, w + dw
        times.append((t - zero) / MS)
        addressed.append(a)
        written.append(w)
    drop_ms = None if drop is None else (drop - zero) / MS
    return BufferGrowth(tuple(times), tuple(addressed), tuple(written), drop_ms, run.max_outbuf)


def growth_chart(ax: Axes, g: BufferGrowth, window: tuple[float, float] | None = None) -> Axes:
    """Cumulative KiB addressed to the reader and KiB written to its socket;
    the gap is its output buffer until the drop, then only the database.
    `window` (ms) zooms in."""
    kib = [a / KIB for a in g.addressed]
    wkib = [w / KIB for w in g.written]
    ax.plot(g.times_ms, kib, drawstyle="steps-post", color="#1f77b4",
            label="addressed to the reader (its replies, then messages)")  # fmt: skip
    ax.plot(g.times_ms, wkib, drawstyle="steps-post", color="black",
            label="written to its socket by the server (io_write)")  # fmt: skip
    if g.drop_ms is not None:
        before = [t <= g.drop_ms for t in g.times_ms]
        ax.fill_between(g.times_ms, wkib, kib, where=before, step="post", color="#ff7f0e",
                        alpha=0.5, label="in the server's output buffer")  # fmt: skip
        after = [t >= g.drop_ms for t in g.times_ms]  # the drop point in both: no gap
        ax.fill_between(g.times_ms, wkib, kib, where=after, step="post",
                        facecolor="white", edgecolor="#999999", hatch="///",
                        label="only in the database (replayed at the next login)")  # fmt: skip
        ax.axvline(g.drop_ms, color="red", linestyle="--", label="dropped: bye slow_consumer")
    if window:
        shown = [v for t, a, w in zip(g.times_ms, kib, wkib, strict=True)
                 if window[0] <= t <= window[1] for v in (a, w)]  # fmt: skip
        ax.set_xlim(*window)
        if shown:
            ax.set_ylim(min(shown) - 8, max(shown) + 8)
    ax.set_xlabel("ms since the first message to the reader")
    ax.set_ylabel("KiB (cumulative)")
    ax.set_title("A reader that stops reading: what the server had for it vs what it wrote")
    ax.legend(fontsize="small", loc="upper left")
    return ax


def backlog_chart(ax: Axes, g: BufferGrowth, window: tuple[float, float] | None = None) -> Axes:
    """The reader's output buffer (KiB) over time against `--max-outbuf`;
    `window` (ms) zooms in."""
    pts = [(t, b / KIB) for t, b in zip(g.times_ms, g.backlog, strict=True) if b is not None]
    if g.drop_ms is not None and pts:
        pts.append((g.drop_ms, 0.0))  # cut after the line being written
    ax.plot([p[0] for p in pts], [p[1] for p in pts], drawstyle="steps-post", color="#ff7f0e",
            label="bytes waiting in the server's output buffer")  # fmt: skip
    ax.axhline(g.max_outbuf / KIB, color="red", linestyle=":", label="--max-outbuf")
    if g.drop_ms is not None:
        ax.axvline(g.drop_ms, color="red", linestyle="--", label="dropped: bye slow_consumer")
    if window:
        ax.set_xlim(*window)
    ax.set_xlabel("ms since the first message to the reader")
    ax.set_ylabel("KiB")
    ax.set_title("The reader's output buffer grows until the limit, then it is cut")
    ax.legend(fontsize="small", loc="upper left")
    return ax


def delivery_chart(ax: Axes, run: SlowConsumerRun) -> Axes:
    """One tick per message id on three rows: sent, read on the old
    connection, replayed at the next login; lost ids (none) in red."""
    rows = [("replayed at the next login", run.replayed),
            ("read before the drop", run.read_before_drop), ("sent (ok)", run.sent)]  # fmt: skip
    for y, (_, ids) in enumerate(rows):
        ax.plot(ids, [y] * len(ids), "|", color="#1f77b4", markersize=14)
    if run.lost:
        ax.plot(run.lost, [2] * len(run.lost), "x", color="red", label="lost")
    unread = sorted(set(run.sent[: run.sent_before_drop]) - set(run.read_before_drop))
    if unread:
        ax.axvspan(unread[0] - 0.5, unread[-1] + 0.5, color="#ffd9b3",
                   label="sent before the drop, never read on the old connection")  # fmt: skip
    away = run.sent[run.sent_before_drop :]
    if away:
        ax.axvspan(away[0] - 0.5, away[-1] + 0.5, color="#dddddd", label="sent while it was away")
    if unread or away:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(0, -0.3), ncols=2)
    ax.set_yticks(range(3), [r[0] for r in rows])
    ax.set_ylim(-0.6, 2.6)
    ax.set_xlabel("message id")
    ax.set_title("Which messages reached the reader, and how")
    return ax
