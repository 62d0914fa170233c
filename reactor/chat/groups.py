"""The group commands: /group, /join, /leave, /groups.

Owns: what a group's membership commands mean (docs/protocol.md §4, the
open and invite-only kinds) and who is told of a change. Must not: touch
sockets; storage and session calls are made inside `with self.locks.hold(...)`
naming the keys of reactor/sync/locks.py.
"""

from __future__ import annotations

from reactor.chat.arguments import group_name
from reactor.chat.base import ChatState, Fields
from reactor.chat.outbox import Outbox
from reactor.chat.sessions import ConnState
from reactor.errors import ChatError
from reactor.protocol import Command, GroupChange, valid_name
from reactor.sync.locks import GROUPS, SESSIONS, STORAGE, group_key


class GroupCommands(ChatState):
    """The handlers of the group commands."""

    def do_group(self, conn: ConnState, cmd: Command, out: Outbox) -> Fields:
        """/group <group> <user>...: create a group with you in it, or add
        users to one you are in, telling them and the members. Takes ``groups``,
        the group's key, ``sessions`` and ``storage``."""
        name, invitees = cmd.args[0].removeprefix("#"), cmd.args[1:]
        if not valid_name(name):
            raise ChatError("bad_name", "names are 1-32 characters of A-Z a-z 0-9 _ . -")
        with self.locks.hold(GROUPS, group_key(name), SESSIONS, STORAGE):
            users = list({u.id: u for u in map(self._user, invitees)}.values())  # once each
            group = self.storage.group(name)
            if group is None:
                if cmd.existing:
                    raise ChatError("unknown_group", f"no group #{name}")
                if self.storage.name_taken(name):
                    raise ChatError("name_taken", f"{name} is a user's name")
                group, epoch = self.storage.create_group(name)
                out.wrote(epoch)
                users.insert(0, self._me(conn))
            elif not self.storage.is_member(group, self._my_id(conn)):
                raise ChatError("not_member", f"only members can add to #{group.name}")
            else:  # adding a member again changes nothing, and is not told
                users = [u for u in users if not self.storage.is_member(group, u.id)]
            for user in users:
                out.wrote(self.storage.add_member(group, user.id))
            members = [n for _, n in self.storage.members(group)]
            added = tuple(u.name for u in users if u.id != self._my_id(conn))
            if added:  # the added and the members before them hear of it
                change = GroupChange(group.name, self._me(conn).name, tuple(members), added)
                self._tell(conn, out, change, members)
        return {"group": group.name, "members": members}

    def do_join(self, conn: ConnState, cmd: Command, out: Outbox) -> Fields:
        """/join <group>: join an open group (its members are told), or make
        one with you in it; a member of an invite-only group is answered as
        by /group, anyone else gets `not_member`. Takes ``groups``, the
        group's key, ``sessions`` and ``storage``."""
        name = cmd.args[0].removeprefix("#")
        if not valid_name(name):
            raise ChatError("bad_name", "names are 1-32 characters of A-Z a-z 0-9 _ . -")
        with self.locks.hold(GROUPS, group_key(name), SESSIONS, STORAGE):
            me = self._me(conn)
            group = self.storage.group(name)
            if group is None:
                if self.storage.name_taken(name):
                    raise ChatError("name_taken", f"{name} is a user's name")
                group, epoch = self.storage.create_group(name, open=True)
                out.wrote(epoch)
                out.wrote(self.storage.add_member(group, me.id))
            elif not self.storage.is_member(group, me.id):
                if not group.open:
                    raise ChatError("not_member", f"#{group.name} is invite-only")
                out.wrote(self.storage.add_member(group, me.id))
                members = [n for _, n in self.storage.members(group)]
                change = GroupChange(group.name, me.name, tuple(members), (me.name,))
                self._tell(conn, out, change, members)
            members = [n for _, n in self.storage.members(group)]
        return {"group": group.name, "members": members, "open": group.open}

    def do_leave(self, conn: ConnState, cmd: Command, out: Outbox) -> Fields:
        """/leave <group>: leave a group (its members are told); its last
        member's leaving deletes it. Takes ``groups``, the group's key,
        ``sessions`` and ``storage``."""
        name = group_name(cmd.args[0])
        with self.locks.hold(GROUPS, group_key(name), SESSIONS, STORAGE):
            group = self._member_group(conn, name)
            out.wrote(self.storage.remove_member(group, self._my_id(conn)))
            members = [n for _, n in self.storage.members(group)]
            if not members:
                out.wrote(self.storage.delete_group(group))
            me = self._me(conn).name
            change = GroupChange(group.name, me, tuple(members), left=me, reason=cmd.text)
            self._tell(conn, out, change, members)
        return {"group": group.name}

    def do_groups(self, conn: ConnState, cmd: Command, out: Outbox) -> Fields:
        """/groups: your groups and their members (and, asked by the IRC
        listener, whether each is open, or every open group; its welcome also
        records USER's names first, under ``sessions``). Takes ``storage``."""
        if cmd.ident is not None:
            with self.locks.hold(SESSIONS):
                self.sessions.set_ident(self._me(conn).name.lower(), conn.conn_id, cmd.ident)
        with self.locks.hold(STORAGE):
            groups = self.storage.user_groups(self._my_id(conn))
            if cmd.public:
                everyone = [{"name": g, "members": m} for g, m in self.storage.open_groups()]
                return {"groups": [{"name": g, "members": m} for g, m in groups],
                        "open_groups": everyone}  # fmt: skip
            if not cmd.detail:
                return {"groups": [{"name": g, "members": m} for g, m in groups]}
            rows = [self.storage.group(g) for g, _ in groups]
        return {
            "groups": [{"name": g, "members": m, "open": bool(row and row.open)}
                       for (g, m), row in zip(groups, rows, strict=True)]
        }  # fmt: skip
