"""The console log: one line per event, unless a report is drawn on purpose."""

from __future__ import annotations

import io
import logging

from reactor import logs


def test_logs_an_exception_message_on_several_lines_becomes_one_line():
    out = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logs.setup("INFO", out)
    try:
        log = logging.getLogger("reactor.test")
        log.error("commit failed: %s", OSError("server closed\n\tThis probably means"))
        log.warning("graph:\n%s", "a -> b")  # a drawing keeps its lines
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("[ERROR] commit failed: server closed This probably means")
    assert lines[1].endswith("[WARNING] graph:") and lines[2] == "a -> b"
