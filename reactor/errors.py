"""The server's exceptions, one line each on whose fault they are.

Owns: exception classes. Must not: import any other project module.
"""


class ChatError(Exception):
    """A command failed because of what the peer asked: answered as an error
    reply with a protocol error code (docs/protocol.md §7)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class LockMisuse(RuntimeError):
    """Our bug: a lock was released by a thread that does not hold it, or
    taken against the documented lock order."""


class LockTimeout(RuntimeError):
    """A lock was not had within its timeout (only the `inverted` demo
    strategy waits with one); the command fails with `internal`."""


class DatabaseInUse(OSError):
    """Another process (another server) holds the database file."""


class NodeNameInUse(OSError):
    """Another running cluster node already has this node's name."""


class StoreUnavailable(OSError):
    """The cluster's PostgreSQL or Redis could not be reached at start."""
