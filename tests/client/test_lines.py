"""What a typed line means (client/lines.py), with no terminal and no server."""

from __future__ import annotations

import pytest

from client.lines import (
    REPL_COMMANDS,
    TUI_COMMANDS,
    Blank,
    Clear,
    Close,
    Command,
    Leave,
    NoConversation,
    Query,
    Refused,
    conversation_name,
    private_message,
    read_line,
)


@pytest.mark.parametrize("line", ["", "   ", "\t"])
def test_read_line_blank_does_nothing(line):
    assert read_line(line, "bob") == Blank()


@pytest.mark.parametrize("line", ["/exit", "/quit", "/QUIT now"])
def test_read_line_exit_and_quit_leave(line):
    assert read_line(line, None) == Leave()
    assert read_line(line, "bob", commands=TUI_COMMANDS) == Leave()


def test_read_line_plain_text_goes_to_the_current_conversation():
    assert read_line("hi there", "bob") == Command("/send bob hi there", "bob")
    assert read_line("hi all", "#os2") == Command("/sendgroup os2 hi all", "#os2")


def test_read_line_plain_text_with_no_conversation_is_an_error():
    assert read_line("hello?", None) == NoConversation("hello?")


def test_read_line_commands_go_to_the_server_as_typed():
    assert read_line("/whoami", "bob") == Command("/whoami")
    assert read_line("/send carol hi", "bob") == Command("/send carol hi")


def test_read_line_leading_space_makes_a_plain_line():
    assert read_line(" /query bob", "carol") == Command("/send carol  /query bob", "carol")


def test_read_line_query_names_a_user_or_a_group():
    assert read_line("/query bob", None) == Query("bob")
    assert read_line("/QUERY bob", None) == Query("bob")
    assert read_line("/query #os2", None) == Query("#os2")
    assert read_line("/query os2", None, groups=["OS2"]) == Query("#os2")
    assert read_line("/query os2", None, groups=["books"]) == Query("os2")


@pytest.mark.parametrize("line", ["/query", "/query bob carol"])
def test_read_line_query_without_one_name_ends_the_conversation(line):
    assert read_line(line, "bob") == Query(None)


def test_read_line_close_is_the_tui_s_command_only():
    assert read_line("/close", "bob", commands=TUI_COMMANDS) == Close()
    assert read_line("/close", "bob", commands=REPL_COMMANDS) == Command("/close")


def test_read_line_commands_carry_their_usage():
    assert set(REPL_COMMANDS) == {"query", "clear", "msg", "me", "join", "part", "names"}
    assert set(TUI_COMMANDS) == set(REPL_COMMANDS) | {"close"}
    assert all(usage.startswith("/") for usage in TUI_COMMANDS.values())


def test_conversation_name_strips_extra_hashes():
    assert conversation_name("##g", []) == "#g"
    assert conversation_name("Bob", ["bob_group"]) == "Bob"


def test_private_message_reads_a_send_line():
    assert private_message("/send bob hi there") == ("bob", "hi there")
    assert private_message("/SEND  bob  hi") == ("bob", "hi")
    assert private_message("/sendgroup g hi") is None
    assert private_message("/send bob") is None
    assert private_message("hello") is None


@pytest.mark.parametrize("line", ["/mode text", "/MODE json", "/mode"])
def test_read_line_mode_is_refused_with_the_reason(line):
    for commands in (REPL_COMMANDS, TUI_COMMANDS):
        action = read_line(line, "bob", commands=commands)
        assert isinstance(action, Refused) and "/mode is for nc" in action.message


def test_read_line_irc_habits_map_to_what_they_mean_here():
    assert read_line("/msg bob hi there", None) == Command("/send bob hi there", "bob")
    assert read_line("/msg #os2 hi", None) == Command("/sendgroup os2 hi", "#os2")
    assert read_line("/msg os2 hi", None, groups=["os2"]) == Command("/sendgroup os2 hi", "#os2")
    assert read_line("/me waves", "bob") == Command("/send bob * waves", "bob")
    assert read_line("/me waves", "#os2") == Command("/sendgroup os2 * waves", "#os2")
    assert read_line("/join os2", None) == Command("/join os2", "#os2")
    assert read_line("/join #os2", "bob") == Command("/join os2", "#os2")
    assert read_line("/part", "#os2") == Command("/leave os2", "#os2")
    assert read_line("/part #books", "bob") == Command("/leave books", "#books")
    assert read_line("/names", None) == Command("/users")
    assert read_line("/clear", "bob") == Clear()


@pytest.mark.parametrize(
    ("line", "current"),
    [("/msg", None), ("/msg bob", None), ("/msg bob   ", "x"), ("/me", "bob"),
     ("/join", None), ("/join a b", None), ("/part", None), ("/part", "bob")],
)  # fmt: skip
def test_read_line_irc_habits_without_their_arguments_say_their_usage(line, current):
    action = read_line(line, current)
    assert isinstance(action, Refused) and action.message.startswith("usage: /")


def test_read_line_me_with_no_conversation_is_an_error():
    assert read_line("/me waves", None) == NoConversation("* waves")
