"""What a typed line means (client/lines.py), with no terminal and no server."""

from __future__ import annotations

import pytest

from client.lines import (
    REPL_COMMANDS,
    TUI_COMMANDS,
    Blank,
    Close,
    Command,
    Leave,
    NoConversation,
    Query,
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
    assert set(REPL_COMMANDS) == {"query"}
    assert set(TUI_COMMANDS) == {"query", "close"}
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
