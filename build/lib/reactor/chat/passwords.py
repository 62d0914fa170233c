"""Password hashing with scrypt (hashlib), compared in constant time.

Owns: the stored hash format `scrypt$n$r$p$salt$key` (hex). Must not: be
called under a lock: a hash costs ~33 ms of CPU (limits.SCRYPT_N), which
would stall every command waiting for that lock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import hmac
import os

from reactor import limits


def _return_scrypt_memory_to_the_os() -> None:
    """Each hash allocates ~16 MiB (128 * n * r bytes). glibc's dynamic mmap
    threshold then rises to that size, so later buffers come from per-thread
    arenas and stay in the process: measured here, 25 MB grew to 90-120 MB
    after a few logins. A fixed threshold keeps such buffers mmapped, and
    freeing them gives the memory back. Does nothing off glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 128 * 1024)
    except (OSError, AttributeError):
        pass


_M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
_return_scrypt_memory_to_the_os()


def _derive(password: str, salt: bytes, n: int, r: int, p: int, size: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=size, maxmem=256 * n * r + (1 << 20)
    )


def hash_password(password: str) -> str:
    """A new salted hash of `password`, ready to store."""
    salt = os.urandom(limits.SCRYPT_SALT_BYTES)
    n, r, p = limits.SCRYPT_N, limits.SCRYPT_R, limits.SCRYPT_P
    key = _derive(password, salt, n, r, p, limits.SCRYPT_KEY_BYTES)
    return f"scrypt${n}${r}${p}${salt.hex()}${key.hex()}"


def verify_password(password: str, stored: str | None) -> bool:
    """True if `password` matches `stored`. With `stored` None (no such user)
    it still spends the time of one hash, so timing does not tell whether a
    name exists."""
    if stored is None:
        hash_password(password)
        return False
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = bytes.fromhex(key)
        got = _derive(password, bytes.fromhex(salt), int(n), int(r), int(p), len(expected))
    except ValueError:
        return False
    return hmac.compare_digest(got, expected)
