"""Checks of command arguments that every handler shares.

Owns: turning an argument into the value a handler uses, or the
`ChatError` a peer gets for it. Must not: take locks or touch storage.
"""

from __future__ import annotations

from reactor.errors import ChatError
from reactor.protocol import valid_name


def group_name(name: str) -> str:
    """`name`, without the "#" it may be written with, if it could be a
    group's; checked before its lock is made, so made-up names cannot grow
    the lock table (reactor/sync/locks.py)."""
    name = name.removeprefix("#")
    if not valid_name(name):
        raise ChatError("unknown_group", f"no group named {name}")
    return name


def positive_int(text: str, what: str, allow_zero: bool = False) -> int:
    """`text` as a whole number of at least 1 (or 0), else bad_args naming `what`."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not text.isdigit() or value < (0 if allow_zero else 1):
        least = "0 or more" if allow_zero else "1 or more"
        raise ChatError("bad_args", f"{what} must be a whole number, {least}")
    return value
