"""The outbox of one batch: the replies and actions its commands produce,
posted to the I/O model in order when the batch ends.

Owns: `Outbox`, and the rule that no `ok` of a write is posted before that
write is committed (a reply of a write remembers its epoch; `settle` turns
it into `internal` if the epoch was rolled back). Must not: touch sockets,
storage or locks (a login's `flush_held` commits through the committer,
whose caller holds ``delivery``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

from reactor.actions import Action, Emit
from reactor.chat.commit import Committer, Settlement
from reactor.protocol import Error, Event, Ok


class Outbox:
    """A batch's actions, posted to the reactor in order when the batch ends
    (or earlier by a login, see `flush_held`). Each reply of a command that
    wrote remembers its epoch: if that epoch fails to commit, the reply
    becomes `internal` (`settle`), so no `ok` is ever sent for a lost write."""

    def __init__(self, conn_id: int, post: Callable[[Sequence[Action]], None]) -> None:
        self.conn_id = conn_id
        self.actions: list[Action] = []
        self.epochs: set[int] = set()  # epochs written into and not yet settled
        self._post = post
        self._cmd_epoch = 0  # epoch the current command wrote into, 0 if none
        self._write_replies: list[tuple[int, int]] = []  # (index in actions, epoch)
        self._write_events: list[tuple[int, int]] = []  # the same, for `tell`
        self._after: list[tuple[int, Callable[[], None]]] = []  # (epoch, call)

    def start_command(self) -> None:
        """A new command begins: it has written nothing yet."""
        self._cmd_epoch = 0

    def wrote(self, epoch: int) -> None:
        """The current command wrote into `epoch`: its reply waits for that commit."""
        self._cmd_epoch = epoch
        self.epochs.add(epoch)

    def reply(self, event: Event) -> None:
        """Add the current command's reply (remembered with its epoch if it wrote)."""
        if self._cmd_epoch:
            self._write_replies.append((len(self.actions), self._cmd_epoch))
        self.actions.append(Emit(self.conn_id, event))

    def add(self, action: Action) -> None:
        """Add an action that is not a reply (close, replay, mode...)."""
        self.actions.append(action)

    def tell(self, conn: int, event: Event) -> None:
        """Send `event` to another connection once the current command's
        write is committed; if that write is lost, it is never sent."""
        if self._cmd_epoch:
            self._write_events.append((len(self.actions), self._cmd_epoch))
        self.actions.append(Emit(conn, event))

    def after_commit(self, call: Callable[[], None]) -> None:
        """Run `call()` once the current command's write is committed (at
        once if it wrote nothing); never if that write is lost."""
        if self._cmd_epoch:
            self._after.append((self._cmd_epoch, call))
        else:
            call()

    def settle(self, settled: Settlement) -> None:
        """After the commit: turn replies of writes in lost epochs into
        `internal`, and give provisional message ids their final value."""
        lost, ids = settled.lost, settled.ids
        for i, epoch in self._write_replies:
            if ids and epoch not in lost:
                self._renumber(i, ids)
            if epoch in lost:
                # `reply` put there the `Emit` of a command's `ok` or `error`.
                replied = cast(Emit, self.actions[i]).event
                cmd = cast("Ok | Error", replied).cmd
                msg = "the server could not store this; nothing was changed"
                self.actions[i] = Emit(self.conn_id, Error(cmd, "internal", msg))
        dropped = {i for i, epoch in self._write_events if epoch in lost}
        if dropped:
            self.actions = [a for i, a in enumerate(self.actions) if i not in dropped]
        for epoch, call in self._after:
            if epoch not in lost:
                call()
        self._write_replies = []
        self._write_events = []
        self._after = []
        self.epochs = set()
        self._cmd_epoch = 0

    def _renumber(self, i: int, ids: dict[int, int]) -> None:
        emit = cast(Emit, self.actions[i])
        if isinstance(emit.event, Ok) and emit.event.fields.get("id") in ids:
            fields = {**emit.event.fields, "id": ids[emit.event.fields["id"]]}
            self.actions[i] = Emit(emit.conn, Ok(emit.event.cmd, fields))

    def flush_held(self, committer: Committer) -> frozenset[int]:
        """Commit and post everything so far; caller holds ``delivery``.
        Returns the epochs whose writes were lost."""
        settled = committer.commit_held(self.epochs) if self.epochs else Settlement()
        self.settle(settled)
        self.post_now()
        return settled.lost

    def take(self) -> list[Action]:
        """The actions so far, handed over for posting (only after `settle`
        if anything was written)."""
        assert not self._write_replies, "posting replies of uncommitted writes"
        actions, self.actions = self.actions, []
        return actions

    def post_now(self) -> None:
        """Post the actions so far; only after `settle` if anything was written."""
        assert not self._write_replies, "posting replies of uncommitted writes"
        if self.actions:
            self._post(self.actions)
            self.actions = []
