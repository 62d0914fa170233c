"""The output queue, sans-IO: no socket, a `send` function that takes what
the test says, as h11 tests its Connection."""

from __future__ import annotations

import json

from reactor.actions import Emit, LoggedIn, Replay, SetMode
from reactor.kinds import ByeReason, Mode
from reactor.net.outqueue import OutQueue
from reactor.protocol import Message, Ok, encode


def msg(i: int, sender: str = "bob", text: str = "hi") -> Message:
    return Message(i, sender, "alice", None, text, 1.0)


def taking(*amounts: int):
    """A `send` that takes the given byte counts, one per call, and records
    what it was offered."""
    offered: list[bytes] = []
    left = list(amounts)

    def send(view: memoryview) -> int:
        offered.append(bytes(view))
        return min(left.pop(0), len(view))

    send.offered = offered  # type: ignore[attr-defined]
    return send


def everything(view: memoryview) -> int:
    return len(view)


def test_outqueue_emit_encodes_in_the_current_mode():
    q = OutQueue()
    q.emit(Ok("ping", {"token": None}))
    assert q.apply(SetMode(1, Mode.JSON))
    q.emit(Ok("ping", {"token": "x"}))
    w = q.write_to(everything, 1 << 20)
    assert (
        w.sent
        == w.offered
        == len(encode(Ok("ping", {"token": None}), Mode.TEXT))
        + len(encode(Ok("ping", {"token": "x"}), Mode.JSON))
    )
    assert len(q) == 0


def test_outqueue_deliver_encodes_once_per_mode_for_every_reader():
    text, js, js2 = OutQueue(), OutQueue(), OutQueue()
    js.mode = js2.mode = Mode.JSON
    cache: dict[Mode, bytes] = {}
    m = msg(1)
    assert all(q.deliver(m, cache, batch_running=False) for q in (text, js, js2))
    assert set(cache) == {Mode.TEXT, Mode.JSON}
    assert json.loads(cache[Mode.JSON])["id"] == 1


def test_outqueue_text_message_is_acked_only_once_wholly_written():
    q = OutQueue()
    q.deliver(msg(7), {}, batch_running=False)
    n = len(q)
    send = taking(n - 1, 1)
    assert q.write_to(send, 1 << 20).acked == 0  # all but its last byte
    assert q.write_to(send, 1 << 20).acked == 7
    assert send.offered[1] == b"\n"  # the rest, offered again first


def test_outqueue_json_messages_are_not_acked_by_writing():
    q = OutQueue()
    q.mode = Mode.JSON
    q.deliver(msg(7), {}, batch_running=False)
    assert q.write_to(everything, 1 << 20).acked == 0


def test_outqueue_holds_the_own_echo_and_what_follows_until_the_batch_ends():
    q = OutQueue()
    q.apply(LoggedIn(1, "alice"))
    assert not q.deliver(msg(1, sender="alice"), {}, batch_running=True)
    assert not q.deliver(msg(2, sender="bob"), {}, batch_running=False)  # behind it: id order
    q.emit(Ok("send", {"id": 1}))
    q.apply(SetMode(1, Mode.JSON))  # the batch changed the mode: held ones use the new one
    assert q.release_held()
    data = bytearray()
    q.write_to(lambda v: data.extend(v) or len(v), 1 << 20)
    lines = bytes(data).splitlines()
    assert lines[0].startswith(b"System: Sent")  # the ok first
    assert [json.loads(x)["id"] for x in lines[1:]] == [1, 2]


def test_outqueue_replies_and_replay_are_exempt_from_the_limit():
    q = OutQueue()
    q.apply(Replay(1, tuple(msg(i, text="x" * 100) for i in range(1, 50))))
    q.apply(Emit(1, Ok("ping", {"token": None})))
    assert len(q) > 1000 and not q.over_limit(1000)
    q.deliver(msg(99, text="y" * 2000), {}, batch_running=False)
    assert q.over_limit(1000)


def test_outqueue_slow_needs_a_refused_write_and_the_limit_passed():
    q = OutQueue()
    for i in range(1, 20):
        q.deliver(msg(i, text="z" * 200), {}, batch_running=False)
    assert not q.slow(1000)  # over the limit, but nothing was refused yet
    q.write_to(taking(10), 1 << 20)  # the kernel took 10 bytes of many
    assert q.refused and q.slow(1000)
    assert not q.slow(1 << 20)


def test_outqueue_cut_keeps_the_line_on_the_wire_and_never_acks_the_rest():
    q = OutQueue()
    for i in range(1, 4):
        q.deliver(msg(i), {}, batch_running=False)
    q.write_to(taking(5), 1 << 20)  # half of message 1 is out
    q.cut()
    q.bye(ByeReason.SLOW_CONSUMER)
    data = bytearray()
    acked = q.write_to(lambda v: data.extend(v) or len(v), 1 << 20).acked
    assert acked == 1  # the line that was on the wire; 2 and 3 were dropped
    assert bytes(data).endswith(b"System: Goodbye (slow_consumer).\n") or b"bye" in bytes(data)
    assert bytes(data).count(b"\n") == 2  # the rest of message 1, then the bye


def test_outqueue_cut_at_a_line_boundary_drops_every_queued_line():
    q = OutQueue()
    q.deliver(msg(1), {}, batch_running=False)
    q.write_to(everything, 1 << 20)
    q.deliver(msg(2), {}, batch_running=False)
    q.cut()
    assert len(q) == 0


def test_outqueue_bye_closes_the_queue():
    q = OutQueue()
    q.bye(ByeReason.EXIT)
    size = len(q)
    q.emit(Ok("ping", {}))
    assert not q.deliver(msg(1), {}, batch_running=False)
    q.bye(ByeReason.IDLE)  # one bye only
    assert len(q) == size and q.closed
    silent = OutQueue()
    silent.bye(None)  # closed without a line
    assert silent.closed and len(silent) == 0


def test_outqueue_take_then_written_acks_in_order():
    q = OutQueue()
    q.deliver(msg(1), {}, batch_running=False)
    q.deliver(msg(2), {}, batch_running=False)
    data = q.take()
    assert len(q) == 0 and data.count(b"\n") == 2
    first = data.index(b"\n") + 1
    assert q.written(first - 1) == 0
    assert q.written(1) == 1
    assert q.written(len(data) - first) == 2


def test_outqueue_drop_forgets_everything():
    q = OutQueue()
    q.deliver(msg(1), {}, batch_running=False)
    q.drop()
    assert len(q) == 0 and q.closed
    assert not q.deliver(msg(2), {}, batch_running=False)
