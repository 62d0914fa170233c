"""Statistics of a load run: the counting, the per-process report, the summary, percentiles.

Owns the numbers a load run produces and their rendering (the live progress
line, the readable summary). Pure: no sockets, no processes, no clocks (every
time is passed in); each load process counts in a `Tally` (kept by
loadgen/wire.py's `Crowd`) and ships its `ProcessReport`, and the parent
(loadgen/run.py) has this module merge them into a `Summary`. Must not
import loadgen/run.py, loadgen/users.py or loadgen/wire.py (they
import us).
"""

from __future__ import annotations

import dataclasses
import math
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# Sends whose real send time trails their scheduled time by more than this are
# "behind" (open loop): past it the generator, not the server, sets the pace.
BEHIND_SECONDS = 0.010


def percentiles(values: Iterable[float], qs: Iterable[float] = (50, 90, 99)) -> dict[str, float]:
    """Nearest-rank percentiles of `values`, plus their max and mean.

    Returns `{"p50": ..., "p90": ..., "p99": ..., "max": ..., "mean": ...}` (one
    `p<q>` key per q in `qs`; `p99.9` for 99.9), or `{}` when `values` is empty.
    The nearest-rank p-th percentile is the smallest value with at least p % of
    the values at or below it, so it is always one of the values.
    """
    data = sorted(values)
    n = len(data)
    if n == 0:
        return {}
    out: dict[str, float] = {}
    for q in qs:
        rank = max(1, math.ceil(q / 100 * n))
        out[f"p{q:g}"] = float(data[min(rank, n) - 1])
    out["max"] = float(data[-1])
    out["mean"] = math.fsum(data) / n
    return out


@dataclass(frozen=True)
class ProcessReport:
    """What one load process measured, shipped to the parent over its pipe.

    Counts are of the measured window: sends whose timestamp lies in it, and the
    replies and deliveries of those sends (received up to the end of the drain).
    """

    connected: int
    sent: int
    acked: int
    delivered: int
    expected: int  # deliveries this process should have seen (from every process's acked sends)
    behind: int
    retried: int  # logins answered `busy` and sent again (not errors: PROTOCOL.md §7)
    acks: int  # /ack commands sent in the window
    errors: dict[str, int]
    cpu_seconds: float
    latency: bytes  # array('d') of send->delivery seconds
    ok_latency: bytes  # array('d') of send->ok seconds


class Tally:
    """One load process's counts as its users' events arrive; `report` ships them.

    The window rule: a send counts when its stamp lies in [t0, t1); its ok and its
    deliveries count against that same stamp, each only while its side is open
    (`close_oks` when the drain of replies ends, `close_deliveries` when the drain
    of deliveries ends), so late arrivals are not counted and both sides agree.
    """

    def __init__(self, procs: int) -> None:
        self.sent = self.acked = self.delivered = self.behind = 0
        self.retried = 0  # logins answered `busy` and sent again
        self.acks = 0  # /ack commands sent in the window
        self.errors: Counter[str] = Counter()  # error replies by code, "closed", "bad_line", ...
        self.note = ""  # the first problem, in words
        self.owes = [0] * procs  # deliveries our acked window sends owe each process
        self.lat, self.ok_lat = array("d"), array("d")  # send->delivery, send->ok seconds
        never = (math.inf, math.inf)
        self.window = self.ok_window = self.msg_window = never

    def open(self, t0: float, t1: float) -> None:
        """The measured window is [t0, t1) on the shared monotonic clock."""
        self.window = self.ok_window = self.msg_window = (t0, t1)

    def close_oks(self) -> None:
        """Count no more oks."""
        self.ok_window = (0.0, 0.0)

    def close_deliveries(self) -> None:
        """Count no more deliveries."""
        self.msg_window = (0.0, 0.0)

    def error(self, code: str, note: str = "", n: int = 1) -> None:
        """Count `n` problems of kind `code`; keep the first note."""
        self.errors[code] += n
        self.note = self.note or note

    def send(self, ts: float) -> None:
        """A send stamped `ts` went out."""
        t0, t1 = self.window
        if t0 <= ts < t1:
            self.sent += 1

    def ok(self, ts: float, now: float, owes: tuple[tuple[int, int], ...]) -> None:
        """The ok to the send stamped `ts`; it owes `owes`: (process, deliveries) pairs."""
        t0, t1 = self.ok_window
        if t0 <= ts < t1:
            self.acked += 1
            self.ok_lat.append(now - ts)
            for p, n in owes:
                self.owes[p] += n

    def ack(self, now: float) -> None:
        """An /ack went out at `now`."""
        t0, t1 = self.window
        if t0 <= now < t1:
            self.acks += 1

    def delivery(self, ts: float, now: float) -> None:
        """A delivery of the send stamped `ts`."""
        t0, t1 = self.msg_window
        if t0 <= ts < t1:
            self.delivered += 1
            self.lat.append(now - ts)

    def report(self, connected: int, cpu_seconds: float, owed: int) -> ProcessReport:
        """The counts for the parent; `owed`: the deliveries every process owes us."""
        return ProcessReport(
            connected=connected,
            sent=self.sent,
            acked=self.acked,
            delivered=self.delivered,
            expected=owed,
            behind=self.behind,
            retried=self.retried,
            acks=self.acks,
            errors=dict(self.errors),
            cpu_seconds=cpu_seconds,
            latency=self.lat.tobytes(),
            ok_latency=self.ok_lat.tobytes(),
        )


@dataclass(frozen=True)
class Summary:
    """The result of one load run (see `loadgen.run.run`).

    Invariant: on a correct server `undelivered == 0`, `errors == {}`, and
    `delivered == acked` for private traffic (`acked * group_size` for group).
    """

    spec: Any  # the LoadSpec that was run
    procs: int
    seconds: float  # the measured window really measured
    connected: int  # clients logged in
    sent: int  # sends in the window
    acked: int  # ok replies to sends in the window
    delivered: int  # deliveries of the window's sends, per member (sender's echo included)
    errors: dict[str, int]  # every error reply by code, "closed", "bad_line", "send_buffer_full"...
    undelivered: int  # expected deliveries of acked sends that never arrived (must be 0)
    latency_ms: dict[str, float]  # send->delivery (recipient side); {} if none
    ok_latency_ms: dict[str, float]  # send->ok (sender side); {} if none
    cpu_seconds: float  # user+system CPU of all load processes during the window
    behind: int = 0  # open loop: sends issued > 10 ms late, or skipped (send buffer full)
    retried: int = 0  # logins answered `busy` (the password lane was full) and sent again
    acks: int = 0  # /ack commands sent in the window (the client's policy: 20 msgs or 200 ms)

    @property
    def acks_per_message(self) -> float:
        """Acks sent per message delivered, over the window."""
        return self.acks / self.delivered if self.delivered else 0.0

    @property
    def delivered_per_s(self) -> float:
        """Deliveries per measured second."""
        return self.delivered / self.seconds if self.seconds > 0 else 0.0

    @property
    def sent_per_s(self) -> float:
        """Sends per measured second."""
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_percent(self) -> float:
        """Load CPU as a percentage of one core over the window."""
        return 100 * self.cpu_seconds / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        """True when nothing went wrong: no errors and nothing undelivered."""
        return not self.errors and self.undelivered == 0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every field (the spec as a dict too) and the rates."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["spec"] = dataclasses.asdict(self.spec)
        out["delivered_per_s"] = self.delivered_per_s
        out["sent_per_s"] = self.sent_per_s
        out["cpu_percent"] = self.cpu_percent
        return out


def summarize(spec: Any, seconds: float, reports: list[ProcessReport]) -> Summary:
    """Merge the reports of every load process into one `Summary`."""
    errors: Counter[str] = Counter()
    latency, ok_latency = array("d"), array("d")
    for r in reports:
        errors.update(r.errors)
        latency.frombytes(r.latency)
        ok_latency.frombytes(r.ok_latency)
    return Summary(
        spec=spec,
        procs=len(reports),
        seconds=seconds,
        connected=sum(r.connected for r in reports),
        sent=sum(r.sent for r in reports),
        acked=sum(r.acked for r in reports),
        delivered=sum(r.delivered for r in reports),
        errors={k: v for k, v in sorted(errors.items()) if v},
        undelivered=sum(max(0, r.expected - r.delivered) for r in reports),
        latency_ms=percentiles(x * 1000 for x in latency),
        ok_latency_ms=percentiles(x * 1000 for x in ok_latency),
        cpu_seconds=sum(r.cpu_seconds for r in reports),
        behind=sum(r.behind for r in reports),
        retried=sum(r.retried for r in reports),
        acks=sum(r.acks for r in reports),
    )


def progress_line(elapsed: float, sent: int, delivered: int, errors: int, rate: float) -> str:
    """The live line printed once a second (window counts so far)."""
    return (
        f"[{elapsed:6.1f}s] sent {sent:>9}  delivered {delivered:>9}  errors {errors:>4}"
        f"  {rate:>9.0f} delivered msgs/s"
    )


def _lat(d: dict[str, float]) -> str:
    if not d:
        return "none"
    return "  ".join(f"{k} {d[k]:.2f}" for k in ("p50", "p90", "p99", "max", "mean") if k in d)


def format_summary(s: Summary) -> str:
    """The readable end-of-run report."""
    spec = s.spec
    mix = ",".join(f"{k}={w:g}" for k, w in spec.mix)
    head = f"{spec.mode} loop" if spec.mode != "idle" else "idle"
    if spec.mode == "open":
        head += f" at {spec.rate:g} msgs/s offered"
    elif spec.mode == "closed":
        head += f", window {spec.window}"
    errs = ", ".join(f"{k} {v}" for k, v in s.errors.items()) or "none"
    lines = [
        f"chat-loadgen: {head}, {s.connected}/{spec.clients} clients in {s.procs} processes,"
        f" mix {mix}, {s.seconds:.2f} s measured",
        f"  delivered    {s.delivered:>10}  {s.delivered_per_s:>10.1f} msgs/s",
        f"  sent         {s.sent:>10}  {s.sent_per_s:>10.1f} sends/s   acked {s.acked}",
        f"  latency ms   send->delivery  {_lat(s.latency_ms)}",
        f"               send->ok        {_lat(s.ok_latency_ms)}",
        f"  errors       {errs}",
        f"  undelivered  {s.undelivered} after drain",
        f"  acks         {s.acks:>10}  {s.acks_per_message:>10.2f} per message delivered",
    ]
    if spec.mode == "open":
        lines.append(f"  behind       {s.behind} sends > 10 ms late or skipped (send buffer full)")
    if s.retried:
        lines.append(f"  retried      {s.retried} logins answered busy (password lane full)")
    lines.append(
        f"  load CPU     {s.cpu_seconds:.2f} s = {s.cpu_percent:.0f} % of one core over the window"
    )
    return "\n".join(lines)
