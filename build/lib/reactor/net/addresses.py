"""Limits per client address, sans-IO, as IRC servers keep them (ngIRCd's
MaxConnectionsIP, Ergo's per-IP throttles): connections not yet logged in,
and `/login` and `/register` attempts per second, shared by every
connection from that address, so opening new connections does not dodge
the per-connection rate limit.

Owns: the counts per address and the exemption list (loopback by default:
classroom demos and tests on one machine; the password lane's bound is what
protects the server from them). Must not: touch a socket or take a lock:
the reactor calls it from its own thread, the thread-per-client model
under its ``addresses`` lock.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from reactor import limits
from reactor.actions import Item
from reactor.config import Config
from reactor.protocol import BadLine, Command

_LOGINS = frozenset({"login", "register"})
_TOO_MANY = "too many logins from your address; slow down"
#: Addresses with a full bucket are forgotten once this many are kept.
_PRUNE_AT = 4096


class AddressLimits:
    """Per-address counts. `max_unauthenticated` 0 or `rate` 0 turn that
    limit off."""

    def __init__(
        self, max_unauthenticated: int, rate: float, burst: int, exempt: Sequence[str]
    ) -> None:
        self._max = max_unauthenticated
        self._rate = rate
        self._burst = float(burst)
        self._exempt_nets = [ipaddress.ip_network(n, strict=False) for n in exempt]
        self._exempt: dict[str, bool] = {}  # address -> exempt, as first seen
        # Invariant: _unauth[a] == the number of values equal to a in _conn_addr.
        self._unauth: dict[str, int] = {}
        self._conn_addr: dict[int, str] = {}  # open, not logged in, counted
        self._buckets: dict[str, tuple[float, float]] = {}  # address -> (tokens, stamp)

    @classmethod
    def for_config(cls, config: Config) -> AddressLimits:
        """The limits `config` asks for."""
        return cls(
            config.max_unauthenticated, config.login_rate, limits.LOGINS_PER_ADDRESS_BURST,
            config.limit_exempt,
        )  # fmt: skip

    def exempt(self, address: str) -> bool:
        """True if no per-address limit applies to `address`."""
        known = self._exempt.get(address)
        if known is None:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                return False
            known = self._exempt[address] = any(ip in net for net in self._exempt_nets)
        return known

    def may_open(self, address: str) -> bool:
        """May a new connection from `address` be accepted now?"""
        if not self._max or self.exempt(address):
            return True
        return self._unauth.get(address, 0) < self._max

    def opened(self, conn_id: int, address: str) -> None:
        """Connection `conn_id` from `address` was accepted (not logged in)."""
        if self._max and not self.exempt(address):
            self._conn_addr[conn_id] = address
            self._unauth[address] = self._unauth.get(address, 0) + 1

    def logged_in(self, conn_id: int) -> None:
        """`conn_id` logged in: it no longer counts."""
        self._forget(conn_id)

    def closed(self, conn_id: int) -> None:
        """`conn_id` is closed."""
        self._forget(conn_id)

    def check_logins(self, address: str, items: list[Item], now: float) -> list[Item]:
        """`items` with each `/login` or `/register` over the address's rate
        turned into a `rate_limited` answer (in its turn, not run)."""
        if not self._rate or self.exempt(address):
            return items
        out: list[Item] = []
        for item in items:
            if isinstance(item, Command) and item.name in _LOGINS and not self._take(address, now):
                item = BadLine(item.name, "rate_limited", _TOO_MANY)
            out.append(item)
        return out

    def _forget(self, conn_id: int) -> None:
        address = self._conn_addr.pop(conn_id, None)
        if address is not None:
            left = self._unauth[address] - 1
            if left:
                self._unauth[address] = left
            else:
                del self._unauth[address]

    def _take(self, address: str, now: float) -> bool:
        tokens, stamp = self._buckets.get(address, (self._burst, now))
        tokens = min(self._burst, tokens + (now - stamp) * self._rate)
        ok = tokens >= 1.0
        self._buckets[address] = (tokens - 1.0 if ok else tokens, now)
        if len(self._buckets) > _PRUNE_AT:
            self._prune(now)
        return ok

    def _prune(self, now: float) -> None:
        full = [
            a
            for a, (tokens, stamp) in self._buckets.items()
            if tokens + (now - stamp) * self._rate >= self._burst
        ]
        for a in full:
            del self._buckets[a]
