"""A plain `pip install` of the checkout into a fresh virtualenv gives
commands that work: each console script answers `--help`, and a real traced
run renders a report. Run outside the checkout, so nothing is imported from
the source tree by accident."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_SECTION = (ROOT / "pyproject.toml").read_text().split("[project.scripts]")[1].split("\n[")[0]
SCRIPTS = sorted(re.findall(r"^([\w-]+) = ", _SECTION, re.M))


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh virtualenv with the checkout installed as a user would: `pip install .`."""
    where = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=120)
    # A copy of the checkout: building leaves a build/ folder where it builds.
    src = where / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.db*"))
    pip = [str(where / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    done = subprocess.run([*pip, str(src)], capture_output=True, text=True, timeout=600, cwd=where)
    assert done.returncode == 0, done.stdout + done.stderr
    return where


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_install_every_console_script_answers_help(venv, script):
    out = subprocess.run(
        [str(venv / "bin" / script), "--help"], capture_output=True, text=True, timeout=60,
        cwd=venv,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "usage" in out.stdout.lower()
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_install_server_is_stdlib_only_and_a_traced_run_renders_a_report(venv):
    python = str(venv / "bin" / "python")
    # The server needs nothing beyond the standard library.
    probe = (
        "import sys, reactor.cli, reactor.server\n"
        "print(sorted({m.partition('.')[0] for m in sys.modules}))"
    )
    loaded = subprocess.run([python, "-c", probe], capture_output=True, text=True, cwd=venv)
    assert loaded.returncode == 0, loaded.stderr
    third_party = set(json.loads(loaded.stdout.replace("'", '"'))) - set(sys.stdlib_module_names)
    assert third_party <= {"reactor", "__main__", "_distutils_hack"}, third_party
    trace, db = venv / "run.jsonl", venv / "chat.db"
    server = subprocess.Popen(
        [str(venv / "bin" / "chat-server"), "--port", "0", "--db", str(db), "--auth", "none",
         "--trace", str(trace)],
        stderr=subprocess.PIPE, text=True, cwd=venv,
    )  # fmt: skip
    try:
        assert server.stderr is not None
        for line in server.stderr:
            if m := re.search(r"listening on [\d.]+:(\d+)", line):
                port = int(m.group(1))
                break
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            f = s.makefile("rb")
            f.readline()
            s.sendall(b"/login ann\n/send ann hello\n/exit\n")
            lines = f.read().decode()
        assert "Logged in as ann" in lines and "Sent (id 1)" in lines
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
    out = venv / "report"
    done = subprocess.run(
        [str(venv / "bin" / "chat-viz"), "report", str(trace), "-o", str(out)],
        capture_output=True, text=True, timeout=120, cwd=venv,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (out / "index.html").is_file() and list(out.glob("*.png"))
