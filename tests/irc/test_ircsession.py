"""`IrcSession` without sockets: the order of what it says when the
server's events and replies interleave in ways a socket test cannot force."""

from __future__ import annotations

from reactor.protocol.events import GroupChange, Ok
from reactor.protocol.ircsession import IrcSession
from reactor.protocol.parsing import Command


def registered_up_to_the_welcome(session: IrcSession) -> list[Command]:
    """Feed NICK and USER; return the native commands they queue."""
    items = []
    for frame in session.framer.feed(b"NICK alice\r\nUSER a 0 * :Alice\r\n"):
        items += session.frame(frame)
    return [x for x in items if isinstance(x, Command)]


def test_a_group_change_before_the_welcome_is_told_after_it_once():
    s = IrcSession("srv", "net", auth_none=True)
    assert [c.name for c in registered_up_to_the_welcome(s)] == ["login", "groups"]
    assert s.encode(Ok("login", {"user": "alice", "groups": [], "unread": 0})) == b""
    early = [
        GroupChange("os2", "bob", ("alice", "bob"), ("alice",)),  # the welcome lists it too
        GroupChange("lab", "bob", ("alice", "bob"), ("alice",)),  # the welcome missed it
    ]
    assert [s.encode(change) for change in early] == [b"", b""]  # nothing before 001
    welcome = s.encode(Ok("groups", {"groups": [{"name": "os2", "members": ["alice", "bob"]}]}))
    lines = welcome.decode().split("\r\n")
    assert lines[0].split()[1] == "001"
    joins = [x for x in lines if " JOIN " in x or " INVITE " in x]
    assert joins == [
        ":alice!alice@srv JOIN #os2",
        ":bob!bob@srv INVITE alice #lab",
        ":alice!alice@srv JOIN #lab",
    ]


def test_after_the_welcome_being_added_again_to_a_shown_channel_says_nothing():
    s = IrcSession("srv", "net", auth_none=True)
    registered_up_to_the_welcome(s)
    s.encode(Ok("login", {"user": "alice", "groups": [], "unread": 0}))
    s.encode(Ok("groups", {"groups": [{"name": "os2", "members": ["alice"]}]}))
    assert s.encode(GroupChange("os2", "bob", ("alice", "bob"), ("alice",))) == b""
    joined = s.encode(GroupChange("os2", "carol", ("alice", "bob", "carol"), ("carol",)))
    assert joined == b":carol!carol@srv JOIN #os2\r\n"


def test_held_changes_the_welcome_already_shows_are_not_told_again():
    s = IrcSession("srv", "net", auth_none=True)
    registered_up_to_the_welcome(s)
    s.encode(Ok("login", {"user": "alice", "groups": [], "unread": 0}))
    held = [
        GroupChange("os2", "bob", ("alice", "bob", "carol"), ("carol",)),  # in the names
        GroupChange("os2", "dave", ("alice", "bob"), left="dave"),  # gone from them
        GroupChange("os2", "erin", ("alice", "bob", "carol"), left="erin", reason="bye"),
    ]
    for change in held:
        s.encode(change)
    members = ["alice", "bob", "carol", "erin"]  # the query ran before erin left
    welcome = s.encode(Ok("groups", {"groups": [{"name": "os2", "members": members}]}))
    told = [x for x in welcome.decode().split("\r\n") if " JOIN " in x or " PART " in x]
    assert told == [":alice!alice@srv JOIN #os2", ":erin!erin@srv PART #os2 bye"]
