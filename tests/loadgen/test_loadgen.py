"""The load generator: its sans-IO protocol side without sockets, then short runs against a
real server (exact accounting, every error counted, bounded failures)."""

from __future__ import annotations

import json
import math
import multiprocessing
import signal
import socket
import socketserver
import threading
import time

import pytest

from harness import ServerProcess
from loadgen import users as loadusers
from loadgen import wire as loadwire
from loadgen.run import LoadError, LoadSpec, _parser, _Procs, check_spec, main, percentiles, run
from loadgen.wire import ACK_DELAY, OK, BadLine, Bye, Crowd, Reply, UserState, parse_line

SHORT = {"duration": 1.5, "warmup": 0.2, "drain": 5.0, "procs": 2}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One classroom-mode server for the module; each test uses its own name prefix."""
    db = tmp_path_factory.mktemp("loadgen") / "chat.db"
    srv = ServerProcess(db, "--auth", "none", "--rate-limit", "0").start()
    yield srv
    assert srv.stop() == 0
    assert "Traceback" not in srv.log_text(), srv.log_text()


def spec_for(srv: ServerProcess, prefix: str, **kw) -> LoadSpec:
    host, port = srv.addr
    return LoadSpec(host=host, port=port, prefix=prefix, **{**SHORT, **kw})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_percentiles_known_values():
    assert percentiles(range(100, 0, -1)) == {
        "p50": 50.0,
        "p90": 90.0,
        "p99": 99.0,
        "max": 100.0,
        "mean": 50.5,
    }
    assert percentiles([7.0]) == {"p50": 7.0, "p90": 7.0, "p99": 7.0, "max": 7.0, "mean": 7.0}
    assert percentiles([]) == {}
    assert percentiles([1, 2, 3, 4], qs=(25, 99.9)) == {
        "p25": 1.0,
        "p99.9": 4.0,
        "max": 4.0,
        "mean": 2.5,
    }


def test_loadgen_closed_private_exact(server):
    events = []
    spec = spec_for(server, "cp", clients=20)
    s = run(spec, on_start=lambda: events.append("start"), on_end=lambda: events.append("end"))
    assert events == ["start", "end"]
    assert s.connected == 20 and s.procs == 2
    assert s.errors == {} and s.undelivered == 0
    assert s.delivered > 0
    assert s.sent == s.acked == s.delivered  # every send of the window acked and delivered once
    assert 0 < s.latency_ms["p50"] <= s.latency_ms["p99"] <= s.latency_ms["max"]
    assert s.ok_latency_ms["p50"] > 0
    assert s.seconds == pytest.approx(1.5)
    assert s.cpu_seconds > 0
    assert s.delivered_per_s == pytest.approx(s.delivered / 1.5)
    json.dumps(s.as_dict())  # serialisable


def test_loadgen_group_fanout_counts_every_member(server):
    spec = spec_for(server, "gf", clients=10, mix=(("group", 1.0),), groups=2, group_size=5)
    s = run(spec)
    assert s.errors == {} and s.undelivered == 0
    assert s.acked > 0
    assert s.delivered == s.acked * 5  # each member, the sender's echo included


def test_loadgen_mixed_traffic_exact(server):
    mix = (("private", 0.7), ("group", 0.3))
    spec = spec_for(server, "mx", clients=12, mix=mix, groups=2, group_size=5, window=4)
    s = run(spec)
    assert s.errors == {} and s.undelivered == 0
    assert s.acked <= s.delivered <= s.acked * 5


def test_loadgen_open_loop_offers_the_rate(server):
    s = run(spec_for(server, "ol", clients=10, mode="open", rate=200.0))
    assert 0.8 * 300 <= s.sent <= 1.2 * 300
    assert s.undelivered == 0 and s.errors == {}
    assert s.delivered == s.acked == s.sent


def test_loadgen_idle_connects_everyone(server):
    events = []
    spec = spec_for(server, "id", clients=50, mode="idle", duration=0.5)
    s = run(spec, on_start=lambda: events.append("start"), on_end=lambda: events.append("end"))
    assert events == ["start", "end"]
    assert s.connected == 50
    assert s.sent == s.delivered == 0 and s.errors == {} and s.undelivered == 0


def test_loadgen_idle_reports_who_got_in(tmp_path):
    srv = ServerProcess(tmp_path / "chat.db", "--auth", "none", "--max-clients", "30").start()
    try:
        s = run(spec_for(srv, "full", clients=40, mode="idle", duration=0.3))
    finally:
        srv.stop()
    assert s.connected == 30
    assert s.errors == {"closed": 10}  # refused before json mode: the bye is a text line


def test_loadgen_password_mode_registers_then_logs_in(tmp_path):
    srv = ServerProcess(tmp_path / "chat.db", "--rate-limit", "0").start()
    try:
        s = run(spec_for(srv, "pw", clients=6, password="s3cret", duration=1.0))
        again = run(spec_for(srv, "pw", clients=6, password="s3cret", duration=0.5))
    finally:
        srv.stop()
    assert s.connected == 6 and s.errors == {} and s.undelivered == 0 and s.delivered > 0
    assert again.connected == 6 and again.errors == {}  # name_taken on /register is expected


def test_loadgen_server_stopping_mid_run_is_an_error_not_a_hang(tmp_path):
    srv = ServerProcess(tmp_path / "chat.db", "--auth", "none", "--rate-limit", "0").start()
    events = []

    def stop_server():
        events.append("start")
        srv.stop()

    began = time.monotonic()
    try:
        s = run(
            spec_for(srv, "st", clients=10, duration=1.0, drain=2.0),
            on_start=stop_server,
            on_end=lambda: events.append("end"),
        )
    finally:
        srv.stop()
    assert time.monotonic() - began < 20
    assert events == ["start", "end"]
    assert s.errors.get("closed") == 10


def test_loadgen_nothing_listening_is_a_clear_error():
    spec = LoadSpec(port=free_port(), clients=4, **SHORT)
    began = time.monotonic()
    with pytest.raises(LoadError, match=r"0 of 4 clients logged in.*refused"):
        run(spec)
    assert time.monotonic() - began < 10


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--mix", "private=0.5,broadcast=0.5"], "mix kinds are private, group"),
        (["--mix", "private=0.5,group=0.2"], "weights must sum to 1"),
        (["--mix", "private=lots"], "bad weight"),
        (["--clients", "0"], "clients must be at least 1"),
        (["--mix", "group=1", "--clients", "8", "--groups", "1", "--group-size", "10"], "1*10"),
        (["--host", "192.0.2.1"], "only loopback"),
        (["--mode", "bursty"], "invalid choice"),
        (["--prefix", "no/slash"], "prefix"),
        (["--cpus", "4096"], "usable CPUs"),
    ],
)
def test_cli_rejects_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_json_run(server, capsys):
    host, port = server.addr
    argv = ["--host", host, "--port", str(port), "--clients", "10", "--duration", "1"]
    argv += ["--warmup", "0.2", "--procs", "2", "--prefix", "cli", "--json", "--quiet"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["undelivered"] == 0 and out["errors"] == {} and out["delivered"] > 0
    assert out["spec"]["clients"] == 10 and out["delivered_per_s"] > 0


def test_cli_readme_recipe_against_a_default_server_says_what_it_needs(tmp_path, capsys):
    with ServerProcess(tmp_path / "chat.db") as srv:  # make run's defaults
        port = str(srv.addr[1])
        assert main(["--port", port, "--clients", "4", "--duration", "1", "--quiet"]) == 1
        err = capsys.readouterr().err
        assert "the server wants passwords" in err and "--password" in err
        assert "--auth none" in err and "Traceback" not in err
        argv = ["--port", port, "--clients", "4", "--duration", "1", "--quiet", "--password", "pw"]
        assert main(argv) == 1  # 20 lines/s per connection refuses most sends
        err = capsys.readouterr().err
        assert "rate-limits each connection" in err and "--rate-limit 0" in err


def test_cli_readme_recipe_runs_clean_against_the_server_it_names(tmp_path, capsys):
    with ServerProcess(tmp_path / "chat.db", "--rate-limit", "0") as srv:
        argv = ["--ip", "127.0.0.1", "--port", str(srv.addr[1]), "--clients", "4",
                "--duration", "1", "--quiet", "--password", "pw"]  # fmt: skip
        assert main(argv) == 0
    assert "rate-limits" not in capsys.readouterr().err


def test_cli_help_gives_every_option_its_text_and_default(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    options = [w for w in text.split() if w.startswith("--") and w != "--help"]
    assert "--ip" in options and "--host" not in options  # one spelling, as chat-client's
    parser_help = {a.option_strings[0]: a.help for a in _parser()._actions}
    assert all(h for o, h in parser_help.items() if o != "--host"), parser_help
    assert "(default: 100)" in text  # --clients


# --- loadgen/wire.py without sockets ----------------------------------------------

MSG = b'{"type":"message","id":%d,"from":"a","to":"b","group":null,"text":"%s","ts":1.5}'


def test_parse_line_fast_path_takes_id_and_stamp():
    assert parse_line(MSG % (42, b"123.250000 xxxx")) == (42, 123.25)
    assert parse_line(MSG % (7, b"hello there")) == (7, 0.0)  # not one of ours


def test_parse_line_slow_path_reads_other_key_orders():
    line = b'{"id":9,"type":"message","text":"5.500000 x","from":"a"}'
    assert parse_line(line) == (9, 5.5)
    ok = b'{"cmd":"send","type":"ok"}'
    assert parse_line(ok) == Reply(None, None, ok)


def test_parse_line_replies():
    assert parse_line(b'{"type":"ok","cmd":"send","id":3}') is OK  # nothing built
    group_ok = b'{"type":"ok","cmd":"group","group":"g","members":["a","B"]}'
    assert parse_line(group_ok) == Reply(None, ("a", "B"), group_ok)
    err = b'{"type":"error","cmd":"send","code":"rate_limited","message":"slow down"}'
    assert parse_line(err) == Reply("rate_limited", None, err)
    assert parse_line(b'{"type":"bye","reason":"shutdown"}') == Bye("shutdown")


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b'{"type":"message","id":"12","text":"1.0 x"}', "numeric id"),  # fast path, bad id
        (b'{"type":"message","id":-3,"text":"1.0 x"}', "numeric id"),
        (b'{"type":"message","id":12}', "numeric id"),  # fast path, no comma after the id
        (b'{"type":"message","from":"a","text":"1.0 x"}', "numeric id"),  # slow path, no id
        (b'{"text":"1.0 x","type":"message","id":1.5}', "numeric id"),
        (b'{"type":"ok","cmd":"send"', None),  # fast-path ok: not decoded, still an ok
        (b'{"type":"err', "not JSON"),
    ],
)
def test_parse_line_malformed_lines_are_records_not_exceptions(line, why):
    record = parse_line(line)
    if why is None:
        assert record is OK
    else:
        assert record == BadLine(line, record.why) and why in record.why


def test_parse_line_error_without_code_is_a_bad_line_reply():
    line = b'{"type":"error","cmd":"send"}'
    assert parse_line(line) == Reply("bad_line", None, line)  # still answers its command


def test_parse_line_skips_text_lines_and_notices():
    assert parse_line(b"System: Goodbye (server_full).") is None
    assert parse_line(b'{"type":"notice","text":"welcome"}') is None
    assert parse_line(b"") is None


def test_group_lines_stay_under_the_line_limit():
    names = [f"member{i:04d}" for i in range(1000)]
    lines = loadwire.group_lines("grp", names)
    assert len(lines) > 1
    assert all(line.startswith(b"/group grp ") and line.endswith(b"\n") for line in lines)
    assert all(len(line) < 4096 for line in lines)
    assert [n for line in lines for n in line.split()[2:]] == [n.encode() for n in names]


def crowd(mode="closed", **kw) -> Crowd:
    # rate 64/s: the open loop's step, 1/64 s, is exact in binary, so counts are exact
    spec = LoadSpec(clients=2, mode=mode, procs=1, prefix="t", window=2, rate=64.0, **kw)
    return Crowd(spec, 0, 1)


def logged_in(c: Crowd) -> None:
    for user in c.users:
        c.connected(user)
        c.received(user, b'{"type":"ok","cmd":"mode"}\n{"type":"ok","cmd":"login"}\n', 0.0)
    assert c.n_ready == 2 and c.login_waiting == 0
    for user in c.users:
        user.out.clear()  # as if written to its socket
    c.dirty.clear()


def test_crowd_logs_in_with_the_real_commands():
    c = crowd(password="pw")
    user = c.users[0]
    c.connected(user)
    assert bytes(user.out) == b"/mode json\n/register t0 pw\n/login t0 pw\n"
    name_taken = b'{"type":"error","cmd":"register","code":"name_taken","message":"x"}\n'
    c.received(user, b'{"type":"ok","cmd":"mode"}\n' + name_taken, 0.0)
    assert user.state is UserState.LOGIN and c.tally.errors == {}  # name_taken is expected
    c.received(user, b'{"type":"ok","cmd":"login"}\n', 0.0)
    assert user.state is UserState.READY and c.logged_in == 1


def test_crowd_counts_every_error_reply_to_a_send():
    c = crowd()
    logged_in(c)
    c.go(10.0, 20.0, now=10.0)  # closed loop: window 2 per user, stamped in the window
    user = c.users[0]
    assert c.sends_pending == 4 and c.tally.sent == 4
    err = b'{"type":"error","cmd":"send","code":"rate_limited","message":"slow down"}\n'
    c.received(user, err + b'{"type":"ok","cmd":"send"}\n', 11.0)
    assert c.tally.errors == {"rate_limited": 1}
    assert "rate_limited" in c.tally.note
    assert c.tally.acked == 1  # only the ok counts as acked
    assert c.sends_pending == 4  # closed loop: each reply, error or not, brings the next send


def test_crowd_counts_bad_lines_and_goes_on():
    c = crowd()
    logged_in(c)
    user = c.users[0]
    bad_id = b'{"type":"message","id":"x","text":"1.0 a"}'
    data = bad_id + b'\n{"type":"message","from":"a"}\n{oops\n' + MSG % (5, b"x")
    c.received(user, data[:40], 1.0)  # lines split anywhere across reads
    c.received(user, data[40:] + b"\n", 1.0)
    assert c.tally.errors == {"bad_line": 3}
    assert repr(bad_id) in c.tally.note  # the first one
    assert user.last_id == 5 and user.state is UserState.READY


def test_crowd_group_ok_without_members_is_a_bad_line():
    spec = LoadSpec(clients=2, procs=1, prefix="t", mix=(("group", 1.0),), groups=1, group_size=2)
    c = Crowd(spec, 0, 1)
    logged_in(c)
    c.make_groups()
    assert bytes(c.users[0].out) == b"/group tg0 t1\n" and c.group_waiting == 1
    c.received(c.users[0], b'{"type":"ok","cmd":"group","group":"tg0"}\n', 1.0)
    assert c.group_waiting == 0 and c.tally.errors == {"bad_line": 1}
    assert "without members" in c.tally.note


def test_crowd_caps_a_users_unsent_bytes():
    c = crowd(mode="open")
    logged_in(c)
    c.go(10.0, 20.0, now=10.0)
    for user in c.users:
        user.out += b"x" * loadwire.MAX_OUT_BYTES  # the server stopped reading
    c.open_sends(11.0)  # 64 sends/s from 9.5 (warmup 0.5 s) to 11.0 are due: none fits
    assert c.tally.errors["send_buffer_full"] == 97
    assert c.tally.sent == 0 and c.sends_pending == 0
    assert c.tally.behind == 65  # the skipped sends of the window [10, 20)
    c.users[0].out.clear()
    c.open_sends(11.5)  # 32 more, in turns: user 0 has room again, user 1 still has none
    assert c.tally.sent == 16 and c.tally.errors["send_buffer_full"] == 97 + 16


def test_crowd_drop_forgets_what_the_user_awaits():
    c = crowd()
    logged_in(c)
    c.go(10.0, 20.0, now=10.0)
    c.drop(c.users[0])
    assert c.users[0].state is UserState.DEAD and not c.users[0].pending
    assert c.n_ready == 1 and c.sends_pending == 2
    c.drop(c.users[0])  # twice is once
    assert c.n_ready == 1 and c.sends_pending == 2


# --- one load process in a thread, the test as its parent ------------------------------


class InThread:
    """A load process's `_Worker` served on a thread; the test holds the parent's pipe end."""

    def __init__(self, spec: LoadSpec, addr: tuple) -> None:
        self.pipe, theirs = multiprocessing.Pipe()
        self.worker = loadusers._Worker(spec, socket.AF_INET, addr, 0, 1, theirs)
        # A daemon: a failed test must not leave it holding the session for its budget.
        self.thread = threading.Thread(target=self.worker.serve, name="load-process", daemon=True)

    def start(self) -> InThread:
        self.thread.start()
        return self

    def next(self, timeout: float = 10.0, skip=("progress",)) -> tuple:
        while True:
            assert self.pipe.poll(timeout), "the load process said nothing"
            msg = self.pipe.recv()
            if msg[0] not in skip:
                return msg

    def join(self) -> None:
        self.thread.join(10)
        assert not self.thread.is_alive()

    def assert_all_closed(self) -> None:
        w = self.worker
        c = w.crowd
        assert all(s.state is UserState.DEAD and s.sock is None for s in w.sims)
        assert (w.connecting, c.login_waiting, c.n_ready) == (0, 0, 0)
        assert (c.sends_pending, c.group_waiting) == (0, 0)
        assert [key.data for key in w.sel.get_map().values()] == [None]  # only the pipe
        w.sel.close()


def test_load_process_abort_mid_run_closes_every_socket_and_keeps_the_counters(server):
    spec = spec_for(server, "ab", clients=6, procs=1, progress=True)
    proc = InThread(spec, server.addr).start()
    assert proc.next()[:2] == ("ready", 6)
    t0 = time.monotonic() + 0.1
    proc.pipe.send(("go", t0, t0 + 30.0, t0 + 35.0))
    progress = proc.next(skip=())
    assert progress[0] == "progress" and progress[1] > 0  # sending, sends in flight
    proc.pipe.send(("abort",))
    proc.join()
    proc.assert_all_closed()


def test_load_process_gives_up_when_the_parent_goes_quiet(server):
    proc = InThread(spec_for(server, "gq", clients=3, procs=1), server.addr)
    began = time.monotonic()
    proc.worker.give_up = began + 1.0  # instead of run_budget(spec): minutes
    proc.start()
    assert proc.next()[:2] == ("ready", 3)
    msg = proc.next()  # the test, its parent, never says "go"
    assert msg[0] == "gave_up" and "no next step from the parent" in msg[1]
    assert time.monotonic() - began < 5
    proc.join()
    proc.assert_all_closed()


def test_run_budget_covers_every_deadline_of_the_parent():
    spec = LoadSpec(clients=1000, warmup=1.0, duration=10.0, drain=5.0)
    setup = loadusers.SETUP_SECONDS + 0.005 * spec.clients + loadusers.PARENT_SLACK + 5
    groups = loadusers.SETUP_SECONDS + loadusers.PARENT_SLACK
    rest = spec.warmup + spec.duration + spec.drain + loadusers.FINAL_ACK_SECONDS
    assert loadusers.run_budget(spec) > setup + groups + rest + 2 * loadusers.PARENT_SLACK


class ScriptedServer(socketserver.ThreadingTCPServer):
    """Not the chat server: a peer that answers with the lines a test gives it, so a
    load process meets malformed lines no real server sends."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, replies: dict[bytes, bytes]) -> None:
        self.replies = replies
        super().__init__(("127.0.0.1", 0), self.Handler)

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            for line in self.rfile:
                self.wfile.write(self.server.replies.get(line.split()[0], b""))


def test_load_process_counts_malformed_lines_and_goes_on():
    bad = b'{"type":"message","id":"x1","text":"1.0 a"}\n'  # no numeric id (fast path)
    replies = {
        b"/mode": b'{"type":"ok","cmd":"mode"}\n',
        b"/login": bad + b'{"type":"message","from":"a"}\n{"type":"ok","cmd":"login"}\n',
        b"/group": b'{"type":"ok","cmd":"group","group":"bag0"}\n',  # no members
    }
    peer = ScriptedServer(replies)
    threading.Thread(target=peer.serve_forever, daemon=True).start()
    spec = LoadSpec(clients=2, prefix="ba", mix=(("group", 1.0),), groups=1, group_size=2)
    proc = InThread(spec, peer.server_address).start()
    try:
        ready = proc.next()
        assert ready[:3] == ("ready", 2, {"bad_line": 4})  # both users logged in all the same
        assert repr(bad.rstrip(b"\n")) in ready[3]  # the first bad line is the note
        proc.pipe.send(("groups",))
        assert proc.next()[:2] == ("grouped", 0)
    finally:
        proc.pipe.send(("abort",))
        proc.join()
        peer.shutdown()
        peer.server_close()
    assert proc.worker.tally.errors == {"bad_line": 5}
    proc.assert_all_closed()


# --- the fixes against a real server -----------------------------------------------


def test_cli_counts_error_replies_to_sends_and_exits_1(tmp_path, capsys):
    db = tmp_path / "chat.db"
    srv = ServerProcess(db, "--auth", "none", "--rate-limit", "5", "--rate-burst", "5").start()
    host, port = srv.addr
    argv = ["--host", host, "--port", str(port), "--clients", "4", "--procs", "2"]
    argv += ["--mode", "open", "--rate", "100", "--duration", "1", "--warmup", "0.2"]
    argv += ["--prefix", "rl", "--json", "--quiet"]
    try:
        code = main(argv)
    finally:
        srv.stop()
    out = json.loads(capsys.readouterr().out)
    assert out["errors"].get("rate_limited", 0) > 0
    assert code == 1
    refused = out["sent"] - out["acked"]  # sends of the window without an ok...
    assert refused > 0 and out["errors"]["rate_limited"] >= refused  # ...each counted
    assert out["undelivered"] == 0  # and owed to no one


def test_loadgen_open_loop_caps_send_buffers_when_the_server_stops_reading(tmp_path):
    srv = ServerProcess(tmp_path / "chat.db", "--auth", "none", "--rate-limit", "0").start()
    # A stopped server's kernel buffers take ~4 MB per connection here; 3 KB sends at
    # 2000/s per user (one user per process) pass that and MAX_OUT_BYTES well within 1.5 s.
    spec = spec_for(srv, "sb", clients=2, mode="open", rate=4000.0, text_bytes=3000, drain=20.0)
    try:
        s = run(
            spec,
            on_start=lambda: srv.signal(signal.SIGSTOP),
            on_end=lambda: srv.signal(signal.SIGCONT),
        )
    finally:
        srv.signal(signal.SIGCONT)
        srv.stop()
    skipped = s.errors.get("send_buffer_full", 0)
    assert skipped > 0 and set(s.errors) == {"send_buffer_full"}
    assert s.behind >= skipped
    assert s.sent + skipped <= 1.2 * 4000 * 1.5
    assert s.undelivered == 0 and s.delivered == s.acked == s.sent


def test_procs_stop_closes_the_parent_pipe_ends(server):
    procs = _Procs(spec_for(server, "pp", clients=20), socket.AF_INET, server.addr, 2)
    procs.stop()  # while they log in
    assert len(procs.pipes) == 2 and all(pipe.closed for pipe in procs.pipes)


def message_lines(first: int, n: int) -> bytes:
    return b"".join(
        b'{"type":"message","id":%d,"from":"t1","to":"t0","text":"1.0 x"}\n' % i
        for i in range(first, first + n)
    )


def test_crowd_acks_like_the_client_every_20_messages_or_200_ms():
    c = crowd()
    logged_in(c)
    user = c.users[0]
    c.received(user, message_lines(1, 45), 1.0)  # at 20 and 40, as each arrives
    assert bytes(user.out) == b"/ack 20\n/ack 40\n"
    assert c.next_ack() == 1.0 + ACK_DELAY  # set by message 1, still running
    user.out.clear()
    c.timed_acks(1.1)
    assert bytes(user.out) == b""
    c.timed_acks(1.0 + ACK_DELAY)
    assert bytes(user.out) == b"/ack 45\n" and c.next_ack() == math.inf
    user.out.clear()
    c.received(user, message_lines(46, 1), 2.0)  # a lone message: acked 200 ms later
    c.timed_acks(2.0 + ACK_DELAY)
    assert bytes(user.out) == b"/ack 46\n"


def test_crowd_counts_busy_logins_as_retries_and_logs_in_again():
    c = crowd(password="pw")
    user = c.users[0]
    c.connected(user)
    user.out.clear()
    busy = b'{"type":"error","cmd":"%s","code":"busy","message":"server busy"}\n'
    c.received(user, b'{"type":"ok","cmd":"mode"}\n' + busy % b"register", 0.0)
    failed = b'{"type":"error","cmd":"login","code":"auth_failed","message":"x"}\n'
    c.received(user, failed, 0.0)  # the register behind it never ran: not an error
    assert bytes(user.out) == b"/register t0 pw\n/login t0 pw\n"
    assert c.tally.retried == 1 and c.tally.errors == {}
    c.received(user, b'{"type":"ok","cmd":"register"}\n{"type":"ok","cmd":"login"}\n', 0.0)
    assert user.state is UserState.READY


# --- several servers: --port repeated ------------------------------------------------


def test_cli_repeated_port_spreads_over_several_ports_and_one_port_is_unchanged(monkeypatch):
    seen = []
    monkeypatch.setattr("loadgen.run.run", lambda spec: seen.append(spec) or _no_summary())
    for argv in (["--port", "7001"], ["--port", "7001", "--port", "7002", "--port", "7003"], []):
        main([*argv, "--clients", "4", "--duration", "1", "--quiet"])
    assert [(s.port, s.extra_ports) for s in seen] == [
        (7001, ()),
        (7001, (7002, 7003)),
        (LoadSpec().port, ()),
    ]


def _no_summary():
    raise KeyboardInterrupt  # main returns 130 without printing a summary


def test_spec_rejects_an_extra_port_out_of_range():
    with pytest.raises(ValueError, match="extra ports"):
        check_spec(LoadSpec(extra_ports=(9001, 70000)))


def test_loadgen_spreads_its_clients_over_every_port(tmp_path):
    a = ServerProcess(tmp_path / "a.db", "--auth", "none", "--rate-limit", "0").start()
    b = ServerProcess(tmp_path / "b.db", "--auth", "none", "--rate-limit", "0").start()
    try:
        spec = spec_for(a, "sp", clients=10, mode="idle", duration=0.3, extra_ports=(b.port,))
        s = run(spec)
        # Client i on the (i mod 2)-th: the even ones on a, the odd ones on b.
        a.wait_for_log("sp8 logged in")
        b.wait_for_log("sp9 logged in")
    finally:
        a.stop()
        b.stop()
    assert s.connected == 10 and s.errors == {}
    logins = [
        [f"sp{i}" for i in range(10) if f" sp{i} logged in" in srv.log_text()] for srv in (a, b)
    ]
    assert logins == [[f"sp{i}" for i in range(0, 10, 2)], [f"sp{i}" for i in range(1, 10, 2)]]
