"""Every command and every error code, over real sockets (docs/protocol.md §4, §7).

Each test runs under both locking strategies (the `server` fixture)."""

from __future__ import annotations

from tests.support.chatclient import account, fresh_name


def test_register_login_whoami_replies_with_the_name_as_written(server):
    name = fresh_name("Mixed")
    c = server.client()
    assert c.ok(f"/register {name} secret") == {"type": "ok", "cmd": "register", "user": name}
    reply = c.ok(f"/login {name.lower()} secret")
    assert reply == {"type": "ok", "cmd": "login", "user": name, "groups": [], "unread": 0}
    assert c.ok("/whoami")["user"] == name


def test_register_errors_bad_name_name_taken_bad_args(server):
    c = server.client()
    c.error("/register bad!name pw", "bad_name")
    c.error("/register " + "x" * 33 + " pw", "bad_name")
    c.error("/register onlyname", "bad_args")
    c.error("/register a b c", "bad_args")
    name = fresh_name()
    c.ok(f"/register {name} pw")
    c.error(f"/register {name.upper()} other", "name_taken")


def test_login_errors_auth_failed_and_already_logged_in(server):
    alice = account(server)
    c = server.client()
    c.error(f"/login {alice.name} wrong", "auth_failed")
    c.error(f"/login nobody_{alice.name} pw", "auth_failed")
    c.error(f"/login {alice.name}", "bad_args")
    alice.error(f"/login {alice.name} pw", "already_logged_in")


def test_commands_that_need_login_say_not_logged_in(server):
    c = server.client()
    for line in ["/send bob hi", "/group g", "/sendgroup g hi", "/leave g", "/users",
                 "/groups", "/whoami", "/history bob", "/ack 1"]:  # fmt: skip
        reply = c.error(line, "not_logged_in")
        assert reply["cmd"] == line.split()[0][1:]


def test_unknown_command_reports_the_command_word_or_null(server):
    c = server.client()
    assert c.error("/nosuch arg", "unknown_command")["cmd"] == "nosuch"
    assert c.error("just text", "unknown_command")["cmd"] is None
    assert c.error("/", "unknown_command")["cmd"] is None
    assert c.error("   ", "unknown_command")["cmd"] is None  # not empty: not ignored
    c.send("")  # an empty line is ignored: the next reply is the ping's
    assert c.ok("/ping after-empty")["token"] == "after-empty"


def test_commands_are_case_insensitive(server):
    c = server.client()
    assert c.ok("/PING abc") == {"type": "ok", "cmd": "ping", "token": "abc"}
    assert c.ok("/Ping")["token"] is None


def test_send_delivers_to_recipient_with_the_stored_id(server):
    alice, bob = account(server), account(server)
    sent = alice.ok(f"/send {bob.name} hello   there ")
    msg = bob.event("message")
    assert msg["id"] == sent["id"]
    assert msg["from"] == alice.name and msg["to"] == bob.name and msg["group"] is None
    assert msg["text"] == "hello   there "
    assert isinstance(msg["ts"], float)
    assert alice.inbox == []  # a private message goes to the recipient only


def test_send_errors_unknown_user_and_bad_args(server):
    alice = account(server)
    alice.error(f"/send nobody_{alice.name} hi", "unknown_user")
    alice.error(f"/send {alice.name}", "bad_args")


def test_group_creates_adds_and_checks_membership(server):
    alice, bob, carol = account(server), account(server), account(server)
    g = fresh_name("g")
    reply = alice.ok(f"/group {g} {bob.name}")
    assert reply["group"] == g
    assert sorted(reply["members"]) == sorted([alice.name, bob.name])
    carol.error(f"/group {g} {carol.name}", "not_member")
    reply = bob.ok(f"/group {g} {carol.name}")
    assert sorted(reply["members"]) == sorted([alice.name, bob.name, carol.name])
    groups = carol.ok("/groups")["groups"]
    assert [x["name"] for x in groups] == [g]


def test_group_errors_bad_name_name_taken_unknown_user(server):
    alice, bob = account(server), account(server)
    alice.error("/group bad/name", "bad_name")
    alice.error(f"/group {bob.name}", "name_taken")
    g = fresh_name("g")
    alice.error(f"/group {g} {bob.name} nobody_{g}", "unknown_user")
    # A failed command changes nothing: the group was not created.
    assert alice.ok("/groups")["groups"] == []
    alice.ok(f"/group {g}")
    c = server.client()
    c.error(f"/register {g.upper()} pw", "name_taken")  # one name space


def test_sendgroup_reaches_every_member_sender_included(server):
    alice, bob, carol = account(server), account(server), account(server)
    g = fresh_name("g")
    alice.ok(f"/group {g} {bob.name}")
    sent = bob.ok(f"/sendgroup {g} hi all")
    for member in (alice, bob):
        msg = member.event("message")
        assert (msg["id"], msg["group"], msg["from"], msg["to"]) == (sent["id"], g, bob.name, None)
    carol.error(f"/sendgroup {g} let me in", "not_member")
    carol.error(f"/sendgroup nogroup_{g} hi", "unknown_group")
    carol.error(f"/sendgroup {g}", "bad_args")
    assert carol.inbox == []


def test_leave_removes_member_and_last_one_out_frees_the_name(server):
    alice, bob = account(server), account(server)
    g = fresh_name("g")
    alice.ok(f"/group {g} {bob.name}")
    assert alice.ok(f"/leave {g}")["group"] == g
    alice.error(f"/leave {g}", "not_member")
    alice.error(f"/sendgroup {g} hi", "not_member")
    bob.ok(f"/sendgroup {g} still here")
    bob.ok(f"/leave {g}")
    bob.error(f"/leave {g}", "unknown_group")
    # The name is free again, and the new group does not see the old history.
    alice.ok(f"/group {g}")
    assert alice.ok(f"/history {g}")["messages"] == []


def test_users_lists_everyone_with_online_flags(server):
    alice, bob = account(server), account(server)
    offline = fresh_name()
    server.client().ok(f"/register {offline} pw")
    users = {u["name"]: u["online"] for u in alice.ok("/users")["users"]}
    assert users[alice.name] and users[bob.name] and users[offline] is False
    bob.ok("/exit")
    users = {u["name"]: u["online"] for u in alice.ok("/users")["users"]}
    assert users[bob.name] is False


def test_history_private_and_group_oldest_first_with_limit(server):
    alice, bob = account(server), account(server)
    ids = [alice.ok(f"/send {bob.name} m{i}")["id"] for i in range(3)]
    ids.append(bob.ok(f"/send {alice.name} back")["id"])
    hist = alice.ok(f"/history {bob.name}")
    assert hist["with"] == bob.name
    assert [m["id"] for m in hist["messages"]] == ids
    assert [m["text"] for m in bob.ok(f"/history {alice.name} 2")["messages"]] == ["m2", "back"]
    g = fresh_name("g")
    alice.ok(f"/group {g} {bob.name}")
    gid = bob.ok(f"/sendgroup {g} in group")["id"]
    assert [m["id"] for m in alice.ok(f"/history {g}")["messages"]] == [gid]
    for bad in ("0", "-1", "x", "1.5"):
        alice.error(f"/history {bob.name} {bad}", "bad_args")
    assert alice.ok(f"/history {bob.name} 100000")["messages"][-1]["id"] == ids[-1]
    alice.error(f"/history nobody_{g}", "unknown_user")
    alice.error("/history", "bad_args")


def test_group_names_may_be_written_with_a_hash_as_groups_lists_them(server):
    alice, bob = account(server), account(server)
    g = fresh_name("g")
    assert alice.ok(f"/group #{g} {bob.name}")["group"] == g
    gid = alice.ok(f"/sendgroup #{g} hash")["id"]
    assert [m["id"] for m in bob.ok(f"/history #{g}")["messages"]] == [gid]
    assert bob.ok(f"/history #{g}")["with"] == g
    # "#name" is always a group: a user's name with a hash is not the user
    alice.error(f"/history #{bob.name}", "unknown_user")
    alice.error("/sendgroup #bad!name x", "unknown_group")
    assert bob.ok(f"/leave #{g}") == {"type": "ok", "cmd": "leave", "group": g}
    bob.error(f"/history #{g}", "not_member")


def test_membership_changes_are_told_to_those_they_concern(server):
    alice, bob, carol = account(server), account(server), account(server)
    g = fresh_name("g")
    alice.ok(f"/group {g} {bob.name}")
    assert bob.event("group") == {
        "type": "group", "group": g, "by": alice.name, "added": [bob.name], "left": None,
        "members": sorted([alice.name, bob.name], key=str.lower),
    }  # fmt: skip
    bob.ok(f"/group {g} {carol.name}")  # a member adds: the others hear of it
    assert alice.event("group")["added"] == [carol.name]
    assert carol.event("group")["by"] == bob.name
    carol.ok(f"/leave {g}")
    for member in (alice, bob):
        told = member.event("group")
        assert told["left"] == carol.name and carol.name not in told["members"]
    alice.ok(f"/group {g}")  # nobody added: nothing to tell
    assert alice.ok(f"/group {g} {bob.name} {bob.name}")["members"] == sorted(
        [alice.name, bob.name], key=str.lower
    )  # a member again: nothing to tell either
    bob.ok("/ping")
    assert not [e for e in bob.inbox if e.get("type") == "group"]


def test_membership_changes_in_text_mode_are_one_system_line(server):
    alice = account(server)
    bob_name = fresh_name()
    server.client().ok(f"/register {bob_name} pw")
    bob = server.client(json_mode=False)
    bob.send(f"/login {bob_name} pw")
    assert bob.readline().startswith("System: Logged in as")
    g = fresh_name("g")
    alice.ok(f"/group {g} {bob_name}")
    line = bob.readline()
    assert line == f"System: {alice.name} added {bob_name} to #{g} (members: " + ", ".join(
        sorted([alice.name, bob_name], key=str.lower)) + ").\n"  # fmt: skip


def test_ack_accepts_known_ids_and_rejects_others(server):
    alice, bob = account(server), account(server)
    sent = alice.ok(f"/send {bob.name} hi")["id"]
    assert bob.ok(f"/ack {sent}") == {"type": "ok", "cmd": "ack", "id": sent}
    bob.ok("/ack 0")
    bob.error("/ack -3", "bad_args")
    bob.error("/ack x", "bad_args")
    bob.error(f"/ack {sent + 10**9}", "bad_args")


def test_mode_switches_encoding_from_its_own_reply_on(server):
    c = server.client(json_mode=False)
    assert c.welcome.startswith("System: Welcome")
    c.send("/ping a")
    assert c.readline() == "System: pong a\n"
    c.send("/mode json")
    assert c.read() == {"type": "ok", "cmd": "mode", "mode": "json"}
    c.send("/mode xml")
    assert c.read()["code"] == "bad_args"
    c.send("/mode text")
    assert c.readline() == "System: Output mode is text.\n"
    c.send("/nosuch")
    assert c.readline().startswith("Error [unknown_command]: ")


def test_help_lists_every_command_and_one_usage(server):
    c = server.client()
    names = {x["command"] for x in c.ok("/help")["commands"]}
    assert {"register", "login", "send", "group", "sendgroup", "leave", "users", "groups",
            "whoami", "history", "ack", "mode", "ping", "help", "exit"} <= names  # fmt: skip
    assert c.ok("/help /send")["usage"] == "/send <user> <text>"
    c.error("/help nosuch", "bad_args")


def test_exit_replies_then_bye_then_closes(server):
    c = server.client()
    c.send("/exit")
    c.send("/ping never-run")
    lines = c.until_closed()
    assert [line.strip() for line in lines] == [
        '{"type":"ok","cmd":"exit"}',
        '{"type":"bye","reason":"exit"}',
    ]


def test_replies_come_in_command_order_when_pipelined(server):
    alice, bob = account(server), account(server)
    lines = [f"/send {bob.name} n{i}" if i % 3 else f"/ping t{i}" for i in range(60)]
    alice.sock.sendall("".join(x + "\n" for x in lines).encode())
    replies = [alice.reply() for _ in lines]
    assert [r["cmd"] for r in replies] == [x.split()[0][1:] for x in lines]
    ids = [r["id"] for r in replies if r["cmd"] == "send"]
    assert ids == sorted(ids)
