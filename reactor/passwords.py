"""Password hashing with scrypt (hashlib), compared in constant time.

Owns: the stored hash format `scrypt$n$r$p$salt$key` (hex). Must not: be
called under a lock: a hash costs ~33 ms of CPU (limits.SCRYPT_N), which
would stall every command waiting for that lock.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from reactor import limits


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
