"""The README's examples work as written: its `nc` session, line by line,
against a fresh server (only the clock in `/history` may differ)."""

from __future__ import annotations

import re

from tests.support.chatclient import ROOT, Client, ServerProcess

CLOCK = re.compile(r"\b\d\d:\d\d\b")


def nc_session() -> list[str]:
    """The lines of the README's first `console` block after `$ nc ...`."""
    text = (ROOT / "README.md").read_text()
    block = text.split("```console\n", 1)[1].split("```", 1)[0]
    lines = block.splitlines()
    assert lines[0].startswith("$ nc ")
    return lines[1:]


def test_readme_nc_session_runs_as_written(tmp_path):
    """Typed as a person types: each line once the lines before it are shown."""
    lines = nc_session()
    with ServerProcess(tmp_path / "chat.db") as srv:  # the server's defaults, as make run
        c = Client(srv.addr, json_mode=False)
        assert lines[0] == c.welcome.rstrip("\n")
        for line in lines[1:]:
            if line.startswith("/"):
                c.send(line)
            else:
                assert CLOCK.sub("hh:mm", c.readline().rstrip("\n")) == CLOCK.sub("hh:mm", line)
        assert c.until_closed() == []  # and nothing more
