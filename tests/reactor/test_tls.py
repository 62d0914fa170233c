"""TLS inside the same selectors reactor: chat over TLS with a raw `ssl`
socket and with the real client, a plain client on the TLS port, and a
client that stalls mid-handshake."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time

import pytest

from client.connection import Account, Connection
from harness import Client, ServerProcess
from harness.ircclient import IrcClient
from tests.support.chatclient import ROOT, fresh_name, until

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    """A self-signed pair for localhost/127.0.0.1, as `make cert` makes."""
    folder = tmp_path_factory.mktemp("certs")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    return folder / "cert.pem", folder / "key.pem"


@pytest.fixture
def tls_server(cert, tmp_path, locking):
    srv = ServerProcess(
        tmp_path / "chat.db", "--locking", locking, "--rate-limit", "0",
        "--tls-cert", str(cert[0]), "--tls-key", str(cert[1]), "--login-timeout", "1",
    )  # fmt: skip
    srv.start()
    yield srv
    assert srv.stop() == 0
    assert "Traceback" not in srv.log_text()


def tls_client(addr, cafile) -> Client:
    """A blocking json-mode client over a TLS connection verified against `cafile`."""
    context = ssl.create_default_context(cafile=str(cafile))
    c = Client(addr, tls=context, server_hostname="localhost")
    assert c.welcome.startswith("System: Welcome")
    return c


def test_irc_port_speaks_tls_with_the_same_certificate(cert, tmp_path):
    srv = ServerProcess(
        tmp_path / "chat.db", "--irc-port", "0", "--rate-limit", "0",
        "--tls-cert", str(cert[0]), "--tls-key", str(cert[1]),
    ).start()  # fmt: skip
    try:
        found = re.search(r"IRC listening on [\d.]+:(\d+)", srv.wait_for_log("IRC listening on"))
        assert found
        context = ssl.create_default_context(cafile=str(cert[0]))
        name, friend = fresh_name(), tls_client(srv.addr, cert[0])
        friend.call(f"/register {name} pw")
        irc_addr = (srv.addr[0], int(found.group(1)))
        irc = IrcClient(irc_addr, tls=context, server_hostname="localhost")
        assert isinstance(irc.sock, ssl.SSLSocket)
        burst = irc.register(name, "pw")
        assert [x.command for x in burst][:4] == ["001", "002", "003", "004"]
        irc.send(f"PRIVMSG {name} :to myself, encrypted")
        got = irc.until("PRIVMSG")[-1]
        assert got.params == (name, "to myself, encrypted")
        irc.close()
    finally:
        assert srv.stop() == 0


def test_tls_raw_ssl_sockets_chat(tls_server, cert):
    names = [fresh_name(), fresh_name()]
    alice, bob = (tls_client(tls_server.addr, cert[0]) for _ in names)
    for c, name in zip((alice, bob), names, strict=True):
        assert c.call(f"/register {name} pw")["type"] == "ok"
        assert c.call(f"/login {name} pw")["user"] == name
    big = "é" * 1500  # more than one TLS record's worth of lines in a burst
    for i in range(50):
        alice.sock.sendall(f"/send {names[1]} {i} {big}\n".encode())
    assert alice.call("/ping")["type"] == "ok"  # the first send's reply
    got = [bob.read() for _ in range(50)]
    assert [m["text"].split()[0] for m in got] == [str(i) for i in range(50)]
    assert all(m["text"].endswith(big) for m in got)


def test_tls_real_client_connection(tls_server, cert):
    alice, bob = fresh_name(), fresh_name()
    context = ssl.create_default_context(cafile=str(cert[0]))

    async def scenario():
        a = Connection(*tls_server.addr, Account(alice, "pw", register=True), tls=context)
        b = Connection(*tls_server.addr, Account(bob, "pw", register=True), tls=context)
        got = []
        await a.start()
        await b.start()
        b.on_event = got.append
        sent = await a.call(f"/send {bob} over tls")
        await until(lambda: got)
        await a.close()
        await b.close()
        return sent, got

    sent, got = asyncio.run(scenario())
    assert got[0]["id"] == sent["id"] and got[0]["text"] == "over tls"


def test_tls_plain_client_is_closed_quickly_and_others_are_fine(tls_server, cert):
    good = tls_client(tls_server.addr, cert[0])
    plain = socket.create_connection(tls_server.addr, timeout=5)
    plain.sendall(b"/ping hello\n")
    start = time.monotonic()
    try:
        data = plain.recv(4096)
        while data and not data.endswith(b"\n"):  # the server sends no chat text here
            data = plain.recv(4096)
    except ConnectionResetError:
        data = b""
    assert b"pong" not in data and time.monotonic() - start < 2
    plain.close()
    assert good.call("/ping still")["token"] == "still"


def test_tls_stalled_handshake_is_timed_out(tls_server, cert):
    stalled = socket.create_connection(tls_server.addr, timeout=5)
    start = time.monotonic()
    try:
        assert stalled.recv(1) == b""  # closed by the server, login timeout 1 s
    except ConnectionResetError:
        pass
    assert 0.5 < time.monotonic() - start < 4
    good = tls_client(tls_server.addr, cert[0])
    assert good.call("/ping")["type"] == "ok"


def test_tls_plain_chat_client_says_add_tls_in_one_line(tls_server, tmp_path):
    env = {**os.environ, "CHAT_PASSWORD": "pw", "XDG_STATE_HOME": str(tmp_path / "state")}
    out = subprocess.run(
        [sys.executable, "-m", "client.cli", "--port", str(tls_server.addr[1]), "--user", "al"],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert "add --tls" in line


def test_tls_client_without_the_class_certificate_says_cafile(tls_server, tmp_path):
    env = {**os.environ, "CHAT_PASSWORD": "pw", "XDG_STATE_HOME": str(tmp_path / "state")}
    out = subprocess.run(
        [sys.executable, "-m", "client.cli", "--port", str(tls_server.addr[1]), "--user", "al",
         "--tls"],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert "not trusted" in line and "--cafile" in line
