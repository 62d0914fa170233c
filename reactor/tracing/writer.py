"""The trace's writing process: turns recorded event tuples into JSON Lines.

Owns: the trace file's contents after the header, and the line format of
every event kind (docs/trace.md). Must not: import the server; it runs as
its own process (`python -m reactor.tracing.writer FILE START_NS`), started
by reactor/tracing/recorder.py, so encoding costs the server no CPU under its GIL.

Input on stdin: frames of a 4-byte big-endian length and a `marshal`ed list
of `(tid, thread name, events, newly dropped count)`. Each frame's lines are
written and flushed at once, so the file is valid JSON Lines up to its last
complete line whatever happens to either process. EOF (the server closed the
pipe, or died) ends the process after writing what it has; SIGINT and
SIGTERM are ignored (and it runs in a session of its own), so a Ctrl-C to
the server's process group does not cut the trace short.
"""

from __future__ import annotations

import json
import marshal
import signal
import sys
from collections.abc import Sequence
from typing import Any


class Formatter:
    """Encodes events of one trace (timestamps relative to `start_ns`)."""

    def __init__(self, start_ns: int) -> None:
        self.start = start_ns
        self._quoted: dict[str, str] = {}
        self._last: dict[int, int] = {}  # tid -> last ts written, for `dropped`

    def q(self, text: str) -> str:
        """`text` as a JSON string (remembered: names and commands repeat)."""
        quoted = self._quoted.get(text)
        if quoted is None:
            quoted = self._quoted[text] = json.dumps(text, ensure_ascii=False)
        return quoted

    def lines(
        self, tid: int, name: str, events: Sequence[tuple[Any, ...]], dropped: int
    ) -> list[str]:
        """The JSON Lines of thread `tid`'s (`name`) recorded `events`, as the
        recorder's tuples, and a `dropped` line if `dropped` events were lost."""
        start, q = self.start, self.q
        out: list[str] = []
        head = f'"tid":{tid},"thread":{q(name)}'
        last = 0
        for e in events:
            kind = e[0]
            last = e[2] if kind in ("A", "G") else e[1]
            if kind == "G":  # a timed wait that gave up
                lock, task = q(e[3]), e[4]
                out.append(
                    f'{{"ts":{e[1] - start},{head},"ev":"lock_wait","lock":{lock},"task":{task}}}\n'
                    f'{{"ts":{e[2] - start},{head},"ev":"lock_timeout","lock":{lock},'
                    f'"task":{task}}}\n'
                )
            elif kind == "A":  # one record, two events: the wait and the acquisition
                lock, task = q(e[3]), e[4]
                out.append(
                    f'{{"ts":{e[1] - start},{head},"ev":"lock_wait","lock":{lock},"task":{task}}}\n'
                    f'{{"ts":{e[2] - start},{head},"ev":"lock_acquired","lock":{lock},'
                    f'"task":{task}}}\n'
                )
            elif kind == "R":
                out.append(
                    f'{{"ts":{e[1] - start},{head},"ev":"lock_released","lock":{q(e[2])},'
                    f'"task":{e[3]}}}\n'
                )
            elif kind == "S" or kind == "E":
                ev = "task_start" if kind == "S" else "task_end"
                out.append(
                    f'{{"ts":{e[1] - start},{head},"ev":"{ev}","task":{e[2]},"cmd":{q(e[3])}}}\n'
                )
            elif kind == "Q":
                out.append(
                    f'{{"ts":{e[1] - start},{head},"ev":"task_queued","task":{e[2]},'
                    f'"cmd":{q(e[3])},"conn":{e[4]}}}\n'
                )
            elif kind == "B":
                out.append(
                    f'{{"ts":{e[1] - start},{head},"ev":"loop_busy","from":{e[2] - start},'
                    f'"busy_ns":{e[3]}}}\n'
                )
            elif kind == "I":
                out.append(
                    f'{{"ts":{e[1] - start},{head},"ev":"{e[2]}","conn":{e[3]},"bytes":{e[4]}}}\n'
                )
            else:  # "X": any other event, its fields as a dict
                fields = json.dumps(e[3], ensure_ascii=False)[1:]
                sep = "," if fields != "}" else ""
                out.append(f'{{"ts":{e[1] - start},{head},"ev":{q(e[2])}{sep}{fields}\n')
        if dropped:
            ts = max(last - start, self._last.get(tid, 0))
            out.append(f'{{"ts":{ts},{head},"ev":"dropped","count":{dropped}}}\n')
        if events:
            self._last[tid] = last - start
        return out


def main(argv: list[str]) -> int:
    """Append the frames read from stdin to the trace `argv[0]`, timestamps
    relative to `argv[1]` (ns); returns the exit status at EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    path, start_ns = argv[0], int(argv[1])
    fmt = Formatter(start_ns)
    stdin = sys.stdin.buffer
    with open(path, "a", encoding="utf-8") as out:
        while True:
            size = stdin.read(4)
            if len(size) < 4:
                return 0
            want = int.from_bytes(size, "big")
            frame = stdin.read(want)
            if len(frame) < want:
                return 0  # the server died mid-frame: keep what is complete
            lines: list[str] = []
            for tid, name, events, dropped in marshal.loads(frame):
                lines += fmt.lines(tid, name, events, dropped)
            out.write("".join(lines))
            out.flush()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
