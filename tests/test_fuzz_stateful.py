"""Stateful fuzzing: random command sequences from a few users against one
real server, checked step by step against a model (PROTOCOL.md §4-§7).

The model knows who is in which group, each group's log (the messages of its
current incarnation: the last member leaving deletes it and frees the name),
and each private conversation. After every `ok` of `/send` or `/sendgroup`
each recipient's next message event must be exactly that message (group
messages reach every member, the sender included; private ones only the
recipient), so a missing, extra or reordered event fails the step; after
every step a `/ping` round trip on each connection shows nothing else came.
Names are written in random letter case: they are unique without regard to
case and shown as first written.

Rules come in two kinds: "any user, any name of the pool" (which mostly
exercises the errors: `unknown_group`, `not_member`, `unknown_user`) and
"a member of an existing group" (which keeps groups busy). One server per
test function; each example gets fresh users and group names.
"""

from __future__ import annotations

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

from tests.chatclient import Client, ServerProcess, account, fresh_name

SETTINGS = settings(max_examples=25, stateful_step_count=30, deadline=None)

#: Seconds to wait for a reply or an expected message: on loopback they take
#: milliseconds, and a missing one costs this much per try while shrinking.
WAIT = 5.0
MAX_USERS = 4
GROUP_NAMES = 3  # names each example's groups are drawn from

#: A user index, taken modulo the example's number of users.
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


def has_groups(machine: ChatModel) -> bool:
    return bool(machine.groups)


class ChatModel(RuleBasedStateMachine):
    def __init__(self, server: ServerProcess) -> None:
        super().__init__()
        self.server = server
        self.clients: list[Client] = []
        self.names: list[str] = []
        self.group_names = [fresh_name("g") + "Gr" for _ in range(GROUP_NAMES)]
        self.nobody = fresh_name("nobody")  # never registered, never a group
        self.groups: dict[str, Group] = {}  # by lower-case name
        self.private: dict[frozenset[int], list[dict]] = {}
        self.last_id = 0
        self.pings = 0

    @initialize(n=st.integers(3, MAX_USERS), creator=WHO, invited=INVITED, which=WHICH_GROUP)
    def log_in_users_and_make_a_group(self, n, creator, invited, which):
        for _ in range(n):
            client = account(self.server, fresh_name("u") + "Ab")
            client.sock.settimeout(WAIT)
            self.clients.append(client)
            self.names.append(client.name)
        self.make_or_add(self.user(creator), which, invited, "as_written")

    def teardown(self) -> None:
        for client in self.clients:
            client.close()

    # --- model helpers ---------------------------------------------------------

    def user(self, who: int) -> int:
        return who % len(self.clients)

    def find_group(self, which: int) -> Group | None:
        return self.groups.get(self.group_names[which].lower())

    def draw_member(self, data) -> tuple[int, int]:
        """An existing group (its index in the name pool) and one of its members."""
        existing = [i for i in range(GROUP_NAMES) if self.find_group(i)]
        which = data.draw(st.sampled_from(existing), label="group")
        members = sorted(self.find_group(which).members)
        return which, data.draw(st.sampled_from(members), label="member")

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

    def expect_message(self, who: int, want: dict) -> None:
        got = dict(self.clients[who].event("message"))
        assert got.pop("type") == "message"
        assert isinstance(got.pop("ts"), float), got
        assert got == want, f"{self.names[who]} got {got}, expected {want}"

    def expect_history(self, reply: dict, log: list[dict], limit: int) -> None:
        messages = [dict(m) for m in reply["messages"]]
        for m in messages:
            assert isinstance(m.pop("ts"), float), m
        assert messages == log[-limit:]

    # --- commands against the model ------------------------------------------------

    def make_or_add(self, me: int, which: int, invited: list[int], case: str) -> None:
        invited = [self.user(i) for i in invited]
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
                self.expect_message(member, want)

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
        self.make_or_add(self.user(who), which, invited, case)

    @rule(who=WHO, which=WHICH_GROUP, case=CASE)
    def leave(self, who, which, case):
        self.leave_group(self.user(who), which, case)

    @rule(who=WHO, which=WHICH_GROUP, case=CASE, texts=TEXTS)
    def sendgroup(self, who, which, case, texts):
        self.send_to_group(self.user(who), which, case, texts)

    @rule(who=WHO, which=WHICH_GROUP, case=CASE, limit=LIMIT)
    def history_of_group(self, who, which, case, limit):
        self.read_group_history(self.user(who), which, case, limit)

    @rule(who=WHO, to=WHO, case=CASE, texts=TEXTS)
    def send(self, who, to, case, texts):
        me, to = self.user(who), self.user(to)
        name = written(self.names[to], case)
        replies = self.pipeline(me, [f"/send {name} {text}" for text in texts])
        sent = [
            self.stored(reply, me, text, to=self.names[to])
            for reply, text in zip(replies, texts, strict=True)
        ]
        self.private.setdefault(frozenset((me, to)), []).extend(sent)
        for want in sent:
            self.expect_message(to, want)

    @rule(who=WHO, other=WHO, case=CASE)
    def history_of_private(self, who, other, case):
        me, other = self.user(who), self.user(other)
        reply = self.clients[me].ok(f"/history {written(self.names[other], case)} 500")
        assert reply["with"] == self.names[other]
        self.expect_history(reply, self.private.get(frozenset((me, other)), []), 500)

    @rule(who=WHO)
    def groups(self, who):
        me = self.user(who)
        want = [
            {"name": g.name, "members": by_key(self.names[i] for i in g.members)}
            for g in self.groups.values()
            if me in g.members
        ]
        want.sort(key=lambda g: g["name"].lower())
        assert self.clients[me].ok("/groups")["groups"] == want

    # --- rules: a member of an existing group ------------------------------------------

    @precondition(has_groups)
    @rule(data=st.data(), invited=st.lists(WHO, min_size=1, max_size=2), case=CASE)
    def member_adds(self, data, invited, case):
        which, me = self.draw_member(data)
        self.make_or_add(me, which, invited, case)

    @precondition(has_groups)
    @rule(data=st.data(), case=CASE, texts=TEXTS)
    def member_sends(self, data, case, texts):
        which, me = self.draw_member(data)
        self.send_to_group(me, which, case, texts)

    @precondition(has_groups)
    @rule(data=st.data(), case=CASE, limit=LIMIT)
    def member_reads_history(self, data, case, limit):
        which, me = self.draw_member(data)
        self.read_group_history(me, which, case, limit)

    @precondition(has_groups)
    @rule(data=st.data(), case=CASE)
    def member_leaves(self, data, case):
        which, me = self.draw_member(data)
        self.leave_group(me, which, case)

    # --- rules: names that are not what the command needs --------------------------------

    @rule(who=WHO, which=WHICH_GROUP, invited=st.lists(WHO, max_size=2))
    def group_with_unknown_user(self, who, which, invited):
        me = self.user(who)
        names = [self.names[self.user(i)] for i in invited] + [self.nobody]
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
        name = written(self.names[self.user(other)], case)
        self.clients[self.user(who)].error(f"/group {name}", "name_taken")

    @rule(who=WHO, other=WHO, case=CASE)
    def sendgroup_to_a_user(self, who, other, case):
        name = written(self.names[self.user(other)], case)
        self.clients[self.user(who)].error(f"/sendgroup {name} hello", "unknown_group")

    @rule(who=WHO, which=WHICH_GROUP, to_group=st.booleans())
    def send_to_unknown_user(self, who, which, to_group):
        name = self.group_names[which] if to_group else self.nobody
        self.clients[self.user(who)].error(f"/send {name} hello", "unknown_user")

    @rule(who=WHO)
    def leave_unknown(self, who):
        self.clients[self.user(who)].error(f"/leave {self.nobody}", "unknown_group")

    @rule(who=WHO)
    def history_of_unknown(self, who):
        self.clients[self.user(who)].error(f"/history {self.nobody}", "unknown_user")

    # --- invariant -----------------------------------------------------------------------

    @invariant()
    def no_unexpected_events(self):
        """Every expected message was taken as it came; a `/ping` round trip
        on each connection shows that nothing else arrived meanwhile."""
        for i, client in enumerate(self.clients):
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
