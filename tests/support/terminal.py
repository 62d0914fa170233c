"""A real terminal for end-to-end tests: a detached tmux session running a
command, driven by send-keys and read by capture-pane."""

from __future__ import annotations

import subprocess
import time

from tests.support.chatclient import ROOT


class Tmux:
    """One detached tmux session running a command, 100x30."""

    def __init__(self, name: str, command: list[str], env: dict[str, str]) -> None:
        self.name = name
        exports = " ".join(f"{k}={v}" for k, v in env.items())
        line = f"cd {ROOT} && env {exports} " + " ".join(command)
        subprocess.run(["tmux", "new-session", "-d", "-x", "100", "-y", "30", "-s", name, line],
                       check=True)  # fmt: skip

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def screen(self) -> str:
        out = subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name],
                             capture_output=True, text=True)  # fmt: skip
        return out.stdout

    def wait_for(self, text: str, timeout: float = 15.0) -> str:
        """The screen once it shows `text` (a terminal gives no event to wait on)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.05)  # polling the screen: the only way to read a terminal
        raise AssertionError(f"{text!r} never appeared; screen:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)
