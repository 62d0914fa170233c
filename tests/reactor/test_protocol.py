"""reactor.protocol without sockets: framing, parsing, names and both encodings.

Everything here feeds bytes or strings to the sans-IO objects and looks at
what comes out; nothing opens a socket or starts a server.
"""

from __future__ import annotations

import itertools
import json
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reactor import limits
from reactor.protocol import (
    COMMANDS,
    JSON,
    TEXT,
    BadLine,
    Bye,
    Command,
    Error,
    FrameError,
    Framer,
    Message,
    Notice,
    Ok,
    command_word,
    encode,
    parse,
    to_json,
    to_text,
    valid_name,
)

EXAMPLES = settings(max_examples=200, deadline=None)

#: A small limit so that generated streams often cross it.
SMALL = 16


def feed_all(framer, chunks):
    frames = []
    for chunk in chunks:
        frames.extend(framer.feed(chunk))
    return frames


def codes(frames):
    return [f.code if isinstance(f, FrameError) else f for f in frames]


def split_at(data, cuts):
    points = sorted(set(cuts))
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def reference_frames(data, max_line):
    """What docs/protocol.md §1 says a whole stream becomes, written independently."""
    *lines, rest = data.split(b"\n")
    frames = []
    for line in lines:
        if len(line) + 1 > max_line:
            frames.append("line_too_long")
            continue
        if line.endswith(b"\r"):
            line = line[:-1]
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            frames.append("bad_encoding")
            continue
        if text:
            frames.append(text)
    if len(rest) >= max_line:
        frames.append("line_too_long")
    return frames


# --- Framer -------------------------------------------------------------------

raw_line = st.one_of(
    st.text(max_size=24).map(lambda s: s.encode()),
    st.binary(max_size=24),
    st.sampled_from([b"", b" ", b" \t ", b"/ping", b"\xff", b"\xc3", b"\r"]),
).map(lambda b: b.replace(b"\n", b""))
terminator = st.sampled_from([b"\n", b"\r\n"])
stream = st.lists(st.tuples(raw_line, terminator), max_size=12).map(
    lambda pairs: b"".join(line + end for line, end in pairs)
)


@EXAMPLES
@given(data=stream, tail=raw_line, draw=st.data())
def test_framer_any_split_gives_same_frames(data, tail, draw):
    data += tail  # a last line still in flight
    cuts = draw.draw(st.lists(st.integers(0, len(data)), max_size=20))
    whole = Framer(SMALL).feed(data)
    chunked = feed_all(Framer(SMALL), split_at(data, cuts))
    assert chunked == whole
    assert codes(whole) == reference_frames(data, SMALL)


def test_framer_every_two_way_split_gives_same_frames():
    data = "/say héllo\r\n\n  \r\n/ping\n".encode() + b"x" * 40 + b"\n\xff\n/users\r\n"
    whole = Framer(SMALL).feed(data)
    assert codes(whole) == ["/say héllo", "  ", "/ping", "line_too_long", "bad_encoding", "/users"]
    for cut in range(len(data) + 1):
        assert feed_all(Framer(SMALL), [data[:cut], data[cut:]]) == whole, cut


def test_framer_byte_by_byte_gives_same_frames():
    data = b"/ping a\r\n\n/users\n \t\n/whoami\r\n"
    whole = Framer().feed(data)
    assert whole == ["/ping a", "/users", " \t", "/whoami"]
    assert feed_all(Framer(), [bytes([b]) for b in data]) == whole


def test_framer_crlf_and_lf_both_end_lines():
    assert Framer().feed(b"/a\r\n/b\n/c\r\n") == ["/a", "/b", "/c"]


def test_framer_cr_only_dropped_before_lf():
    assert Framer().feed(b"a\rb\r\n") == ["a\rb"]
    assert Framer().feed(b"a\r\r\n") == ["a\r"]


def test_framer_cr_split_from_its_lf_is_still_dropped():
    framer = Framer()
    assert framer.feed(b"/ping\r") == []
    assert framer.feed(b"\n") == ["/ping"]


def test_framer_empty_lines_skipped_blank_ones_kept():
    # docs/protocol.md §1: empty lines are ignored; a line of spaces is not empty,
    # so it reaches the parser (and is answered unknown_command, cmd null).
    assert Framer().feed(b"\n\r\n   \n\t\r\n/ping\n") == ["   ", "\t", "/ping"]
    assert parse("   ") == BadLine(None, "unknown_command", "commands start with /; try /help")


def test_framer_keeps_leading_and_trailing_spaces_of_a_line():
    assert Framer().feed(b"  /send bob hi  \n") == ["  /send bob hi  "]


def test_framer_incomplete_line_is_held():
    framer = Framer()
    assert framer.feed(b"/pi") == []
    assert framer.buffered == 3
    assert framer.feed(b"ng\n") == ["/ping"]
    assert framer.buffered == 0


@pytest.mark.parametrize("end", [b"\n", b"\r\n"])
def test_framer_line_of_exactly_max_line_accepted(end):
    line = b"a" * (limits.MAX_LINE - len(end))
    assert Framer().feed(line + end) == [line.decode()]


@pytest.mark.parametrize("end", [b"\n", b"\r\n"])
def test_framer_line_of_exactly_max_line_accepted_byte_by_byte(end):
    line = b"a" * (SMALL - len(end))
    frames = feed_all(Framer(SMALL), [bytes([b]) for b in line + end])
    assert frames == [line.decode()]


@pytest.mark.parametrize("end", [b"\n", b"\r\n"])
def test_framer_line_one_over_max_line_rejected_then_resumes(end):
    line = b"a" * (limits.MAX_LINE + 1 - len(end))
    frames = Framer().feed(line + end + b"/ping\n")
    assert codes(frames) == ["line_too_long", "/ping"]
    assert frames[0].code == "line_too_long"
    assert str(limits.MAX_LINE) in frames[0].message


@pytest.mark.parametrize("end", [b"\n", b"\r\n"])
def test_framer_line_one_over_max_line_rejected_byte_by_byte(end):
    framer = Framer(SMALL)
    line = b"a" * (SMALL + 1 - len(end))
    frames = feed_all(framer, [bytes([b]) for b in line + end + b"/ping\n"])
    assert codes(frames) == ["line_too_long", "/ping"]


def test_framer_overlong_line_in_one_chunk_reported_once():
    framer = Framer()
    frames = framer.feed(b"x" * (3 * limits.MAX_LINE) + b"\n/users\n")
    assert codes(frames) == ["line_too_long", "/users"]
    assert framer.buffered == 0


def test_framer_overlong_line_without_newline_reported_once_and_dropped():
    framer = Framer()
    frames = []
    for _ in range(10 * limits.MAX_LINE // 100):
        frames.extend(framer.feed(b"y" * 100))
        assert framer.buffered < limits.MAX_LINE
    assert codes(frames) == ["line_too_long"]
    assert framer.buffered == 0  # discarding: nothing of the long line is kept
    assert framer.feed(b"still the long line\n/ping\n") == ["/ping"]
    assert framer.buffered == 0


def test_framer_overlong_unterminated_chunk_then_next_line_fine():
    framer = Framer()
    assert codes(framer.feed(b"z" * (limits.MAX_LINE + 500))) == ["line_too_long"]
    assert framer.feed(b"end\n") == []
    assert framer.feed(b"/whoami\n") == ["/whoami"]


def test_framer_overlong_reported_as_soon_as_limit_reached():
    framer = Framer(SMALL)
    assert framer.feed(b"a" * (SMALL - 1)) == []
    assert codes(framer.feed(b"a")) == ["line_too_long"]


def test_framer_newline_while_discarding_starts_a_fresh_line():
    framer = Framer(SMALL)
    assert codes(framer.feed(b"a" * SMALL)) == ["line_too_long"]
    # The rest of this chunk is again over the limit: a second, new report.
    assert codes(framer.feed(b"b\n" + b"c" * SMALL)) == ["line_too_long"]
    assert framer.feed(b"\n/ok\n") == ["/ok"]


@pytest.mark.parametrize(
    "bad", [b"\xff\xfe", b"caf\xe9", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"ok\x80"]
)
def test_framer_invalid_utf8_gives_bad_encoding_then_next_line_fine(bad):
    frames = Framer().feed(bad + b"\n/ping\n")
    assert codes(frames) == ["bad_encoding", "/ping"]
    assert isinstance(frames[0], FrameError)


def test_framer_invalid_utf8_in_pieces_then_next_line_fine():
    framer = Framer()
    frames = feed_all(framer, [b"ab\xf0", b"\x9f", b"\n", b"/pi", b"ng\n"])
    assert codes(frames) == ["bad_encoding", "/ping"]


def test_framer_multibyte_utf8_split_across_feeds():
    text = "/send bob héllo € 😀 日本"
    data = text.encode() + b"\n"
    assert feed_all(Framer(), [bytes([b]) for b in data]) == [text]
    for cut in range(len(data) + 1):
        assert feed_all(Framer(), [data[:cut], data[cut:]]) == [text]


def test_framer_max_line_counts_bytes_not_characters():
    line = "é" * (SMALL // 2)  # SMALL bytes, half as many characters
    assert codes(Framer(SMALL).feed(line.encode() + b"\n")) == ["line_too_long"]
    short = "é" * (SMALL // 2 - 1)
    assert Framer(SMALL).feed(short.encode() + b"\n") == [short]


@EXAMPLES
@given(chunks=st.lists(st.binary(max_size=3 * SMALL), max_size=20))
def test_framer_feed_never_raises_and_stays_bounded(chunks):
    framer = Framer(SMALL)
    for chunk in chunks:
        for frame in framer.feed(chunk):
            if isinstance(frame, FrameError):
                assert frame.code in {"line_too_long", "bad_encoding"}
            else:
                assert isinstance(frame, str)
                assert "\n" not in frame
                assert frame
                assert len(frame.encode()) + 1 <= SMALL
        assert framer.buffered < SMALL


@EXAMPLES
@given(chunks=st.lists(st.binary(max_size=64), max_size=10))
def test_framer_feed_never_raises_default_limit(chunks):
    framer = Framer()
    for chunk in chunks:
        assert isinstance(framer.feed(chunk), list)
        assert framer.buffered < limits.MAX_LINE


# --- parse --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/SEND bob hi", Command("send", ("bob",), "hi")),
        ("/Send bob hi", Command("send", ("bob",), "hi")),
        ("/PING", Command("ping")),
        ("/WhoAmI", Command("whoami")),
        ("   /ping", Command("ping")),
        ("/users", Command("users")),
        ("/groups", Command("groups")),
        ("/exit", Command("exit")),
        ("/leave os2", Command("leave", ("os2",))),
        ("/ack 17", Command("ack", ("17",))),
        ("/mode json", Command("mode", ("json",))),
        ("/mode   text  ", Command("mode", ("text",))),
        ("/register alice s3cret", Command("register", ("alice", "s3cret"))),
        ("/register   alice   s3cret   ", Command("register", ("alice", "s3cret"))),
    ],
)
def test_parse_valid_commands(line, expected):
    assert parse(line) == expected


def test_parse_command_spec_is_its_table_entry():
    assert parse("/send bob hi").spec is COMMANDS["send"]


@pytest.mark.parametrize(
    ("line", "cmd"), [("/foo", "foo"), ("/FOO bar baz", "foo"), ("  /nope", "nope")]
)
def test_parse_unknown_command(line, cmd):
    result = parse(line)
    assert isinstance(result, BadLine)
    assert (result.cmd, result.code) == (cmd, "unknown_command")


@pytest.mark.parametrize("line", ["hello", "hi /send bob x", "/", "  / ping", "send bob hi", ""])
def test_parse_line_without_command_word_has_cmd_none(line):
    result = parse(line)
    assert isinstance(result, BadLine)
    assert (result.cmd, result.code) == (None, "unknown_command")
    assert "/help" in result.message


@pytest.mark.parametrize(
    "line",
    [
        "/register",
        "/register alice",
        "/login",
        "/send",
        "/send bob",
        "/send bob ",
        "/send bob    ",
        "/sendgroup",
        "/sendgroup os2",
        "/group",
        "/leave",
        "/history",
        "/ack",
        "/mode",
    ],
)
def test_parse_missing_args_is_bad_args(line):
    result = parse(line)
    assert isinstance(result, BadLine)
    assert result.code == "bad_args"
    assert result.cmd == command_word(line)
    assert COMMANDS[result.cmd].usage in result.message


@pytest.mark.parametrize(
    "line",
    [
        "/register alice pw extra",
        "/login alice pw extra",
        "/leave os2 extra",
        "/users everyone",
        "/groups mine",
        "/whoami really",
        "/history bob 10 20",
        "/ack 1 2",
        "/mode json now",
        "/ping a b",
        "/help send login",
        "/exit now",
    ],
)
def test_parse_extra_args_is_bad_args(line):
    result = parse(line)
    assert isinstance(result, BadLine)
    assert (result.cmd, result.code) == (command_word(line), "bad_args")


@pytest.mark.parametrize(
    ("line", "text"),
    [
        ("/send bob hi", "hi"),
        ("/send bob hello   world", "hello   world"),
        ("/send bob hi  ", "hi  "),
        ("/send   bob     spaced  out  ", "spaced  out  "),
        ("/send bob /send alice x", "/send alice x"),
        ("/send bob \ttabbed", "\ttabbed"),
        ("/send bob ünïcödé 😀", "ünïcödé 😀"),
    ],
)
def test_parse_send_text_kept_verbatim(line, text):
    assert parse(line) == Command("send", ("bob",), text)


def test_parse_sendgroup_text_kept_verbatim():
    assert parse("/sendgroup os2  a  b  ") == Command("sendgroup", ("os2",), "a  b  ")


@pytest.mark.parametrize(
    ("line", "args"),
    [
        ("/group os2", ("os2",)),
        ("/group os2 alice", ("os2", "alice")),
        ("/group os2 alice bob carol", ("os2", "alice", "bob", "carol")),
        ("/group  os2   alice    bob  ", ("os2", "alice", "bob")),
    ],
)
def test_parse_group_takes_one_group_and_any_names(line, args):
    assert parse(line) == Command("group", args)


@pytest.mark.parametrize(
    ("line", "args"),
    [
        ("/history bob", ("bob",)),
        ("/history bob 10", ("bob", "10")),
        ("/history os2   500  ", ("os2", "500")),
        ("/ping", ()),
        ("/ping tok", ("tok",)),
        ("/help", ()),
        ("/help send", ("send",)),
        ("/login alice", ("alice",)),
        ("/login alice pw", ("alice", "pw")),
    ],
)
def test_parse_optional_args(line, args):
    result = parse(line)
    assert isinstance(result, Command)
    assert result.args == args
    assert result.text == ""


@pytest.mark.parametrize("password", ["pa\tss", "pw\t", "pa\u00a0ss", "pa\u3000ss", "x\x1cy"])
def test_parse_login_takes_the_password_register_stored(password):
    # A password /register accepts must be one /login can give back.
    registered = parse(f"/register alice {password}")
    logged_in = parse(f"/login alice {password}")
    assert registered == Command("register", ("alice", password))
    assert logged_in == Command("login", ("alice", password))


@pytest.mark.parametrize("token", ["a\tb", "a\u00a0b"])
def test_parse_optional_args_split_on_spaces_only(token):
    # docs/protocol.md §4: arguments are split on runs of spaces.
    assert parse(f"/ping {token}") == Command("ping", (token,))


def test_command_word_cases():
    assert command_word("/SEND bob hi") == "send"
    assert command_word("   /Foo") == "foo"
    assert command_word("/") is None
    assert command_word("hello") is None
    assert command_word("") is None


name_strategy = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-",
    min_size=1,
    max_size=limits.MAX_NAME,
)
spaces = st.integers(1, 4).map(lambda n: " " * n)


@EXAMPLES
@given(
    cmd=st.sampled_from(["send", "sendgroup"]),
    target=name_strategy,
    sep=spaces,
    text=st.text(min_size=1).filter(lambda t: not t.startswith(" ")),
    upper=st.booleans(),
)
def test_parse_text_roundtrips(cmd, target, sep, text, upper):
    word = cmd.upper() if upper else cmd
    assert parse(f"/{word} {target}{sep}{text}") == Command(cmd, (target,), text)


@EXAMPLES
@given(group=name_strategy, names=st.lists(name_strategy, max_size=8), sep=spaces)
def test_parse_group_names_roundtrip(group, names, sep):
    line = "/group " + sep.join([group, *names])
    assert parse(line) == Command("group", (group, *names))


command_like = st.one_of(
    st.text(),
    st.builds(
        lambda word, rest: "/" + word + rest,
        st.sampled_from([*COMMANDS, *(c.upper() for c in COMMANDS)]),
        st.text(alphabet=st.sampled_from(" \tab/\u00a0é1"), max_size=20) | st.text(max_size=20),
    ),
)


@EXAMPLES
@given(line=command_like)
def test_parse_never_raises(line):
    result = parse(line)
    assert isinstance(result, Command | BadLine)
    if isinstance(result, Command):
        assert result.name == command_word(line)
        assert result.name in COMMANDS
    else:
        assert result.cmd == command_word(line)
        assert result.code in {"unknown_command", "bad_args"}
        assert result.message


# --- valid_name -----------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["a", "Z", "0", "alice", "Bob_2", "os2.fall-24", "_", ".", "-", "x" * 32]
)
def test_valid_name_accepts(name):
    assert valid_name(name)


@pytest.mark.parametrize(
    "name",
    ["", "x" * 33, "al ice", " alice", "alice ", "élodie", "Ωmega", "名前", "a\tb", "a/b", "a@b"],
)
def test_valid_name_rejects(name):
    assert not valid_name(name)


@EXAMPLES
@given(name=st.text(max_size=40))
def test_valid_name_matches_spec(name):
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
    expected = 1 <= len(name) <= 32 and set(name) <= allowed
    assert valid_name(name) == expected


# --- encode: json ----------------------------------------------------------------


def one_line(data):
    assert isinstance(data, bytes)
    assert data.endswith(b"\n")
    assert data.count(b"\n") == 1
    return data[:-1].decode("utf-8")


def json_line(event):
    data = encode(event, JSON)
    line = one_line(data)
    assert data.splitlines() == [data[:-1]]
    return json.loads(line)


def test_encode_json_ok_shape():
    obj = json_line(Ok("login", {"user": "alice", "groups": ["os2"], "unread": 3}))
    assert obj == {"type": "ok", "cmd": "login", "user": "alice", "groups": ["os2"], "unread": 3}


def test_encode_json_ok_without_fields():
    assert json_line(Ok("exit")) == {"type": "ok", "cmd": "exit"}


def test_encode_json_error_shape():
    obj = json_line(Error("send", "unknown_user", "no user bob"))
    assert obj == {
        "type": "error",
        "cmd": "send",
        "code": "unknown_user",
        "message": "no user bob",
    }


def test_encode_json_error_without_command_has_cmd_null():
    obj = json_line(Error(None, "line_too_long", "too long"))
    assert obj["cmd"] is None
    assert set(obj) == {"type", "cmd", "code", "message"}


@pytest.mark.parametrize(("to", "group"), [("bob", None), (None, "os2")])
def test_encode_json_message_shape(to, group):
    msg = Message(7, "alice", to, group, "hi\nthere", 1700000000.25)
    assert json_line(msg) == {
        "type": "message",
        "id": 7,
        "from": "alice",
        "to": to,
        "group": group,
        "text": "hi\nthere",
        "ts": 1700000000.25,
    }


@pytest.mark.parametrize(
    "reason", ["exit", "replaced", "slow_consumer", "idle", "shutdown", "server_full"]
)
def test_encode_json_bye_shape(reason):
    assert json_line(Bye(reason)) == {"type": "bye", "reason": reason}


def test_encode_json_notice_shape():
    assert json_line(Notice("Welcome!")) == {"type": "notice", "text": "Welcome!"}


def test_to_json_matches_encode():
    event = Message(1, "a", "b", None, "x", 1.0)
    assert json.loads(encode(event, JSON)) == to_json(event)


@EXAMPLES
@given(
    text=st.text(),
    sender=name_strategy,
    msg_id=st.integers(1, 2**53),
    ts=st.floats(0, 4e9),
    group=st.none() | name_strategy,
)
def test_encode_json_message_roundtrips_any_text(text, sender, msg_id, ts, group):
    to = None if group else "bob"
    obj = json_line(Message(msg_id, sender, to, group, text, ts))
    assert obj["text"] == text
    assert (obj["id"], obj["from"], obj["to"], obj["group"], obj["ts"]) == (
        msg_id,
        sender,
        to,
        group,
        ts,
    )


# --- encode: text ---------------------------------------------------------------


def text_line(event):
    line = one_line(encode(event, TEXT))
    assert line == visible(to_text(event))
    return line


def test_encode_text_private_message():
    assert text_line(Message(1, "alice", "bob", None, "hi", 0.0)) == "[alice]: hi"


def test_encode_text_group_message():
    assert text_line(Message(2, "alice", None, "os2", "hi", 0.0)) == "[#os2 alice]: hi"


def test_encode_text_message_with_newlines_is_one_line():
    line = text_line(Message(3, "alice", "bob", None, "one\ntwo\n\nthree\n", 0.0))
    assert line.startswith("[alice]: one")
    assert "three" in line


def test_encode_text_error():
    assert text_line(Error("send", "unknown_user", "no user bob")) == (
        "Error [unknown_user]: no user bob"
    )


def test_encode_text_bye_and_notice():
    assert text_line(Bye("exit")).startswith("System: ")
    assert "exit" in text_line(Bye("exit"))
    assert text_line(Notice("Welcome to the chat server!")) == (
        "System: Welcome to the chat server!"
    )


@EXAMPLES
@given(text=st.text(), group=st.none() | name_strategy)
def test_encode_text_message_any_text_is_one_line(text, group):
    line = text_line(Message(1, "alice", None if group else "bob", group, text, 0.0))
    prefix = f"[#{group} alice]: " if group else "[alice]: "
    assert line == prefix + visible(text)


def visible(text: str) -> str:
    """What text mode shows of `text`, written independently: a newline as
    a space, C0 and DEL in caret notation, C1 as ^[ and its 7-bit form."""
    out = []
    for c in text:
        o = ord(c)
        if c == "\n":
            out.append(" ")
        elif o < 0x20:
            out.append("^" + chr(o + 0x40))
        elif o == 0x7F:
            out.append("^?")
        elif 0x80 <= o < 0xA0:
            out.append("^[" + chr(o - 0x40))
        else:
            out.append(c)
    return "".join(out)


HISTORY_MSG = {
    "id": 5,
    "from": "bob",
    "to": "alice",
    "group": None,
    "text": "hey\nyou",
    "ts": 1700000000.0,
}

#: Plausible ok fields for every command, some commands more than once.
OK_FIELDS = {
    "register": [{"user": "alice"}],
    "login": [
        {"user": "alice", "groups": ["os2", "fun"], "unread": 4},
        {"user": "alice", "groups": [], "unread": 0},
    ],
    "send": [{"id": 12}],
    "group": [{"group": "os2", "members": ["alice", "bob"]}],
    "sendgroup": [{"id": 13}],
    "join": [{"group": "os2", "members": ["alice", "bob"], "open": True}],
    "leave": [{"group": "os2"}],
    "users": [
        {"users": [{"name": "alice", "online": True}, {"name": "bob", "online": False}]},
        {"users": []},
    ],
    "groups": [
        {"groups": [{"name": "os2", "members": ["alice", "bob"]}]},
        {"groups": []},
    ],
    "whoami": [{"user": "alice"}],
    "history": [
        {"with": "bob", "messages": [HISTORY_MSG, {**HISTORY_MSG, "id": 6, "text": "yo"}]},
        {"with": "bob", "messages": []},
    ],
    "ack": [{"id": 12}],
    "mode": [{"mode": "text"}, {"mode": "json"}],
    "ping": [{"token": "abc"}, {"token": None}, {}],
    "help": [
        {"commands": [{"usage": s.usage, "summary": s.summary} for s in COMMANDS.values()]},
        {"usage": COMMANDS["send"].usage},
    ],
    "exit": [{}],
}

STATS = {
    "locking": "fine",
    "locks": [
        {"name": "group:os2", "class": "group", "acquisitions": 3, "contended": 1,
         "wait_total_us": 12, "wait_max_us": 12, "hold_total_us": 30, "hold_max_us": 20},
        {"name": "storage", "class": "storage", "acquisitions": 1234567, "contended": 0,
         "wait_total_us": 0, "wait_max_us": 0, "hold_total_us": 5, "hold_max_us": 5},
    ],
    "classes": [],
    "pool": {"workers": 4, "busy": 1, "queued": 0},
    "order_violations": 0,
}  # fmt: skip
STATS["classes"] = [dict(x, name=x["class"]) for x in STATS["locks"]]


def test_encode_text_stats_is_an_aligned_table():
    lines = encode(Ok("stats", STATS), "text").decode().splitlines()
    assert lines[0] == "System: Lock statistics (times in µs)"
    table = lines[1:-1]
    assert len(table) == 1 + 2 + 2  # header, two classes, two locks
    assert len({len(row) for row in table}) == 1  # every row the same width
    assert "1234567" in "".join(table) and "group (class)" in "".join(table)
    assert "4 workers, 1 busy" in lines[-1]
    assert json.loads(encode(Ok("stats", STATS), "json")) == {"type": "ok", "cmd": "stats", **STATS}


def test_ok_fields_cover_every_command():
    assert set(OK_FIELDS) | {"stats"} == set(COMMANDS)  # stats: its own test


@pytest.mark.parametrize(
    ("cmd", "fields"), [(cmd, f) for cmd, many in OK_FIELDS.items() for f in many]
)
def test_encode_text_ok_of_every_command_is_one_system_line(cmd, fields):
    line = text_line(Ok(cmd, fields))
    assert line.startswith("System: ")
    assert line != "System: ok"  # the command has its own rendering
    assert json_line(Ok(cmd, fields)) == {"type": "ok", "cmd": cmd, **fields}


def test_encode_text_ok_renders_key_fields():
    assert "alice" in text_line(Ok("whoami", {"user": "alice"}))
    assert "12" in text_line(Ok("send", {"id": 12}))
    assert "#os2" in text_line(Ok("group", {"group": "os2", "members": ["alice", "bob"]}))
    assert "abc" in text_line(Ok("ping", {"token": "abc"}))
    assert "json" in text_line(Ok("mode", {"mode": "json"}))


def test_encode_text_ok_of_unknown_command_falls_back():
    assert text_line(Ok("future", {"x": 1})) == "System: ok"


@given(
    st.integers(min_value=1, max_value=2**53),
    st.text(),
    st.one_of(st.none(), st.text()),
    st.one_of(st.none(), st.text()),
    st.text(),
    st.floats(min_value=0, max_value=4e9, allow_nan=False),
)
def test_message_json_fast_path_is_byte_for_byte_the_generic_encoding(
    i, sender, to, group, text, ts
):
    m = Message(i, sender, to, group, text, ts)
    generic = generic_json(to_json(m))
    assert encode(m, JSON) == generic
    assert json.loads(encode(m, JSON)) == to_json(m)


@given(
    st.sampled_from(sorted(COMMANDS)),
    st.dictionaries(st.text(min_size=1), st.integers(min_value=-(2**63), max_value=2**63)),
)
def test_ok_json_fast_path_is_the_generic_encoding(cmd, fields):
    ok = Ok(cmd, fields)
    generic = generic_json(to_json(ok))
    assert encode(ok, JSON) == generic


def generic_json(obj: dict) -> bytes:
    """The reference JSON line: json.dumps, DEL and C1 escaped too."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return re.sub("[\x7f-\x9f]", lambda m: f"\\u{ord(m.group()):04x}", text).encode() + b"\n"


CONTROLS = "nul\x00 esc\x1b[2J\x1b[H title\x1b]0;pwned\x07 cr\rx del\x7f c1\x9b31m\x85\x9f"


def test_text_mode_shows_every_control_character_visibly():
    line = encode(Message(1, "bob", "al", None, CONTROLS, 1.0), TEXT)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    body = line[:-1].decode()
    assert all(not (ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0) for c in body), body
    assert "nul^@ esc^[[2J^[[H title^[]0;pwned^G cr^Mx del^? c1^[[31m^[E^[_" in body


def test_text_mode_shows_controls_in_every_event_not_only_messages():
    line = encode(Error("x\x1b", "unknown_command", "unknown command /x\x1b]0;t\x07"), TEXT)
    assert b"\x1b" not in line and b"\x07" not in line and b"^[]0;t^G" in line


def test_json_mode_escapes_c0_del_and_c1_and_keeps_the_text():
    for event in (Message(1, "bob", "al", None, CONTROLS, 1.0), Ok("ping", {"token": CONTROLS})):
        line = encode(event, JSON)
        raw = line[:-1].decode()
        assert all(not (ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0) for c in raw), raw
        decoded = json.loads(line)
        assert decoded.get("text", decoded.get("token")) == CONTROLS


def test_encode_text_history_gives_the_date_of_messages_not_from_today():
    now = time.time()
    old = {**HISTORY_MSG, "ts": now - 3 * 86400, "text": "old"}
    new = {**HISTORY_MSG, "ts": now, "text": "new"}
    line = encode(Ok("history", {"with": "bob", "messages": [old, new]}), "text").decode()
    day = time.strftime("%Y-%m-%d", time.localtime(old["ts"]))
    assert f"): {day} " in line and f"| {time.strftime('%H:%M', time.localtime(now))} " in line
    assert line.count("\n") == 1  # still one line
