"""Console logging in the course project's style: `[INFO] alice connected`.

Owns: the log format and colors (only when the stream is a terminal).
Must not: be imported for anything but set-up.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

_COLORS = {
    logging.DEBUG: "\x1b[2m",  # dim
    logging.INFO: "\x1b[32m",  # green
    logging.WARNING: "\x1b[33m",  # yellow
    logging.ERROR: "\x1b[31m",  # red
    logging.CRITICAL: "\x1b[1;31m",  # bold red
}
_RESET = "\x1b[0m"


class _Formatter(logging.Formatter):
    def __init__(self, color: bool) -> None:
        super().__init__("%(asctime)s [%(levelname)s] %(message)s", "%H:%M:%S")
        self.color = color

    def formatMessage(self, record: logging.LogRecord) -> str:
        # One event, one line: an exception's multi-line message given as an
        # argument (psycopg's "server closed the connection\n\tThis probably
        # means...") is joined. Reports drawn on several lines on purpose
        # (the lock-order checker's) and tracebacks keep their lines.
        args = record.args if isinstance(record.args, tuple) else ()
        if "\n" in record.message and any(isinstance(a, BaseException) for a in args):
            record.message = " ".join(part.strip() for part in record.message.splitlines())
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        if self.color:
            return _COLORS.get(record.levelno, "") + line + _RESET
        return line


def setup(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Log to `stream` (stderr) at `level`; colors only on a TTY."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    isatty = getattr(stream, "isatty", lambda: False)
    handler.setFormatter(_Formatter(color=isatty()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
