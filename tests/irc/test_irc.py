"""The IRC listener over real sockets (../shared/spec/IRC.md): registration,
every command of the subset and its numerics, chat across the two
protocols, order, replay, replace, limits and bad input."""

from __future__ import annotations

import re
import threading

import pytest

from harness import ServerProcess
from harness.ircclient import IrcClient, Line, plain
from tests.support.chatclient import Client, fresh_name


def irc_addr(srv: ServerProcess) -> tuple[str, int]:
    found = re.search(r"IRC listening on [\d.]+:(\d+)", srv.wait_for_log("IRC listening on"))
    assert found
    return srv.addr[0], int(found.group(1))


def start(tmp_path, *args: str, model: str = "reactor") -> ServerProcess:
    return ServerProcess(
        tmp_path / f"{fresh_name('db')}.db", "--irc-port", "0", "--model", model,
        "--rate-limit", "0", *args,
    ).start()  # fmt: skip


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    """Password accounts, reactor model."""
    server = start(tmp_path_factory.mktemp("irc"))
    yield server
    assert server.stop() == 0
    assert "Traceback" not in server.log_text(), server.log_text()


@pytest.fixture(scope="module")
def open_srv(tmp_path_factory):
    """--auth none (the nick claims the name), inline model."""
    server = start(tmp_path_factory.mktemp("irc-none"), "--auth", "none", model="inline")
    yield server
    assert server.stop() == 0
    assert "Traceback" not in server.log_text(), server.log_text()


def native(srv: ServerProcess, name: str, password: str = "pw", register: bool = True) -> Client:
    c = srv.client()
    if register:
        c.ok(f"/register {name} pw")
    c.ok(f"/login {name} {password}")
    c.name = name
    return c


def irc(srv: ServerProcess, name: str, register: bool = True, **kw) -> IrcClient:
    if register:
        srv.client().ok(f"/register {name} pw")
    c = IrcClient(irc_addr(srv))
    c.register(name, "pw", **kw)
    return c


def commands(lines: list[Line]) -> list[str]:
    return [x.command for x in lines]


# --- registration -------------------------------------------------------------------


def test_registration_with_pass_gives_the_welcome_burst(srv):
    name = fresh_name()
    srv.client().ok(f"/register {name} pw")
    c = IrcClient(irc_addr(srv))
    burst = c.register(name, "pw")
    assert commands(burst)[:6] == ["001", "002", "003", "004", "005", "422"]
    assert burst[0].params[0] == name
    isupport = burst[4].params
    for token in ("CHANTYPES=#", "NICKLEN=32", "CHANNELLEN=33", "CASEMAPPING=ascii",
                  "NETWORK=reactor-chat"):  # fmt: skip
        assert token in isupport


def test_cap_ls_offers_sasl_and_server_time(srv):
    c = IrcClient(irc_addr(srv))
    c.send("CAP LS 302")
    ls = c.until("CAP")[-1]
    assert ls.params[:2] == ("*", "LS")
    offered = ls.text.split()
    assert "sasl=PLAIN" in offered and "server-time" in offered
    c.send("CAP REQ :server-time no-such-cap")
    assert c.until("CAP")[-1].params[1] == "NAK"
    c.send("CAP REQ :server-time")
    assert c.until("CAP")[-1].params[1:] == ("ACK", "server-time")


def test_sasl_plain_logs_in_and_a_bad_password_gets_904(srv):
    name = fresh_name()
    srv.client().ok(f"/register {name} pw")
    bad = IrcClient(irc_addr(srv))
    bad.start_sasl()
    bad.send(plain(name, "nope"))
    assert bad.until("904")[-1].command == "904"
    bad.send("PING still-here")  # the connection stays open
    assert bad.until("PONG")[-1].text == "still-here"
    good = IrcClient(irc_addr(srv))
    burst = good.register(name, "pw", sasl=True)
    assert burst[0].command == "001" and burst[0].params[0] == name


def test_sasl_sent_with_cap_end_in_one_write_registers_once(srv):
    name = fresh_name()
    srv.client().ok(f"/register {name} pw")
    for password, ends in (("pw", "001"), ("nope", "464")):
        c = IrcClient(irc_addr(srv))
        c.start_sasl("CAP LS 302")
        c.send(plain(name, password), f"NICK {name}", f"USER {name} 0 * :x", "CAP END")
        lines = c.until(ends)
        if ends == "001":
            assert "903" in commands(lines) and "464" not in commands(lines)
            assert "464" not in commands(c.sync())  # the rest of the burst
            c.send("AUTHENTICATE PLAIN")  # after registration: no second login
            assert commands(c.sync()) == ["907"]
        else:
            assert commands(lines)[-2:] == ["904", "464"]
            assert c.until_closed()[-1].command == "ERROR"
        c.close()


def test_cap_end_during_authenticate_aborts_it_and_registers_with_pass(srv):
    name = fresh_name()
    srv.client().ok(f"/register {name} pw")
    c = IrcClient(irc_addr(srv))
    c.start_sasl("PASS pw")
    c.send(f"NICK {name}", "USER u 0 * :x", "CAP END")
    lines = c.until("001")
    assert commands(lines)[-2:] == ["906", "001"]


def test_sasl_before_user_keeps_the_user_names(srv):
    name = fresh_name()
    srv.client().ok(f"/register {name} pw")
    c = IrcClient(irc_addr(srv))
    c.start_sasl()
    c.send(plain(name, "pw"))
    c.until("903")
    c.send(f"NICK {name}", "USER late 0 * :Came After SASL", "CAP END")
    c.until("001")
    c.sync()
    c.send(f"WHOIS {name}")
    assert c.until("311")[-1].params[2:] == ("~late", "reactor-chat", "*", "Came After SASL")


def test_a_session_logged_in_by_sasl_still_has_to_finish_registering(tmp_path):
    server = start(tmp_path, "--login-timeout", "0.5")
    try:
        name = fresh_name()
        server.client().ok(f"/register {name} pw")
        c = IrcClient(irc_addr(server))
        c.start_sasl()
        c.send(plain(name, "pw"))
        c.until("903")  # logged in, but no CAP END ever comes
        assert c.until_closed()[-1].raw == "ERROR :Closing link (registration timeout)"
    finally:
        assert server.stop() == 0


def test_user_needs_a_username_and_realname_that_whois_and_who_show(srv):
    name = fresh_name("whoq")  # the only such name: the WHO mask below matches it alone
    srv.client().ok(f"/register {name} pw")
    c = IrcClient(irc_addr(srv))
    c.send("PASS pw", f"NICK {name}", "USER u 0 * :")
    assert c.line().command == "461"
    c.send("USER myuser 0 * :My Real Name")
    assert c.until("001")[-1].params[0] == name
    c.sync()  # the rest of the burst
    c.send(f"WHOIS {name}", f"WHO {name[:-1]}*")
    lines = c.sync()
    assert lines[0].command == "311"
    assert lines[0].params[2:] == ("~myuser", "reactor-chat", "*", "My Real Name")
    who = [x for x in lines if x.command == "352"]
    assert [x.params[2] for x in who] == ["~myuser"] and who[0].text == "0 My Real Name"
    other, plain = irc(srv, fresh_name()), native(srv, fresh_name())
    other.send(f"WHOIS {name}", f"WHOIS {plain.name}")  # others see them too
    seen = [x for x in other.sync() if x.command == "311"]
    assert [x.params[2:] for x in seen] == [
        ("~myuser", "reactor-chat", "*", "My Real Name"),
        (plain.name, "reactor-chat", "*", plain.name),
    ]  # fmt: skip  (native: the account's name)
    c.send("QUIT")
    c.until_closed()
    again = native(srv, name, register=False)  # the names were that IRC session's only
    other.send(f"WHOIS {name}")
    assert [x.params[2] for x in other.sync() if x.command == "311"] == [name]
    again.ok("/exit")


def test_wrong_password_ends_registration_with_464(srv):
    name = fresh_name()
    srv.client().ok(f"/register {name} pw")
    c = IrcClient(irc_addr(srv))
    c.send("PASS wrong", f"NICK {name}", f"USER {name} 0 * :x")
    lines = c.until_closed()
    assert commands(lines) == ["464", "ERROR"]


def test_no_password_on_an_account_server_gets_464(srv):
    c = IrcClient(irc_addr(srv))
    c.send(f"NICK {fresh_name()}", "USER u 0 * :x")
    lines = c.until_closed()
    assert lines[0].command == "464" and "Password required" in lines[0].text


def test_commands_before_registration_get_451_and_bad_nicks_432(srv):
    c = IrcClient(irc_addr(srv))
    c.send("PRIVMSG bob :hi", "JOIN #x", "NICK bad!nick", "NICK", "USER u")
    got = [c.line() for _ in range(5)]
    assert commands(got) == ["451", "451", "432", "431", "461"]


def test_auth_none_nick_claims_the_name_and_433_when_online(open_srv):
    name = fresh_name()
    a = IrcClient(irc_addr(open_srv))
    assert a.register(name)[0].params[0] == name
    b = IrcClient(irc_addr(open_srv))
    b.send(f"NICK {name}", "USER u 0 * :x")
    assert b.line().command == "433"
    other = fresh_name()
    b.send(f"NICK {other}")  # a free nick completes the registration
    assert b.until("001")[-1].params[0] == other


def test_registration_timeout(tmp_path):
    server = start(tmp_path, "--login-timeout", "0.3")
    try:
        c = IrcClient(irc_addr(server))
        c.send("NICK someone")
        assert c.until_closed()[-1].raw == "ERROR :Closing link (registration timeout)"
    finally:
        server.stop()


def test_the_threaded_model_refuses_an_irc_port(tmp_path):
    proc = ServerProcess(tmp_path / "x.db", "--irc-port", "0", "--model", "threaded")
    with pytest.raises(RuntimeError):
        proc.start()


# --- chat across protocols -------------------------------------------------------------


def test_private_chat_both_ways_and_offline_delivery(srv):
    alice = irc(srv, fresh_name())
    bob = native(srv, fresh_name())
    bob.ok(f"/send {alice.nick} hello from native")
    got = alice.until("PRIVMSG")[-1]
    assert got.source.startswith(f"{bob.name}!") and got.params == (alice.nick, "hello from native")
    alice.send(f"PRIVMSG {bob.name} :hello from irc")
    assert bob.event()["text"] == "hello from irc"
    carol = fresh_name()
    srv.client().ok(f"/register {carol} pw")
    alice.send(f"PRIVMSG {carol} :while you were away", "PRIVMSG nobody-here :x")
    assert alice.until("401")[-1].params[1] == "nobody-here"
    later = IrcClient(irc_addr(srv))
    burst = later.register(carol, "pw", caps=("server-time",))
    replayed = [x for x in burst if x.command == "PRIVMSG"]
    assert [x.text for x in replayed] == ["while you were away"]
    assert replayed[0].tags.startswith("time=")
    later.close()
    # Written means seen: the next login replays nothing.
    again = IrcClient(irc_addr(srv))
    assert not [x for x in again.register(carol, "pw") if x.command == "PRIVMSG"]


def test_echo_message_echoes_private_and_group_messages_once(srv):
    alice = irc(srv, fresh_name(), caps=("echo-message", "message-tags"))
    bob = native(srv, fresh_name())
    alice.send(f"PRIVMSG {bob.name} :echoed to me", f"PRIVMSG {alice.nick} :a note to self")
    sent = bob.event()
    echo = alice.until("PRIVMSG")[-1]
    assert echo.source.startswith(f"{alice.nick}!") and echo.params == (bob.name, "echoed to me")
    assert echo.tags == f"msgid={sent['id']}"
    self_note = [x for x in alice.sync() if x.command == "PRIVMSG"]
    assert [x.params for x in self_note] == [(alice.nick, "a note to self")]  # once, not twice
    g = fresh_name("g")
    alice.send(f"JOIN #{g}", f"PRIVMSG #{g} :to the group")
    got = [x for x in alice.sync() if x.command == "PRIVMSG"]
    assert [x.params for x in got] == [(f"#{g}", "to the group")]


def test_groups_across_protocols_and_numerics(srv):
    alice = native(srv, fresh_name())
    bob = irc(srv, fresh_name())
    g = fresh_name("g")
    alice.ok(f"/group {g} {bob.nick}")
    joined = bob.until("366")  # being added: an INVITE from alice, and in
    assert joined[0].source.startswith(f"{alice.name}!")
    assert (joined[0].command, joined[0].params) == ("INVITE", (bob.nick, f"#{g}"))
    assert joined[1].command == "JOIN" and joined[1].params == (f"#{g}",)
    assert set(joined[2].text.split()) == {alice.name, bob.nick}
    bob.send(f"PRIVMSG #{g} :hi all")
    assert alice.event()["text"] == "hi all"
    alice.ok(f"/sendgroup {g} hi bob")
    got = bob.until("PRIVMSG")[-1]
    assert got.params == (f"#{g}", "hi bob")
    outsider = irc(srv, fresh_name())
    outsider.send(f"PRIVMSG #{g} :x", f"JOIN #{g}", f"PART #{g}", "PRIVMSG #no-such-g :x")
    assert commands([outsider.line() for _ in range(4)]) == ["404", "473", "442", "403"]
    bob.send(f"NAMES #{g}", f"LIST #{g}", f"TOPIC #{g}", f"MODE #{g}", f"WHOIS {alice.name}")
    lines = bob.sync()
    assert commands(lines) == ["353", "366", "321", "322", "323", "331", "324", "311", "312",
                               "318"]  # fmt: skip
    assert lines[6].params[-1] == "+i"  # made with /group: invite-only
    bob.send(f"INVITE {outsider.nick} #{g}")
    assert [(x.command, x.params[-1]) for x in bob.sync()] == [
        ("341", f"#{g}"),
        ("JOIN", f"#{g}"),
    ]  # fmt: skip  (the invitee is a member now)
    invited = outsider.until("JOIN")
    assert [(x.command, x.params) for x in invited[-2:]] == [
        ("INVITE", (outsider.nick, f"#{g}")), ("JOIN", (f"#{g}",))]  # fmt: skip
    bob.send(f"INVITE {outsider.nick} #{g}")
    assert commands(bob.sync()) == ["443"]  # already on it
    outsider.send(f"PART #{g} :bye")
    assert outsider.until("PART")[-1].params == (f"#{g}", "bye")
    assert bob.until("PART")[-1].params == (f"#{g}", "bye")  # the others see the reason
    added, left = alice.event("group"), alice.event("group")
    assert added["added"] == [outsider.nick] and left["left"] == outsider.nick
    assert "reason" not in left  # the native event is unchanged


def test_notice_is_delivered_as_one_and_never_answered_with_an_error(srv):
    alice = irc(srv, fresh_name())
    bob = native(srv, fresh_name())
    alice.send(f"NOTICE {bob.name} :a notice", "NOTICE nobody-here :x", "NOTICE #no-such-g :x",
               "NOTICE", f"NOTICE {bob.name}")  # fmt: skip
    assert alice.sync() == []
    got = bob.event()
    assert got["text"] == "a notice" and "notice" not in got  # natively, a message
    carol = irc(srv, fresh_name())
    g = fresh_name("g")
    carol.send(f"JOIN #{g}", f"NOTICE {alice.nick} :live", f"INVITE {alice.nick} #{g}")
    heard = [x for x in alice.until("366") if x.command == "NOTICE"]
    carol.send(f"NOTICE #{g} :to the channel")
    heard.append(alice.until("NOTICE")[-1])
    assert [(x.source.split("!")[0], x.params) for x in heard] == [
        (carol.nick, (alice.nick, "live")), (carol.nick, (f"#{g}", "to the channel"))]  # fmt: skip
    dave = fresh_name()
    srv.client().ok(f"/register {dave} pw")
    alice.send(f"NOTICE {dave} :while you were away")
    alice.sync()
    later = IrcClient(irc_addr(srv))
    replayed = [x for x in later.register(dave, "pw") if x.command in ("NOTICE", "PRIVMSG")]
    assert [(x.command, x.text) for x in replayed] == [("NOTICE", "while you were away")]
    assert [m["text"] for m in native(srv, dave, register=False).ok(f"/history {alice.nick}")[
        "messages"]] == ["while you were away"]  # fmt: skip


def test_names_without_a_channel_and_userhost_in_names(srv):
    alice = irc(srv, fresh_name(), caps=("multi-prefix", "userhost-in-names"))
    groups = sorted([fresh_name("ga"), fresh_name("gb")])
    alice.send(*(f"JOIN #{g}" for g in groups))
    alice.sync()
    alice.send("NAMES")
    lines = alice.sync()
    assert [(x.command, x.params[2] if x.command == "353" else x.params[1]) for x in lines] == [
        ("353", f"#{groups[0]}"), ("353", f"#{groups[1]}"), ("366", "*")]  # fmt: skip
    assert lines[0].text == f"{alice.nick}!{alice.nick}@reactor-chat"


def test_list_shows_open_groups_and_the_caller_s_but_no_one_else_s_invite_only(srv):
    alice, bob = native(srv, fresh_name()), irc(srv, fresh_name())
    public, private, mine = fresh_name("pub"), fresh_name("priv"), fresh_name("mine")
    alice.ok(f"/join {public}")
    alice.ok(f"/group {private}")
    alice.ok(f"/group {mine} {bob.nick}")
    bob.sync()
    bob.send(f"LIST #{public},#{private},#{mine}")
    listed = {x.params[1]: x.params[2] for x in bob.sync() if x.command == "322"}
    assert listed == {f"#{public}": "1", f"#{mine}": "2"}
    bob.send(f"NAMES #{public}", f"NAMES #{private}")  # an open group's names are public
    end = ("366", "End of /NAMES list")
    assert [(x.command, x.text) for x in bob.sync()] == [("353", alice.name), end, end]


def test_join_makes_an_open_group_native_users_join(srv):
    alice = irc(srv, fresh_name())
    g = fresh_name("g")
    alice.send(f"JOIN #{g}", f"MODE #{g}")
    lines = alice.sync()
    assert commands(lines) == ["JOIN", "353", "366", "324"] and lines[-1].params[-1] == "+"
    bob = native(srv, fresh_name())
    assert set(bob.ok(f"/join {g}")["members"]) == {alice.nick, bob.name}
    assert alice.until("JOIN")[-1].source.startswith(f"{bob.name}!")
    invite_only = fresh_name("g")
    bob.ok(f"/group {invite_only}")
    carol = native(srv, fresh_name())
    carol.error(f"/join {invite_only}", "not_member")


def test_group_order_is_the_same_on_both_protocols(srv):
    g = fresh_name("g")
    owner = native(srv, fresh_name())
    ircs = [irc(srv, fresh_name()) for _ in range(2)]
    natives = [native(srv, fresh_name()) for _ in range(2)]
    owner.ok(f"/group {g} {' '.join(c.nick for c in ircs)} {' '.join(c.name for c in natives)}")
    for c in ircs:
        c.until("366")
    n = 30
    start = threading.Barrier(4)

    def send_irc(c: IrcClient) -> None:
        start.wait()
        c.send(*[f"PRIVMSG #{g} :{c.nick} {i}" for i in range(n)])

    def send_native(c: Client) -> None:
        start.wait()
        c.send(*[f"/sendgroup {g} {c.name} {i}" for i in range(n)])

    threads = [threading.Thread(target=send_irc, args=(c,)) for c in ircs]
    threads += [threading.Thread(target=send_native, args=(c,)) for c in natives]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = 4 * n
    native_stream = [m["text"] for m in owner.messages(total)]
    for c in ircs:  # without echo-message, its own lines are not echoed
        got = []
        while len(got) < total - n:
            x = c.line()
            if x.command == "PRIVMSG":
                got.append(x.text)
        assert got == [t for t in native_stream if not t.startswith(c.nick + " ")]


def test_a_second_login_replaces_the_first_across_protocols(srv):
    name = fresh_name()
    first = irc(srv, name)
    native(srv, name, register=False)
    assert first.until_closed()[-1].raw == "ERROR :Closing link (replaced)"
    now_native = native(srv, name, register=False)
    IrcClient(irc_addr(srv)).register(name, "pw")
    assert now_native.until_closed()[-1] == '{"type":"bye","reason":"replaced"}\n'


def test_quit_and_ping(srv):
    c = irc(srv, fresh_name())
    c.send("PING :a b c")
    assert c.until("PONG")[-1].text == "a b c"
    c.send("QUIT :done")
    assert c.until_closed()[-1].raw == "ERROR :Closing link (quit)"


# --- limits and bad input ------------------------------------------------------------------


def test_bad_input_is_answered_and_the_connection_kept(srv):
    c = irc(srv, fresh_name())
    c.send(b"PRIVMSG x :" + b"y" * 600, b"PRIVMSG x :\xff\xfe", b"PRIVMSG x :a\x00b", b"FOO bar")
    got = [c.line() for _ in range(4)]
    assert commands(got) == ["417", "FAIL", "NOTICE", "421"]
    assert got[1].params[:2] == ("*", "INVALID_UTF8") and "UTF-8" in got[1].text
    assert "NUL" in got[2].text
    c.send("PING alive")
    assert c.until("PONG")[-1].text == "alive"


def test_replies_that_echo_long_input_stay_within_512_bytes(srv):
    c, other = irc(srv, fresh_name()), irc(srv, fresh_name())
    g = fresh_name("g")
    c.send(f"JOIN #{g},,#{g}x", f"INVITE {other.nick} #{g}")
    c.sync()
    other.sync()
    c.send(f"PART #{g} :" + "r" * 480, "PRIVMSG " + "n" * 480 + " :x", "JOIN #no-such-g")
    mine = c.sync()
    assert commands(mine) == ["PART", "401", "JOIN", "353", "366"]
    theirs = other.until("PART")
    for got in (*mine, *theirs):
        assert len(got.raw.encode()) + 2 <= 512, got.raw
    assert theirs[-1].params[1].startswith("rrrr")


def test_invite_to_a_channel_that_does_not_exist_creates_nothing(srv):
    c, other = irc(srv, fresh_name()), irc(srv, fresh_name())
    g = fresh_name("g")
    c.send(f"INVITE {other.nick} #{g}", f"LIST #{g}")
    assert commands(c.sync()) == ["403", "321", "323"]
    assert other.sync() == []


def test_a_long_native_message_is_cut_to_fit_irc_lines(srv):
    alice = irc(srv, fresh_name())
    bob = native(srv, fresh_name())
    text = "word " * 300  # 1500 bytes: three IRC lines
    bob.ok(f"/send {alice.nick} {text.strip()}")
    pieces = []
    while "".join(pieces) != text.strip():
        x = alice.line()
        assert len(x.raw.encode()) + 2 <= 512
        pieces.append(x.text)
    assert len(pieces) >= 3


def test_slow_consumer_is_dropped_with_error_and_loses_nothing(tmp_path):
    server = start(tmp_path, "--max-outbuf", "65536")
    try:
        reader = fresh_name()
        server.client().ok(f"/register {reader} pw")
        slow = IrcClient(irc_addr(server), rcvbuf=4096)
        slow.register(reader, "pw", caps=("message-tags",))
        alice = native(server, fresh_name())
        sent: list[int] = []
        while "slow consumer" not in server.log_text():
            alice.sock.sendall(f"/send {reader} {'z' * 400}\n".encode() * 200)
            sent += [alice.reply()["id"] for _ in range(200)]
            assert len(sent) < 40000, "never dropped"
        lines = slow.until_closed()
        assert lines[-1].raw == "ERROR :Closing link (slow consumer)"
        received = {int(x.tags.split("msgid=")[1].split(";")[0]) for x in lines
                    if x.command == "PRIVMSG"}  # fmt: skip
        again = server.client()
        unread = again.ok(f"/login {reader} pw")["unread"]
        assert unread > 0
        replayed = {m["id"] for m in again.messages(unread)}
        assert received | replayed == set(sent)  # nothing lost
    finally:
        server.stop()


def test_stats_count_irc_connections_and_user_mode(srv):
    c = irc(srv, fresh_name())
    c.send(f"MODE {c.nick} +i", f"MODE {c.nick}", f"MODE {c.nick} +o")
    assert [(x.command, x.params[-1]) for x in c.sync()] == [
        ("MODE", "+i"), ("221", "+i"), ("501", "Unknown MODE flag")
    ]  # fmt: skip
    conns = native(srv, fresh_name()).ok("/stats")["connections"]
    assert conns["irc_open"] >= 1 and conns["irc_accepted"] >= conns["irc_open"]


def test_irc_commands_are_traced_like_native_ones(tmp_path):
    trace = tmp_path / "trace.jsonl"
    server = start(tmp_path, "--trace", str(trace))
    try:
        c = irc(server, fresh_name())
        bob = native(server, fresh_name())
        c.send(f"PRIVMSG {bob.name} :traced")
        assert bob.event()["text"] == "traced"
    finally:
        assert server.stop() == 0
    text = trace.read_text()
    assert '"cmd":"send"' in text.replace(" ", "") and '"cmd":"irc"' in text.replace(" ", "")
