"""The socket fuzzer of tests/support/fuzz_socket.py, short: three seconds of hostile
bytes on twenty connections against a fresh server, while a well-behaved
pair chats. The server must survive, still answer, keep and deliver every
acknowledged message, and log no Traceback."""

from __future__ import annotations

from tests.support.fuzz_socket import fuzz

SEED = 20261127


def test_fuzz_socket_server_survives_and_keeps_acknowledged_messages(start_server):
    srv = start_server("--rate-limit", "0")
    result = fuzz(srv.addr, seconds=3.0, connections=20, seed=SEED)
    assert srv.proc.poll() is None, "the server died:\n" + srv.log_text()
    assert result["failures"] == [], result
    assert result["lines"] > 1000 and result["pair_messages"] > 0, result
    assert srv.stop() == 0
    assert "Traceback" not in srv.log_text(), srv.log_text()
