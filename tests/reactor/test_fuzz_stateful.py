"""Stateful fuzzing: random command sequences from a few users against one
real server, checked step by step against a model (docs/protocol.md §4-§7).

The model knows who is in which group, each group's log (the messages of its
current incarnation: the last member leaving deletes it and frees the name),
each private conversation, and who is online. After every `ok` of `/send` or
`/sendgroup`, each online recipient's next message event must be exactly
that message (group messages reach every member, the sender included;
private ones only the recipient), so a missing, extra or reordered event
fails the step; after every step a `/ping` round trip on each connection
shows nothing else came. A user may `/ack` what it saw and `/exit`; messages
to it meanwhile must be replayed, oldest first, right after its next
`/login`, and counted in `unread`. Names are written in random letter case:
they are unique without regard to case and shown as first written.

Rules come in two kinds: "any user, any name of the pool" (which mostly
exercises the errors: `unknown_group`, `not_member`, `unknown_user`) and
"a member of an existing group" (which keeps groups busy). One server per
test function; each example gets fresh users and group names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.support.chatclient import Client, ServerProcess, account, fresh_name

SETTINGS = settings(max_examples=25, stateful_step_count=30, deadline=None)

#: Seconds to wait for a reply or an expected message: on loopback they take
#: milliseconds, and a missing one costs this much per try while shrinking.
WAIT = 5.0
MAX_USERS = 4
GROUP_NAMES = 3  # names each example's groups are drawn from
PASSWORD = "pw"

#: A user: among those online when the user acts, among all when acted upon.
WHO = st.integers(0, MAX_USERS - 1)
WHICH_GROUP = st.integers(0, GROUP_NAMES - 1)
INVITED = st.lists(WHO, max_size=3)
#: How a name is written in a command: names are case-insensitive.
CASE = st.sampled_from(["as_written", "lower", "upper", "swapcase"])
#: Message text: the verbatim rest of the line, so no line breaks, and no
#: leading space (spaces before the text separate it from the arguments).
TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"),
    min_size=1,
    max_size=40,
).filter(lambda s: not s.startswith(" "))
TEXTS = st.lists(TEXT, min_size=1, max_size=6)
LIMIT = st.none() | st.integers(1, 12)


def written(name: str, case: str) -> str:
    return name if case == "as_written" else getattr(name, case)()


def by_key(names) -> list[str]:
    return sorted(names, key=str.lower)


@dataclass
class Group:
    name: str  # as written by its creator
    members: set[int]
    log: list[dict] = field(default_factory=list)  # this incarnation's messages


class ChatModel(RuleBasedStateMachine):
    def __init__(self, server: ServerProcess) -> None:
        super().__init__()
        self.server = server
        self.names: list[str] = []
        # Invariant: clients[i] is None exactly while user i is logged out;
        # then pending[i] holds, in id order, the messages stored for it.
        self.clients: list[Client | None] = []
        self.pending: list[list[dict]] = []
        self.seen: list[int] = []  # highest message id each user received
        self.group_names = [fresh_name("g") + "Gr" for _ in range(GROUP_NAMES)]
        self.nobody = fresh_name("nobody")  # never registered, never a group
        self.groups: dict[str, Group] = {}  # by lower-case name
        self.private: dict[frozenset[int], list[dict]] = {}
        self.last_id = 0
        self.pings = 0

    @initialize(n=st.integers(3, MAX_USERS), creator=WHO, invited=INVITED, which=WHICH_GROUP)
    def log_in_users_and_make_a_group(self, n, creator, invited, which):
        for _ in range(n):
            client = account(self.server, fresh_name("u") + "Ab", PASSWORD)
            client.sock.settimeout(WAIT)
            self.clients.append(client)
            self.names.append(client.name)
            self.pending.append([])
            self.seen.append(0)
        self.make_or_add(self.actor(creator), which, invited, "as_written")

    def teardown(self) -> None:
        for client in self.clients:
            if client is not None:
                client.close()

    # --- model helpers ---------------------------------------------------------

    def online(self) -> list[int]:
        return [i for i, c in enumerate(self.clients) if c is not None]

    def actor(self, who: int) -> int:
        online = self.online()
        return online[who % len(online)]

    def anyone(self, who: int) -> int:
        return who % len(self.names)

    def find_group(self, which: int) -> Group | None:
        return self.groups.get(self.group_names[which].lower())

    def online_members(self) -> list[tuple[int, int]]:
        """(index in the name pool, user) for each online member of a group."""
        return [
            (which, i)
            for which in range(GROUP_NAMES)
            if (grp := self.find_group(which))
            for i in sorted(grp.members)
            if self.clients[i] is not None
        ]

    def pipeline(self, me: int, lines: list[str]) -> list[dict]:
        """Send every line before reading the first reply; the replies."""
        for line in lines:
            self.clients[me].send(line)
        return [self.clients[me].reply() for _ in lines]

    def stored(self, reply: dict, me: int, text: str, to=None, group=None) -> dict:
        """The message an `ok` of `/send` or `/sendgroup` stored; its id must
        be above every id seen before."""
        assert reply["type"] == "ok", reply
        msg_id = reply["id"]
        assert isinstance(msg_id, int) and msg_id > self.last_id, (reply, self.last_id)
        self.last_id = msg_id
        return {"id": msg_id, "from": self.names[me], "to": to, "group": group, "text": text}

    def deliver(self, who: int, want: dict) -> None:
        if self.clients[who] is None:
            self.pending[who].append(want)
        else:
            self.expect_message(who, want)

    def expect_message(self, who: int, want: dict) -> None:
        got = dict(self.clients[who].event("message"))
        assert got.pop("type") == "message"
        assert isinstance(got.pop("ts"), float), got
        assert got == want, f"{self.names[who]} got {got}, expected {want}"
        self.seen[who] = want["id"]

    def expect_history(self, reply: dict, log: list[dict], limit: int) -> None:
        messages = [dict(m) for m in reply["messages"]]
        for m in messages:
            assert isinstance(m.pop("ts"), float), m
        assert messages == log[-limit:]

    def my_groups(self, me: int) -> list[Group]:
        """The groups of user `me`, in name order (case-insensitive)."""
        mine = [g for g in self.groups.values() if me in g.members]
        return sorted(mine, key=lambda g: g.name.lower())

    # --- commands against the model ------------------------------------------------

    def make_or_add(self, me: int, which: int, invited: list[int], case: str) -> None:
        invited = [self.anyone(i) for i in invited]
        name = written(self.group_names[which], case)
        line = f"/group {name} " + " ".join(written(self.names[i], case) for i in invited)
        grp = self.find_group(which)
        if grp is not None and me not in grp.members:
            self.clients[me].error(line, "not_member")
            return
        reply = self.clients[me].ok(line)
        if grp is None:
            grp = self.groups[name.lower()] = Group(name, {me})
        grp.members.update(invited)
        assert reply["group"] == grp.name
        assert reply["members"] == by_key(self.names[i] for i in grp.members)

    def leave_group(self, me: int, which: int, case: str) -> None:
        name = written(self.group_names[which], case)
        grp = self.find_group(which)
        if grp is None:
            self.clients[me].error(f"/leave {name}", "unknown_group")
        elif me not in grp.members:
            self.clients[me].error(f"/leave {name}", "not_member")
        else:
            assert self.clients[me].ok(f"/leave {name}")["group"] == grp.name
            grp.members.discard(me)
            if not grp.members:  # the last member: the group and its name are gone
                del self.groups[name.lower()]

    def send_to_group(self, me: int, which: int, case: str, texts: list[str]) -> None:
        grp = self.find_group(which)
        name = written(self.group_names[which], case)
        replies = self.pipeline(me, [f"/sendgroup {name} {text}" for text in texts])
        if grp is None or me not in grp.members:
            code = "unknown_group" if grp is None else "not_member"
            assert all(r["type"] == "error" and r["code"] == code for r in replies), replies
            return
        sent = [
            self.stored(reply, me, text, group=grp.name)
            for reply, text in zip(replies, texts, strict=True)
        ]
        grp.log.extend(sent)
        for member in sorted(grp.members):
            for want in sent:
                self.deliver(member, want)

    def read_group_history(self, me: int, which: int, case: str, limit: int | None) -> None:
        name = written(self.group_names[which], case)
        line = f"/history {name}" + ("" if limit is None else f" {limit}")
        grp = self.find_group(which)
        if grp is None:  # neither a user nor a group (docs/protocol.md §4)
            self.clients[me].error(line, "unknown_user")
        elif me not in grp.members:
            self.clients[me].error(line, "not_member")
        else:
            reply = self.clients[me].ok(line)
            assert reply["with"] == grp.name
            self.expect_history(reply, grp.log, limit or 50)

    # --- rules: any user, any name of the pool --------------------------------------

    @rule(who=WHO, which=WHICH_GROUP, invited=INVITED, case=CASE)
    def group(self, who, which, invited, case):
        self.make_or_add(self.actor(who), which, invited, case)

    @rule(who=WHO, which=WHICH_GROUP, case=CASE)
    def leave(self, who, which, case):
        self.leave_group(self.actor(who), which, case)

    @rule(who=WHO, which=WHICH_GROUP, case=CASE, texts=TEXTS)
    def sendgroup(self, who, which, case, texts):
        self.send_to_group(self.actor(who), which, case, texts)

    @rule(who=WHO, which=WHICH_GROUP, case=CASE, limit=LIMIT)
    def history_of_group(self, who, which, case, limit):
        self.read_group_history(self.actor(who), which, case, limit)

    @rule(who=WHO, to=WHO, case=CASE, texts=TEXTS)
    def send(self, who, to, case, texts):
        self.send_private(self.actor(who), self.anyone(to), case, texts)

    @precondition(lambda self: None in self.clients)
    @rule(who=WHO, to=WHO, case=CASE, texts=TEXTS)
    def send_to_someone_away(self, who, to, case, texts):
        away = [i for i, c in enumerate(self.clients) if c is None]
        self.send_private(self.actor(who), away[to % len(away)], case, texts)

    def send_private(self, me: int, to: int, case: str, texts: list[str]) -> None:
        name = written(self.names[to], case)
        replies = self.pipeline(me, [f"/send {name} {text}" for text in texts])
        sent = [
            self.stored(reply, me, text, to=self.names[to])
            for reply, text in zip(replies, texts, strict=True)
        ]
        self.private.setdefault(frozenset((me, to)), []).extend(sent)
        for want in sent:
            self.deliver(to, want)

    @rule(who=WHO, other=WHO, case=CASE)
    def history_of_private(self, who, other, case):
        me, other = self.actor(who), self.anyone(other)
        reply = self.clients[me].ok(f"/history {written(self.names[other], case)} 500")
        assert reply["with"] == self.names[other]
        self.expect_history(reply, self.private.get(frozenset((me, other)), []), 500)

    @rule(who=WHO)
    def groups(self, who):
        me = self.actor(who)
        want = [
            {"name": g.name, "members": by_key(self.names[i] for i in g.members)}
            for g in self.my_groups(me)
        ]
        assert self.clients[me].ok("/groups")["groups"] == want

    @rule(who=WHO)
    def users(self, who):
        users = self.clients[self.actor(who)].ok("/users")["users"]
        assert users == sorted(users, key=lambda u: (not u["online"], u["name"].lower()))
        online = {u["name"]: u["online"] for u in users}
        assert [online[name] for name in self.names] == [c is not None for c in self.clients]

    # --- rules: a member of an existing group ------------------------------------------

    @precondition(lambda self: self.online_members())
    @rule(data=st.data(), invited=st.lists(WHO, min_size=1, max_size=2), case=CASE)
    def member_adds(self, data, invited, case):
        which, me = data.draw(st.sampled_from(self.online_members()), label="member")
        self.make_or_add(me, which, invited, case)

    @precondition(lambda self: self.online_members())
    @rule(data=st.data(), case=CASE, texts=TEXTS)
    def member_sends(self, data, case, texts):
        which, me = data.draw(st.sampled_from(self.online_members()), label="member")
        self.send_to_group(me, which, case, texts)

    @precondition(lambda self: self.online_members())
    @rule(data=st.data(), case=CASE, limit=LIMIT)
    def member_reads_history(self, data, case, limit):
        which, me = data.draw(st.sampled_from(self.online_members()), label="member")
        self.read_group_history(me, which, case, limit)

    @precondition(lambda self: self.online_members())
    @rule(data=st.data(), case=CASE)
    def member_leaves(self, data, case):
        which, me = data.draw(st.sampled_from(self.online_members()), label="member")
        self.leave_group(me, which, case)

    # --- rules: logging out and back in --------------------------------------------------

    @precondition(lambda self: len(self.online()) > 1)
    @rule(who=WHO)
    def ack_and_exit(self, who):
        self.go_away(self.actor(who))

    @precondition(lambda self: None in self.clients)
    @rule(who=WHO, case=CASE)
    def log_in_again(self, who, case):
        away = [i for i, c in enumerate(self.clients) if c is None]
        self.come_back(away[who % len(away)], case)

    @precondition(lambda self: len(self.online()) > 1)
    @rule(who=WHO, sender=WHO, texts=st.lists(TEXT, max_size=3), to_groups=st.booleans())
    def away_and_back(self, who, sender, texts, to_groups):
        """The same in one step, with messages to the absent user between."""
        me = self.actor(who)
        self.go_away(me)
        sender = self.actor(sender)
        if texts:
            self.send_private(sender, me, "as_written", texts)
        for which in range(GROUP_NAMES) if to_groups else ():
            grp = self.find_group(which)
            if grp and me in grp.members and sender in grp.members:
                self.send_to_group(sender, which, "as_written", texts[:1] or ["hi"])
        self.come_back(me, "lower")

    def go_away(self, me: int) -> None:
        """Acknowledge everything received, then `/exit`: the server must keep
        what comes next for the next login."""
        client = self.clients[me]
        assert client.ok(f"/ack {self.seen[me]}")["id"] == self.seen[me]
        client.ok("/exit")
        rest = [json.loads(line) for line in client.until_closed()]
        assert {"type": "bye", "reason": "exit"} in rest, rest
        assert not [e for e in rest if e["type"] == "message"], rest
        self.clients[me] = None

    def come_back(self, me: int, case: str) -> None:
        """The login reply counts what came meanwhile, and it is replayed first."""
        client = self.server.client(timeout=WAIT)
        reply = client.ok(f"/login {written(self.names[me], case)} {PASSWORD}")
        groups = [g.name for g in self.my_groups(me)]
        want = {"user": self.names[me], "groups": groups, "unread": len(self.pending[me])}
        assert {k: reply[k] for k in want} == want, reply
        self.clients[me] = client
        for msg in self.pending[me]:
            self.expect_message(me, msg)
        self.pending[me] = []

    # --- rules: names that are not what the command needs --------------------------------

    @rule(who=WHO, which=WHICH_GROUP, invited=st.lists(WHO, max_size=2))
    def group_with_unknown_user(self, who, which, invited):
        me = self.actor(who)
        names = [self.names[self.anyone(i)] for i in invited] + [self.nobody]
        line = f"/group {self.group_names[which]} " + " ".join(names)
        grp = self.find_group(which)
        if grp is not None and me not in grp.members:
            # Both errors apply; the contract does not rank them.
            reply = self.clients[me].call(line)
            assert reply["type"] == "error" and reply["code"] in ("unknown_user", "not_member")
        else:
            self.clients[me].error(line, "unknown_user")

    @rule(who=WHO, other=WHO, case=CASE)
    def group_named_like_a_user(self, who, other, case):
        name = written(self.names[self.anyone(other)], case)
        self.clients[self.actor(who)].error(f"/group {name}", "name_taken")

    @rule(who=WHO, other=WHO, case=CASE)
    def sendgroup_to_a_user(self, who, other, case):
        name = written(self.names[self.anyone(other)], case)
        self.clients[self.actor(who)].error(f"/sendgroup {name} hello", "unknown_group")

    @rule(who=WHO, which=WHICH_GROUP, to_group=st.booleans())
    def send_to_unknown_user(self, who, which, to_group):
        name = self.group_names[which] if to_group else self.nobody
        self.clients[self.actor(who)].error(f"/send {name} hello", "unknown_user")

    @rule(who=WHO)
    def leave_unknown(self, who):
        self.clients[self.actor(who)].error(f"/leave {self.nobody}", "unknown_group")

    @rule(who=WHO)
    def history_of_unknown(self, who):
        self.clients[self.actor(who)].error(f"/history {self.nobody}", "unknown_user")

    # --- invariant -----------------------------------------------------------------------

    @invariant()
    def no_unexpected_events(self):
        """Every expected message was taken as it came; a `/ping` round trip
        on each connection shows that nothing else arrived meanwhile."""
        for i in self.online():
            client = self.clients[i]
            self.pings += 1
            token = f"p{self.pings}"
            assert client.ok(f"/ping {token}")["token"] == token
            extra = [e for e in client.inbox if e["type"] == "message"]
            assert not extra, f"{self.names[i]} got unexpected messages: {extra}"
            client.inbox.clear()  # other unasked events (notices) are allowed


@pytest.mark.timeout(900)  # passing takes seconds; shrinking a failure takes minutes
def test_fuzz_random_command_sequences_match_the_model(locking, tmp_path):
    srv = ServerProcess(tmp_path / "chat.db", "--locking", locking, "--rate-limit", "0").start()
    try:
        run_state_machine_as_test(lambda: ChatModel(srv), settings=SETTINGS)
    finally:
        code = srv.stop()
    assert code == 0, srv.log_text()
    assert "Traceback" not in srv.log_text(), srv.log_text()
