"""Line framing, sans-IO: a byte stream in, decoded lines (or why not) out.

Owns: `Framer` and `FrameError` (docs/protocol.md §1). Must not: import
socket, selectors or threading, or parse what a line means.
"""

from __future__ import annotations

from dataclasses import dataclass

from reactor import limits


@dataclass(frozen=True)
class FrameError:
    """A line the peer sent that cannot become a command (its fault)."""

    code: str  # "line_too_long" or "bad_encoding"
    message: str


Frame = str | FrameError


class Framer:
    """Cuts a byte stream into lines (docs/protocol.md §1).

    `feed(data)` returns the complete frames found so far: each a decoded line
    without its terminator (`\\r\\n` or `\\n`), or a `FrameError`. Empty lines
    are skipped (a line of spaces is not empty: it is an unknown command).
    A line longer than `max_line` bytes (terminator included) yields one
    `line_too_long` and is discarded up to its `\\n`.
    """

    def __init__(self, max_line: int = limits.MAX_LINE) -> None:
        self.max_line = max_line
        self._buf = bytearray()
        # Invariant: while _discarding, the bytes since the last "\n" belong to
        # an overlong line that was already reported; they are dropped.
        self._discarding = False

    def feed(self, data: bytes) -> list[Frame]:
        """Take the next bytes of the stream; return the frames they complete."""
        frames: list[Frame] = []
        buf = self._buf
        buf += data
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            if self._discarding:
                self._discarding = False
            elif nl + 1 - start > self.max_line:
                frames.append(_too_long(self.max_line))
            else:
                frames.extend(_decode(buf, start, nl))
            start = nl + 1
        del buf[:start]
        if not self._discarding and len(buf) >= self.max_line:
            # No terminator within the limit: report now, drop until "\n".
            frames.append(_too_long(self.max_line))
            self._discarding = True
        if self._discarding:
            buf.clear()
        return frames

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete line held, for tests and statistics."""
        return len(self._buf)


def _too_long(max_line: int) -> FrameError:
    return FrameError("line_too_long", f"line longer than {max_line} bytes, discarded")


def _decode(buf: bytearray, start: int, nl: int) -> list[Frame]:
    end = nl - 1 if nl > start and buf[nl - 1] == 0x0D else nl
    try:
        line = buf[start:end].decode("utf-8")
    except UnicodeDecodeError:
        return [FrameError("bad_encoding", "line is not valid UTF-8, discarded")]
    return [line] if line else []
