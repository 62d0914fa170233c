"""Wire protocol v1, sans-IO: bytes in, frames and commands out; events in,
bytes out (docs/protocol.md).

Owns: nothing of its own; it gathers the protocol's parts: line framing
(`framing`), the command table and parsing (`parsing`), the event model
(`events`) and its two encodings, text and JSON (`encoding`).
Must not: import socket, selectors or threading, or know about users,
storage or locks. Everything here is a pure function or a small state
machine fed by its caller, so it is tested without sockets.
"""

from reactor.protocol.encoding import (
    JSON,
    TEXT,
    encode,
    group_change_text,
    message_text,
    stats_fields,
    stats_table,
    to_json,
    to_text,
)
from reactor.protocol.events import (
    WELCOME,
    Bye,
    Error,
    Event,
    GroupChange,
    Message,
    Notice,
    Ok,
    Raw,
)
from reactor.protocol.framing import Frame, FrameError, Framer
from reactor.protocol.parsing import (
    COMMANDS,
    BadLine,
    Command,
    Spec,
    command_word,
    parse,
    valid_name,
)

__all__ = [
    "COMMANDS", "JSON", "TEXT", "WELCOME", "BadLine", "Bye", "Command", "Error", "Event",
    "Frame", "FrameError", "Framer", "GroupChange", "Message", "Notice", "Ok", "Raw", "Spec",
    "command_word", "encode", "group_change_text", "message_text", "parse", "stats_fields",
    "stats_table", "to_json", "to_text", "valid_name",
]  # fmt: skip
